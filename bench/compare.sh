#!/usr/bin/env bash
# vane against nginx and HAProxy, one worker each, in front of three identical nginx backends,
# all on 127.0.0.1. Installs what it needs (Debian: nginx-light, haproxy, wrk), builds vane and
# the plugins, runs wrk in interleaved rounds (every target once per round), and prints the
# median requests/s, the proxy's CPU per request, and p50/p99 at a fixed moderate rate, with
# ratios to nginx round-robin and to a backend reached directly. Stops everything it started.
#
#   bash bench/compare.sh [ROUNDS] [SECONDS]      # default 5 rounds of 5 s per target
#   CONNECTIONS=64 bash bench/compare.sh          # throughput runs with 64 connections (default 32)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-5}
CONNECTIONS=${CONNECTIONS:-32}   # throughput runs: wrk -t1 -c32
PACED_CONNECTIONS=8       # latency runs: 8 connections, each waiting 1 ms between requests
source bench/lib.sh
need_tools nginx:nginx-light haproxy:haproxy wrk:wrk
build_vane
start_backends

# nginx as the balancer: round-robin on 19201, least_conn on 19202, upstream keepalive.
start_nginx_lb '
    server {
        listen 127.0.0.1:19201;
        location / { proxy_pass http://rr; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
    server {
        listen 127.0.0.1:19202;
        location / { proxy_pass http://lc; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }'

# HAProxy: roundrobin on 19203, leastconn on 19204, one thread, connection reuse.
start_haproxy "frontend rr
    bind 127.0.0.1:19203
    default_backend rr
frontend lc
    bind 127.0.0.1:19204
    default_backend lc"

# vane three ways, one worker each: built-in round-robin, round-robin plugin, least-conn plugin.
declare -A VANE_PIDS
vane_config 19205 "" >"$WORK/vane-builtin.toml"
vane_config 19206 "[policy]\nplugin = \"$PWD/$PLUGINS/round_robin.wasm\"" >"$WORK/vane-rr.toml"
vane_config 19207 "[policy]\nplugin = \"$PWD/$PLUGINS/least_conn.wasm\"" >"$WORK/vane-lc.toml"
for name in builtin rr lc; do
    start_vane "$WORK/vane-$name.toml"
    VANE_PIDS[$name]=$VANE_PID
done

# target name, port, pid of the process whose CPU time is the proxy's (none for direct)
TARGETS=(
    "direct 19101 -"
    "nginx-rr 19201 $NGINX_LB"
    "nginx-lc 19202 $NGINX_LB"
    "haproxy-rr 19203 $HAPROXY_PID"
    "haproxy-lc 19204 $HAPROXY_PID"
    "vane-builtin 19205 ${VANE_PIDS[builtin]}"
    "vane-rr-plugin 19206 ${VANE_PIDS[rr]}"
    "vane-lc-plugin 19207 ${VANE_PIDS[lc]}"
)

check_targets http

paced_lua="$WORK/paced.lua"
echo 'function delay() return 1 end' >"$paced_lua"

results="$WORK/results.txt"
: >"$results"
for round in $(seq "$ROUNDS"); do
    for target in "${TARGETS[@]}"; do
        read -r name port pid <<<"$target"
        case "$name" in nginx-*) pid=$(nginx_worker "$NGINX_LB") ;; esac
        before=0
        [ "$pid" != - ] && before=$(cpu_ticks "$pid")
        out=$(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:$port/")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        total=$(awk '/requests in/ {print $1}' <<<"$out")
        cpu_us=-
        if [ "$pid" != - ]; then
            ticks=$(( $(cpu_ticks "$pid") - before ))
            cpu_us=$(awk -v t="$ticks" -v n="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
        fi
        paced=$(wrk -t1 -c"$PACED_CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "$paced_lua" "http://127.0.0.1:$port/")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$paced")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$paced")
        echo "$round $name $rps $cpu_us $p50 $p99" | tee -a "$results" >&2
    done
done

# Medians per target, ratios to nginx round-robin and to the backend direct.
python3 - "$results" <<'EOF'
import statistics, sys

def ms(text):
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float("nan")

rows = {}
for line in open(sys.argv[1]):
    _, name, rps, cpu, p50, p99 = line.split()
    row = rows.setdefault(name, {"rps": [], "cpu": [], "p50": [], "p99": []})
    row["rps"].append(float(rps))
    if cpu != "-":
        row["cpu"].append(float(cpu))
    row["p50"].append(ms(p50))
    row["p99"].append(ms(p99))

med = {name: {k: (statistics.median(v) if v else None) for k, v in row.items()} for name, row in rows.items()}
nginx, direct = med["nginx-rr"]["rps"], med["direct"]["rps"]
print(f"{'target':<16} {'req/s (median)':>14} {'÷ nginx-rr':>10} {'÷ direct':>9} {'CPU µs/req':>11} {'p50 ms':>7} {'p99 ms':>7}  req/s by round")
for name, m in med.items():
    cpu = "-" if m["cpu"] is None else f"{m['cpu']:.1f}"
    rounds = " ".join(f"{r / 1000:.1f}k" for r in rows[name]["rps"])
    print(f"{name:<16} {m['rps']:>14.0f} {m['rps'] / nginx:>10.2f} {m['rps'] / direct:>9.2f} {cpu:>11} {m['p50']:>7.2f} {m['p99']:>7.2f}  {rounds}")
EOF
