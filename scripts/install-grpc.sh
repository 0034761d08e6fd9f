#!/usr/bin/env bash
# Installs grpcio (pinned) under target/grpc-python for the gRPC end-to-end tests
# (tests/grpc/peer.py); does nothing if that version is there already. Needs python3 with pip.
set -euo pipefail

GRPCIO_VERSION=1.85.3

bash "$(dirname "${BASH_SOURCE[0]}")/pip-into-target.sh" grpc-python "grpcio==$GRPCIO_VERSION"
