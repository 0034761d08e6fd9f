#!/usr/bin/env bash
# Memory per idle keep-alive connection, vane against nginx, side by side. Each proxy runs one
# worker with a least-conn policy in front of three nginx backends on 127.0.0.1. For each one:
# the p50/p99 of new requests (wrk, paced), its resident memory after them, then N clients
# each send one request and hold their connection idle (bench/idle_clients.py), and the same
# again while they are held: memory per connection is the growth divided by N. Installs what it
# needs (Debian: nginx-light, wrk), builds vane and the plugins, stops everything it started.
#
#   bash bench/connections.sh [N] [ROUNDS]      # default 10000 connections, 3 rounds
#   H2=1 bash bench/connections.sh              # the held connections are h2c instead
#
# VANE=/path/to/vane measures that binary instead of a fresh release build. N is bounded by the
# file-descriptor hard limit (`ulimit -Hn`): each proxy holds N client connections at once.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
ROUNDS=${2:-3}
SECONDS_PER_RUN=5
source bench/lib.sh
need_tools nginx:nginx-light wrk:wrk
if [ -n "${VANE:-}" ]; then
    bash scripts/build-plugins.sh >&2
    PLUGINS=target/wasm32-wasip2/release
else
    build_vane
fi
ulimit -n "$(ulimit -Hn)"
start_backends

servers=$(printf '        server 127.0.0.1:%s;\n' "${BACKENDS[@]}")
mkdir -p "$WORK/nginx-lb"
cat >"$WORK/nginx-lb/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $(ulimit -Hn);
daemon off;
pid $WORK/nginx-lb/nginx.pid;
error_log /dev/null crit;
events { worker_connections $((N + 1000)); }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream lc {
        least_conn;
$servers
        keepalive 64;
    }
    server {
        listen 127.0.0.1:19211 backlog=4096;
        listen 127.0.0.1:19213 http2 backlog=4096;
        location / { proxy_pass http://lc; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF
vane_config 19212 "[policy]\nplugin = \"$PWD/$PLUGINS/least_conn.wasm\"\n[proxy]\nmax_connections = $((N + 1000))\n${VANE_PROXY:-idle_timeout = \"300s\"}" \
    >"$WORK/vane.toml"

# start TARGET: a fresh proxy for each round, so that one round's freed memory does not hide
# the next round's growth; $! is its (main) process.
start() {
    case "$1" in
        nginx)
            "$NGINX" -p "$WORK/nginx-lb" -c "$WORK/nginx-lb/nginx.conf" &
            PIDS+=($!)
            ;;
        vane)
            start_vane "$WORK/vane.toml"
            ;;
    esac
}
# wait_for PORT: until something answers there.
wait_for() {
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$1/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "nothing answers on $1" >&2
    exit 1
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
paced_lua="$WORK/paced.lua"
echo 'function delay() return 1 end' >"$paced_lua"
# p50 and p99 of paced requests on 8 fresh keep-alive connections.
latency() {
    local out
    out=$(wrk -t1 -c8 -d"${SECONDS_PER_RUN}s" --latency -s "$paced_lua" "http://127.0.0.1:$1/")
    echo "$(awk '$1 == "50%" {print $2}' <<<"$out") $(awk '$1 == "99%" {print $2}' <<<"$out")"
}

results="$WORK/results.txt"
: >"$results"
for round in $(seq "$ROUNDS"); do
    # target, port for new requests (HTTP/1.1), port the held connections use
    for target in "nginx 19211 $([ -n "${H2:-}" ] && echo 19213 || echo 19211)" "vane 19212 19212"; do
        read -r name port hold_port <<<"$target"
        start "$name"
        main_pid=$!
        wait_for "$port"
        pid=$main_pid
        [ "$name" = nginx ] && pid=$(nginx_worker "$main_pid")
        read -r p50_none p99_none <<<"$(latency "$port")"
        idle=$(rss_kib "$pid")
        coproc HOLD { python3 bench/idle_clients.py "127.0.0.1:$hold_port" "$N" ${H2:+--h2}; }
        read -r status opened open_seconds <&"${HOLD[0]}"
        [ "$status" = open ] || { echo "$name: $status $opened $open_seconds" >&2; exit 1; }
        sleep 1
        held=$(rss_kib "$pid")
        read -r p50_held p99_held <<<"$(latency "$port")"
        echo >&"${HOLD[1]}"
        read -r _ closed <&"${HOLD[0]}"
        wait "$HOLD_PID" 2>/dev/null || true
        kill "$main_pid"
        wait "$main_pid" 2>/dev/null || true
        echo "$round $name $idle $held $open_seconds $p50_none $p99_none $p50_held $p99_held $closed" | tee -a "$results" >&2
    done
done

python3 - "$results" "$N" "$([ -n "${H2:-}" ] && echo h2c || echo HTTP/1.1)" <<'EOF'
import statistics, sys

def ms(text):
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float("nan")

n = int(sys.argv[2])
rows = {}
for line in open(sys.argv[1]):
    _, name, idle, held, secs, p50n, p99n, p50h, p99h, closed = line.split()
    row = rows.setdefault(name, {k: [] for k in ("idle", "held", "per", "secs", "p50n", "p99n", "p50h", "p99h", "closed")})
    row["idle"].append(int(idle) / 1024)
    row["held"].append(int(held) / 1024)
    row["per"].append((int(held) - int(idle)) / n)
    row["secs"].append(float(secs))
    for key, value in (("p50n", p50n), ("p99n", p99n), ("p50h", p50h), ("p99h", p99h)):
        row[key].append(ms(value))
    row["closed"].append(int(closed))

print(f"{n} idle keep-alive {sys.argv[3]} connections, medians of {len(next(iter(rows.values()))['idle'])} rounds")
print(f"{'target':<7} {'idle MiB':>8} {'held MiB':>8} {'KiB/conn':>8} {'open s':>6} {'p50 ms':>7} {'p99 ms':>7} {'p50 held':>8} {'p99 held':>8} {'p99 ×':>6} {'closed':>6}")
for name, row in rows.items():
    m = {k: statistics.median(v) for k, v in row.items()}
    print(f"{name:<7} {m['idle']:>8.1f} {m['held']:>8.1f} {m['per']:>8.2f} {m['secs']:>6.2f} {m['p50n']:>7.2f} {m['p99n']:>7.2f} {m['p50h']:>8.2f} {m['p99h']:>8.2f} {m['p99h'] / m['p99n']:>6.2f} {max(row['closed']):>6}")
EOF
