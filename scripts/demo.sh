#!/usr/bin/env bash
# Sets up and runs vane's demo: three backends on loopback behind vane with the least-conn plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-plugins.sh
cargo run --release -p vane -- demo "$@"
