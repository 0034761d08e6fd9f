#!/usr/bin/env bash
# Prints each example policy's size and pick cost: `vane plugin test` (release build) sends
# 20 000 requests to 3 simulated backends. Run scripts/build-examples.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p vane
for language in rust python javascript c; do
    plugin="target/examples/fastest-$language.wasm"
    limits=()
    # SpiderMonkey's heap outgrows the 16MiB default and its GC pauses for milliseconds.
    [ "$language" = javascript ] && limits=(--memory-limit 64MiB --pick-timeout 5ms)
    picks=$(target/release/vane plugin test "$plugin" --requests 20000 "${limits[@]}" 2>/dev/null \
        | grep -E '^(picks|fallbacks):' | tr '\n' ' ')
    echo "$language: $(stat -c %s "$plugin") bytes; $picks"
done
