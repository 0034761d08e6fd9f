#!/usr/bin/env bash
# Builds {{name}}.wasm from policy.js with componentize-js, installing the tools pinned in
# package.json and package-lock.json into vane's tool cache first if they are not there
# ($VANE_TOOLS_DIR, by default $XDG_CACHE_HOME/vane/tools or ~/.cache/vane/tools). Needs node
# (20 or later) and npm. Runnable from any folder; safe to run again.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }
locked="$(cat "$here/package.json" "$here/package-lock.json" | sha256 | cut -c1-16)"
# vane's tool cache, made absolute (the build changes folder).
tools_root="${VANE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vane/tools}"
mkdir -p "$tools_root"
tools_root="$(cd "$tools_root" && pwd)"
tools="$tools_root/componentize-js-$locked"
out="$here/{{name}}.wasm"

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
# componentize-js resolves the source against the working folder, so it runs from this folder
# with a relative source path.
cd "$here"
"$tools/node_modules/.bin/componentize-js" \
    --wit wit --world-name balancer \
    --disable http fetch-event clocks random \
    --out "$out.tmp" policy.js
mv "$out.tmp" "$out"
echo "built $out ($(wc -c <"$out") bytes)" >&2
