#!/usr/bin/env bash
# vane's own instructions per request, counted by valgrind's callgrind: unlike time, the count
# does not move with the machine's load, so it shows what a change to the request path bought.
# vane runs (release build, one worker) under callgrind in front of three nginx backends on
# 127.0.0.1 four ways (built-in round-robin, round-robin plugin, least-conn plugin, and
# least-conn with p2c-ewma as a shadow asked about every request, whose thread is counted too:
# what a shadow costs the machine, not the request's latency); wrk warms
# it up, the counters are zeroed, and a second wrk run is counted. Kernel work is not counted.
#
#   bash bench/instructions.sh [SECONDS]      # default 10 s counted per target
#   VANE=/path/to/vane bash bench/instructions.sh   # count that binary instead of building one,
#                                                  # to compare two builds side by side
#
#   bash bench/instructions.sh --check [SECONDS]  # CI: the shipped build (profile `dist`), the
#                                  # built-in and the least-conn plugin only, each against
#                                  # bench/instructions-baseline; fails if one counts more than
#                                  # 5 % above its baseline
#
# The callgrind files stay in the printed folder, for `callgrind_annotate --inclusive=yes`.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECK=""
if [ "${1:-}" = --check ]; then
    CHECK=bench/instructions-baseline
    shift
fi
SECONDS_PER_RUN=${1:-10}
source bench/lib.sh
need_tools nginx:nginx-light wrk:wrk valgrind:valgrind
TARGETS=(builtin rr-plugin lc-plugin lc-shadow)
if [ -n "$CHECK" ]; then
    # The binary users get, without the line tables `release` keeps for profiling (the same
    # code: debug information does not change what is compiled).
    TARGETS=(builtin lc-plugin)
    bash scripts/build-plugins.sh >&2
    cargo build --profile dist -p vane >&2
    VANE=target/dist/vane
    PLUGINS=target/wasm32-wasip2/release
elif [ -n "${VANE:-}" ]; then
    bash scripts/build-plugins.sh >&2
    PLUGINS=target/wasm32-wasip2/release
else
    build_vane
fi
start_backends

port=19301
printf '%-16s %10s %14s\n' target requests "instr/request" | tee "$WORK/counts"
for target in "${TARGETS[@]}"; do
    case "$target" in
        builtin) table="" ;;
        rr-plugin) table="[policy]\nplugin = \"$PWD/$PLUGINS/round_robin.wasm\"" ;;
        lc-plugin) table="[policy]\nplugin = \"$PWD/$PLUGINS/least_conn.wasm\"" ;;
        lc-shadow) table="[policy]\nplugin = \"$PWD/$PLUGINS/least_conn.wasm\"\n[policy.shadow]\nplugin = \"$PWD/$PLUGINS/p2c_ewma.wasm\"" ;;
    esac
    vane_config "$port" "$table" >"$WORK/$target.toml"
    out="$WORK/$target.callgrind"
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$VANE" run --config "$WORK/$target.toml" >"$WORK/$target.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 120); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
        sleep 0.5
    done
    wrk -t1 -c8 -d3s "http://127.0.0.1:$port/" >/dev/null
    callgrind_control --zero "$pid" >/dev/null 2>&1
    requests=$(wrk -t1 -c8 -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
    callgrind_control --dump=counted "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    total=$(callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    printf '%-16s %10s %14s\n' "$target" "$requests" "$((total / requests))" | tee -a "$WORK/counts"
    port=$((port + 1))
done
echo "callgrind files in $WORK" >&2
[ -z "$CHECK" ] || python3 bench/instructions_check.py "$CHECK" "$WORK/counts"
