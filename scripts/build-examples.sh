#!/usr/bin/env bash
# Builds the example policy "fastest" in each language into target/examples/fastest-LANG.wasm,
# each build installing what it needs first (see examples/LANG/build.sh), and times each build.
set -euo pipefail
cd "$(dirname "$0")/.."
for language in rust python javascript c; do
    started=$(date +%s)
    bash "examples/$language/build.sh"
    echo "examples/$language: built in $(( $(date +%s) - started )) s" >&2
done
