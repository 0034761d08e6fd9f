#!/usr/bin/env bash
# Builds {{name}}.wasm from app.py (and the .py files beside it) with componentize-py, installing
# the pinned componentize-py into vane's tool cache first if it is not there ($VANE_TOOLS_DIR,
# by default $XDG_CACHE_HOME/vane/tools or ~/.cache/vane/tools). Needs python3 with pip.
# Runnable from any folder; safe to run again.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# vane's tool cache, made absolute (the build changes folder).
tools_root="${VANE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vane/tools}"
mkdir -p "$tools_root"
tools_root="$(cd "$tools_root" && pwd)"
tools="$tools_root/componentize-py-$COMPONENTIZE_PY_VERSION"
python="${PYTHON:-python3}"
out="$here/{{name}}.wasm"

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

# Build from a copy of the Python files beside app.py (not subfolders): componentize-py's
# embedded CPython writes __pycache__ next to the sources it imports.
src="$here/build/src"
rm -rf "$src"
mkdir -p "$src"
cp "$here"/*.py "$src/"
componentize_py --quiet -d "$here/wit" -w balancer componentize -p "$src" app -o "$out.tmp"
mv "$out.tmp" "$out"
echo "built $out ($(wc -c <"$out") bytes)" >&2
