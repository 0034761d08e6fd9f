#!/usr/bin/env bash
# Installs grpcio (pinned) under target/grpc-python for the gRPC end-to-end tests
# (tests/grpc/peer.py); does nothing if that version is there already. Needs python3 with pip.
set -euo pipefail

GRPCIO_VERSION=1.85.3

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="$root/target/grpc-python"
python="${PYTHON:-python3}"

# `pip install --target` needs no venv and is allowed on an externally managed (PEP 668) Python.
stamp="$target/.installed"
want="grpcio==$GRPCIO_VERSION $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "installing grpcio $GRPCIO_VERSION into $target" >&2
    rm -rf "$target"
    mkdir -p "$target"
    "$python" -m pip install --quiet --disable-pip-version-check --no-input --root-user-action=ignore \
        --target "$target" "grpcio==$GRPCIO_VERSION"
    echo "$want" >"$stamp"
fi
