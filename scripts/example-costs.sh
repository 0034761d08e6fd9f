#!/usr/bin/env bash
# Prints each example policy's size and pick cost: `vane plugin test` (release build) sends
# 20 000 requests to 3 simulated backends. Run scripts/build-examples.sh first.
#
# A pick that overran its deadline on a busy machine shows in the fallbacks column; it is
# recorded, not fatal. A plugin that does not load or run at all fails the script, with the
# error vane gave.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p vane
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
for language in rust python javascript c; do
    plugin="target/examples/fastest-$language.wasm"
    limits=()
    # SpiderMonkey's heap outgrows the 16MiB default and its GC pauses for milliseconds.
    [ "$language" = javascript ] && limits=(--memory-limit 64MiB --pick-timeout 5ms)
    report=$(target/release/vane plugin test "$plugin" --requests 20000 "${limits[@]}" 2>"$errors") || true
    picks=$(grep -E '^(picks|fallbacks):' <<<"$report" | tr '\n' ' ') || true
    if [ -z "$picks" ]; then
        echo "$language: vane plugin test gave no report:" >&2
        cat "$errors" >&2
        exit 1
    fi
    echo "$language: $(stat -c %s "$plugin") bytes; $picks"
done
