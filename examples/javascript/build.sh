#!/usr/bin/env bash
# Builds the example policy "fastest" (fastest.js) into target/examples/fastest-javascript.wasm with
# componentize-js, installing the tools pinned in package.json / package-lock.json first if
# needed, into $VANE_TOOLS_DIR (default target/examples/tools; `vane plugin new` projects use the
# same layout). Needs node (20) and npm; runnable from any folder; safe to run again.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out_dir="$root/target/examples"
locked="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)"
tools="${VANE_TOOLS_DIR:-$out_dir/tools}/componentize-js-$locked"
out="$out_dir/fastest-javascript.wasm"

# Install exactly the locked tree (npm ci) unless it is already installed for this node.
stamp="$tools/.installed"
want="node-$(node --version)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "installing componentize-js and jco (package-lock.json) into $tools" >&2
    rm -rf "$tools"
    mkdir -p "$tools"
    cp "$here/package.json" "$here/package-lock.json" "$tools/"
    (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
fi

# vane provides no wasi:http, so the engine's fetch support is left out, and so are clocks and
# random, which this policy does not use. stdio stays: uncaught errors go to vane's log.
# componentize-js 0.23.0 resolves the source against the working folder (and mangles it from
# `/`), so it runs from this folder with a relative source path.
mkdir -p "$out_dir"
cd "$here"
"$tools/node_modules/.bin/componentize-js" \
    --wit "$root/wit" --world-name balancer \
    --disable http fetch-event clocks random \
    --out "$out.tmp" fastest.js
mv "$out.tmp" "$out"
echo "built $out ($(stat -c %s "$out") bytes)" >&2
