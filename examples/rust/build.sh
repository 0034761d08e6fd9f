#!/usr/bin/env bash
# Builds the example policy "fastest" (src/lib.rs, with vane's kit) into
# target/examples/fastest-rust.wasm. Needs Rust from rustup; adds the wasm32-wasip2 target.
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2 -p fastest
mkdir -p target/examples
cp target/wasm32-wasip2/release/fastest.wasm target/examples/fastest-rust.wasm
echo "built target/examples/fastest-rust.wasm ($(wc -c <target/examples/fastest-rust.wasm) bytes)" >&2
