#!/usr/bin/env bash
# Installs one pinned Python package, with its dependencies, under target/FOLDER for the tests
# that run it (PYTHONPATH=target/FOLDER); does nothing if that version is there already for
# this Python. Usage: pip-into-target.sh FOLDER PACKAGE==VERSION. Needs python3 with pip.
set -euo pipefail

folder="$1"
package="$2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="$root/target/$folder"
python="${PYTHON:-python3}"

# `pip install --target` needs no venv and is allowed on an externally managed (PEP 668) Python.
stamp="$target/.installed"
want="$package $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "installing $package into $target" >&2
    rm -rf "$target"
    mkdir -p "$target"
    "$python" -m pip install --quiet --disable-pip-version-check --no-input --root-user-action=ignore \
        --target "$target" "$package"
    echo "$want" >"$stamp"
fi
