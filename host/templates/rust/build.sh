#!/usr/bin/env bash
# Builds {{name}}.wasm from src/lib.rs. Needs Rust from rustup (1.95 or later); adds the
# wasm32-wasip2 target if it is missing. Runnable from any folder; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
rustup target list --installed | grep -x wasm32-wasip2 >/dev/null || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2
# Moved into place whole: vane may be watching this file.
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm" {{name}}.wasm.tmp
mv {{name}}.wasm.tmp {{name}}.wasm
echo "built {{name}}.wasm ($(wc -c <{{name}}.wasm) bytes)" >&2
