#!/usr/bin/env bash
# Runs vane's fuzz targets (fuzz/fuzz_targets/) with cargo fuzz on nightly, each for SECONDS
# (default 60), starting from and adding to the corpus kept in fuzz/corpus/. Installs the
# nightly toolchain and cargo-fuzz if they are missing. Not part of CI: the property tests in
# `cargo test` check the same properties on stable; this digs deeper. A crash leaves its input
# in fuzz/artifacts/TARGET/ and fails the script: make it a regression test, then fix it.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
# One build of every target first, so that each target's time is spent fuzzing.
(cd fuzz && cargo +nightly fuzz build)
for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    mkdir -p "fuzz/corpus/$target"
    # Components are larger than libFuzzer's default input size.
    max_len=4096
    [ "$target" = component_fit ] && max_len=131072
    log="fuzz/artifacts/$target.log"
    mkdir -p fuzz/artifacts
    if ! (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1 >"../$log" 2>&1); then
        grep -E -A20 "panicked|ERROR|SUMMARY" "$log" | head -60
        echo "== $target failed: the input is in fuzz/artifacts/$target/, the whole output in $log"
        exit 1
    fi
    grep -E "^Done|stat::(number_of_executed_units|new_units_added)" "$log"
done
echo "== corpus: $(find fuzz/corpus -type f | wc -l) inputs (the repository keeps the seeds and regression inputs; commit new ones only after cargo +nightly fuzz cmin TARGET)"
