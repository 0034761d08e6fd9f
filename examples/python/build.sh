#!/usr/bin/env bash
# Builds the example policy "fastest" (app.py) into target/examples/fastest-python.wasm with
# componentize-py, installing the pinned componentize-py first if needed, into $VANE_TOOLS_DIR
# (default target/examples/tools; `vane plugin new` projects use the same layout).
# Needs python3 (3.11) with pip; runnable from any folder; safe to run again.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out_dir="$root/target/examples"
tools="${VANE_TOOLS_DIR:-$out_dir/tools}/componentize-py-$COMPONENTIZE_PY_VERSION"
out="$out_dir/fastest-python.wasm"
python="${PYTHON:-python3}"

# `pip install --target` needs no venv (Debian's python3 has none without python3-venv) and is
# allowed on an externally managed (PEP 668) Python.
stamp="$tools/.installed"
want="componentize-py==$COMPONENTIZE_PY_VERSION $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "installing componentize-py $COMPONENTIZE_PY_VERSION into $tools" >&2
    rm -rf "$tools"
    mkdir -p "$tools"
    "$python" -m pip install --quiet --disable-pip-version-check --no-input --root-user-action=ignore \
        --target "$tools" "componentize-py==$COMPONENTIZE_PY_VERSION"
    echo "$want" >"$stamp"
fi

componentize_py() {
    PYTHONPATH="$tools" "$python" -c \
        'import sys, componentize_py; sys.argv[0] = "componentize-py"; sys.exit(componentize_py.script())' \
        "$@"
}

# Build from a copy: componentize-py's embedded CPython (3.14) writes __pycache__ next to the
# sources it imports.
src="$out_dir/python-src"
rm -rf "$src"
mkdir -p "$src"
cp "$here/app.py" "$src/"
componentize_py --quiet -d "$root/wit" -w balancer componentize -p "$src" app -o "$out.tmp"
mv "$out.tmp" "$out"
echo "built $out ($(stat -c %s "$out") bytes)" >&2
