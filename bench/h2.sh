#!/usr/bin/env bash
# HTTP/2 multiplexed: h2load (4 connections, 32 streams each, h2c with prior knowledge) against
# nginx, HAProxy and vane, one worker each, in front of three nginx backends on 127.0.0.1, two
# ways: HTTP/1.1 to the backends (nginx's proxy_pass, HAProxy, vane's default), and HTTP/2 to
# them (h2c: nginx's grpc_pass, HAProxy's `proto h2`, vane's `protocol = "h2c"`). Rounds are
# interleaved; prints the median requests/s and the proxy's CPU per request, with ratios to
# nginx. Installs what it needs (Debian: nginx-light, haproxy, nghttp2-client, curl).
#
#   bash bench/h2.sh [ROUNDS] [SECONDS]      # default 5 rounds of 5 s per run
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-5}
source bench/lib.sh
need_tools nginx:nginx-light haproxy:haproxy h2load:nghttp2-client curl:curl
build_vane
start_backends

h2c_servers=""
h2_servers=""
for port in "${BACKENDS[@]}"; do
    h2c_servers+="        server 127.0.0.1:$((port + 10));"$'\n'
    h2_servers+="    server h$port 127.0.0.1:$((port + 10)) proto h2"$'\n'
done
start_nginx_lb "
    upstream h2c {
$h2c_servers
        keepalive 64;
    }
    server {
        listen 127.0.0.1:19231 http2;
        location / { proxy_pass http://rr; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }
    server {
        listen 127.0.0.1:19232 http2;
        location / { grpc_pass grpc://h2c; }
    }"

start_haproxy "frontend http1-backends
    bind 127.0.0.1:19233 proto h2
    default_backend rr
frontend h2-backends
    bind 127.0.0.1:19234 proto h2
    default_backend rr-h2
backend rr-h2
    balance roundrobin
$h2_servers"

vane_config 19235 "" >"$WORK/vane-http1.toml"
vane_config 19236 "" h2c >"$WORK/vane-h2c.toml"
start_vane "$WORK/vane-http1.toml"
VANE_HTTP1=$VANE_PID
start_vane "$WORK/vane-h2c.toml"
VANE_H2C=$VANE_PID

# backends, target name, port, pid of the process whose CPU time is the proxy's
TARGETS=(
    "http1 nginx 19231 $NGINX_LB"
    "http1 haproxy 19233 $HAPROXY_PID"
    "http1 vane 19235 $VANE_HTTP1"
    "h2c nginx 19232 $NGINX_LB"
    "h2c haproxy 19234 $HAPROXY_PID"
    "h2c vane 19236 $VANE_H2C"
)
sleep 1
for target in "${TARGETS[@]}"; do
    read -r _ name port _ <<<"$target"
    curl -fsS --http2-prior-knowledge "http://127.0.0.1:$port/" >/dev/null ||
        { echo "$name on $port does not answer" >&2; exit 1; }
done

results="$WORK/results.txt"
: >"$results"
for round in $(seq "$ROUNDS"); do
    for target in "${TARGETS[@]}"; do
        read -r backends name port pid <<<"$target"
        [ "$name" = nginx ] && pid=$(nginx_worker "$NGINX_LB")
        before=$(cpu_ticks "$pid")
        out=$(h2load -c4 -m32 -t1 -D "$SECONDS_PER_RUN" "http://127.0.0.1:$port/")
        ticks=$(( $(cpu_ticks "$pid") - before ))
        rps=$(awk '/^finished in/ {sub(/,/, "", $4); print $4}' <<<"$out")
        done_ok=$(awk '/^requests:/ {print $8}' <<<"$out")
        failed=$(awk '/^requests:/ {print $10}' <<<"$out")
        cpu_us=$(awk -v t="$ticks" -v n="$done_ok" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
        echo "$round $backends $name $rps $cpu_us failed=$failed" | tee -a "$results" >&2
    done
done

print_medians "$results" backends
