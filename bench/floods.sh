#!/usr/bin/env bash
# Does vane keep serving everyone else while hostile clients hold it? For each kind of
# hostile client (bench/floods.py: heads that never end, bodies that stall, responses never
# read, idle connections past max_connections), vane (release, one worker, in front of three
# nginx backends on 127.0.0.1) is loaded by wrk alone and then beside COUNT hostile
# connections, in interleaved rounds; printed: requests/s, p50 and p99 of the ordinary
# clients, vane's resident memory, and what vane counted. Installs what it needs (Debian:
# nginx-light, wrk), builds vane, stops everything it started.
#
#   bash bench/floods.sh [COUNT] [ROUNDS] [SECONDS]     # default 500 connections, 3 rounds, 5 s
#   VANE=/path/to/vane bash bench/floods.sh             # that binary instead of a fresh build
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-500}
ROUNDS=${2:-3}
SECONDS_PER_RUN=${3:-5}
source bench/lib.sh
need_tools nginx:nginx-light wrk:wrk
[ -n "${VANE:-}" ] || build_vane
ulimit -n "$(ulimit -Hn)"
start_backends

port=19251
admin=19252
# Short timeouts, so that hostile connections are cut within a run; max_connections leaves
# room for the ordinary clients and half the hostile ones, so the idle flood meets the limit.
limits="admin = \"127.0.0.1:$admin\"\n[proxy]\nheader_read_timeout = \"2s\"\nbody_read_timeout = \"2s\"\nsend_timeout = \"2s\"\nmax_connections = $((COUNT / 2 + 64))"
vane_config "$port" "$limits" >"$WORK/vane.toml"
RUST_LOG=warn "$VANE" run --config "$WORK/vane.toml" >"$WORK/vane.log" 2>&1 &
PIDS+=($!)
vane_pid=$!
for _ in $(seq 100); do
    curl -sf "127.0.0.1:$admin/metrics" >/dev/null && break
    sleep 0.1
done

# One wrk run: "req/s p50_ms p99_ms".
load() {
    wrk -t1 -c16 -d"${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:$port/" 2>/dev/null | awk '
        /Requests\/sec/ { rps = $2 }
        /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        END { printf "%.0f %.3f %.3f\n", rps, ms(p50), ms(p99) }'
}

rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$vane_pid/status"; }

printf '%-11s %5s %9s %9s %9s %9s  %s\n' flood round "req/s" "p50 ms" "p99 ms" "rss MiB" "vane counted"
for round in $(seq "$ROUNDS"); do
    for mode in none slowloris stalled never-read idle; do
        flood=""
        if [ "$mode" != none ]; then
            python3 bench/floods.py "$mode" "$COUNT" "$port" &
            flood=$!
            sleep 3 # let the hostile connections open and settle
        fi
        read -r rps p50 p99 <<<"$(load)"
        rss=$(rss_mib)
        [ -n "$flood" ] && { kill "$flood"; wait "$flood" 2>/dev/null || true; }
        counted=$(curl -s "127.0.0.1:$admin/metrics" | awk '
            /^vane_client_faults_total/ && $2 > 0 { sub(/vane_client_faults_total/, ""); printf "%s=%s ", $1, $2 }
            /^vane_client_connections_(evicted|refused)_total/ && $2 > 0 { sub(/vane_client_connections_/, ""); printf "%s=%s ", $1, $2 }')
        printf '%-11s %5s %9s %9s %9s %9s  %s\n' "$mode" "$round" "$rps" "$p50" "$p99" "$rss" "${counted:--}"
        sleep 2 # let vane close what the flood left behind
    done
done
echo "(vane counted: totals since start, cumulative over the rounds)"
