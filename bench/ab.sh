#!/usr/bin/env bash
# Two builds of vane side by side: requests/s and CPU per request of each, in interleaved wrk
# rounds (A, B, A, B, ...), both with the least-conn plugin and one worker in front of the same
# three nginx backends on 127.0.0.1. For "did this change cost throughput?", where
# bench/compare.sh answers "how does vane stand against nginx and HAProxy?".
#
#   bash bench/ab.sh OLD_VANE NEW_VANE [ROUNDS] [SECONDS]    # default 5 rounds of 5 s
set -euo pipefail
cd "$(dirname "$0")/.."
A=$(realpath "$1")
B=$(realpath "$2")
ROUNDS=${3:-5}
SECONDS_PER_RUN=${4:-5}
source bench/lib.sh
need_tools nginx:nginx-light wrk:wrk
bash scripts/build-plugins.sh >&2
PLUGINS=target/wasm32-wasip2/release
start_backends

declare -A PORT=([a]=19401 [b]=19402) PID
for side in a b; do
    binary=$A
    [ "$side" = b ] && binary=$B
    vane_config "${PORT[$side]}" "[policy]\nplugin = \"$PWD/$PLUGINS/least_conn.wasm\"" >"$WORK/$side.toml"
    RUST_LOG=warn "$binary" run --config "$WORK/$side.toml" &
    PIDS+=($!)
    PID[$side]=$!
done
for side in a b; do
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:${PORT[$side]}/" 2>/dev/null && break
        sleep 0.1
    done
done

results="$WORK/results.txt"
for round in $(seq "$ROUNDS"); do
    for side in a b; do
        before=$(cpu_ticks "${PID[$side]}")
        out=$(wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:${PORT[$side]}/")
        ticks=$(($(cpu_ticks "${PID[$side]}") - before))
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        total=$(awk '/requests in/ {print $1}' <<<"$out")
        cpu=$(awk -v t="$ticks" -v n="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
        echo "$round $side $rps $cpu" | tee -a "$results" >&2
    done
done

python3 - "$results" "$A" "$B" <<'EOF'
import statistics, sys
rows = {"a": ([], []), "b": ([], [])}
for line in open(sys.argv[1]):
    _, side, rps, cpu = line.split()
    rows[side][0].append(float(rps))
    rows[side][1].append(float(cpu))
med = {side: (statistics.median(r), statistics.median(c)) for side, (r, c) in rows.items()}
for side, path in (("a", sys.argv[2]), ("b", sys.argv[3])):
    print(f"{side}: {path}: {med[side][0]:.0f} req/s (median), {med[side][1]:.1f} µs CPU/request")
print(f"b / a: {med['b'][0] / med['a'][0]:.3f} × req/s, {med['b'][1] / med['a'][1]:.3f} × CPU/request")
EOF
