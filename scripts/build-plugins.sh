#!/usr/bin/env bash
# Builds the shipped plugins and the test plugins as WebAssembly components:
#   target/wasm32-wasip2/release/{round_robin,least_conn,p2c_ewma,consistent_hash,canary,locality,misbehave,other_world}.wasm
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "adding the wasm32-wasip2 target (rustup target add wasm32-wasip2)" >&2
    rustup target add wasm32-wasip2
fi
cargo build --release --target wasm32-wasip2 -p round-robin -p least-conn -p p2c-ewma -p consistent-hash -p canary -p locality -p misbehave -p other-world
