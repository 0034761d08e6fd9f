#!/usr/bin/env bash
# vane against nginx and HAProxy, one worker each, in front of three identical nginx backends,
# all on 127.0.0.1. Installs what it needs (Debian: nginx-light, haproxy, wrk), builds vane and
# the plugins, runs wrk in interleaved rounds (every target at every concurrency once per round),
# and prints, per concurrency, the median requests/s and the proxy's CPU per request with ratios
# to nginx round-robin, to vane's built-in round-robin and to a backend reached directly, and
# p50/p99 at a fixed moderate rate. vane runs with its built-in round-robin and with every
# shipped plugin. Stops everything it started.
#
#   bash bench/compare.sh [ROUNDS] [SECONDS]      # default 3 rounds of 4 s per target and run
#   CONNECTIONS="32 64" bash bench/compare.sh     # the throughput runs' connections (this default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-4}
read -r -a CONNECTIONS <<<"${CONNECTIONS:-32 64}"   # throughput runs: wrk -t1 -cN for each N
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

# vane with its built-in round-robin and with each shipped plugin, one worker each. canary sends
# 5 % to the backend tagged `canary`; locality serves zone a (two of the three backends).
PLUGIN_TARGETS=(
    "rr-plugin round_robin"
    "lc-plugin least_conn"
    "p2c-plugin p2c_ewma"
    "hash-plugin consistent_hash"
    "canary-plugin canary share=5"
    "locality-plugin locality zone=a"
)
vane_config 19205 "" >"$WORK/vane-builtin.toml"
start_vane "$WORK/vane-builtin.toml"
TARGETS=(
    "direct 19101 -"
    "nginx-rr 19201 $NGINX_LB"
    "nginx-lc 19202 $NGINX_LB"
    "haproxy-rr 19203 $HAPROXY_PID"
    "haproxy-lc 19204 $HAPROXY_PID"
    "vane-builtin 19205 $VANE_PID"
)
port=19206
for plugin in "${PLUGIN_TARGETS[@]}"; do
    read -r name file config <<<"$plugin"
    vane_config "$port" "[policy]\nplugin = \"$PWD/$PLUGINS/$file.wasm\"\nconfig = \"${config:-}\"" >"$WORK/vane-$name.toml"
    start_vane "$WORK/vane-$name.toml"
    TARGETS+=("vane-$name $port $VANE_PID")
    port=$((port + 1))
done

check_targets http

paced_lua="$WORK/paced.lua"
echo 'function delay() return 1 end' >"$paced_lua"

results="$WORK/results.txt"
: >"$results"
for round in $(seq "$ROUNDS"); do
    for target in "${TARGETS[@]}"; do
        read -r name port pid <<<"$target"
        case "$name" in nginx-*) pid=$(nginx_worker "$NGINX_LB") ;; esac
        for connections in "${CONNECTIONS[@]}"; do
            before=0
            [ "$pid" != - ] && before=$(cpu_ticks "$pid")
            out=$(wrk -t1 -c"$connections" -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:$port/")
            rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
            total=$(awk '/requests in/ {print $1}' <<<"$out")
            cpu_us=-
            if [ "$pid" != - ]; then
                ticks=$(( $(cpu_ticks "$pid") - before ))
                cpu_us=$(awk -v t="$ticks" -v n="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
            fi
            echo "$round c$connections $name $rps $cpu_us" | tee -a "$results" >&2
        done
        paced=$(wrk -t1 -c"$PACED_CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "$paced_lua" "http://127.0.0.1:$port/")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$paced")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$paced")
        echo "$round paced $name $p50 $p99" | tee -a "$results" >&2
    done
done

# Medians per concurrency and target, with ratios to nginx round-robin, to vane's built-in and to
# the backend direct; then the paced latencies.
python3 - "$results" <<'EOF'
import statistics, sys

def ms(text):
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float("nan")

runs, paced = {}, {}
for line in open(sys.argv[1]):
    fields = line.split()
    if fields[1] == "paced":
        row = paced.setdefault(fields[2], {"p50": [], "p99": []})
        row["p50"].append(ms(fields[3]))
        row["p99"].append(ms(fields[4]))
        continue
    _, group, name, rps, cpu = fields
    row = runs.setdefault(group, {}).setdefault(name, {"rps": [], "cpu": []})
    row["rps"].append(float(rps))
    if cpu != "-":
        row["cpu"].append(float(cpu))

median = lambda values: statistics.median(values) if values else None
for group, rows in runs.items():
    med = {name: {k: median(v) for k, v in row.items()} for name, row in rows.items()}
    nginx, builtin, direct = (med[n]["rps"] for n in ("nginx-rr", "vane-builtin", "direct"))
    nginx_cpu = med["nginx-rr"]["cpu"]
    print(f"\nwrk -t1 -{group}")
    print(f"{'target':<20} {'req/s (median)':>14} {'÷ nginx-rr':>10} {'÷ builtin':>9} {'÷ direct':>9} {'CPU µs/req':>11} {'÷ nginx-rr':>10}  req/s by round")
    for name, m in med.items():
        cpu = "-" if m["cpu"] is None else f"{m['cpu']:.1f}"
        cpu_ratio = "-" if m["cpu"] is None else f"{m['cpu'] / nginx_cpu:.2f}"
        rounds = " ".join(f"{r / 1000:.1f}k" for r in rows[name]["rps"])
        print(f"{name:<20} {m['rps']:>14.0f} {m['rps'] / nginx:>10.2f} {m['rps'] / builtin:>9.2f} {m['rps'] / direct:>9.2f} {cpu:>11} {cpu_ratio:>10}  {rounds}")

print("\npaced: 8 connections, each waiting 1 ms between requests")
print(f"{'target':<20} {'p50 ms':>7} {'p99 ms':>7}")
for name, row in paced.items():
    print(f"{name:<20} {median(row['p50']):>7.2f} {median(row['p99']):>7.2f}")
EOF
