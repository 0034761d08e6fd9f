#!/usr/bin/env bash
# HTTPS: vane's TLS listener against nginx and HAProxy terminating TLS with the same ECDSA P-256
# certificate, one worker each, in front of three nginx backends (plaintext), all on 127.0.0.1.
# Two runs per target and round, interleaved: keep-alive requests (wrk -t1 -c32, TLS once per
# connection) and a new connection per request (`Connection: close`, a full handshake each, as
# wrk resumes no session). Prints the median requests/s and the proxy's CPU per request, with
# ratios to nginx. Installs what it needs (Debian: nginx-light, haproxy, wrk, openssl).
#
#   bash bench/https.sh [ROUNDS] [SECONDS]      # default 5 rounds of 5 s per run
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-5}
CONNECTIONS=32
source bench/lib.sh
need_tools nginx:nginx-light haproxy:haproxy wrk:wrk openssl:openssl
build_vane
start_backends

# One certificate for all three.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"

start_nginx_lb "
    server {
        listen 127.0.0.1:19211 ssl http2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { proxy_pass http://rr; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }"

start_haproxy "frontend rr
    bind 127.0.0.1:19213 ssl crt $WORK/haproxy.pem alpn h2,http/1.1
    default_backend rr"

{
    vane_config 19214 ""
    printf '[[listeners]]\naddress = "127.0.0.1:19215"\n'
    printf 'tls = { certificates = [{ cert = "%s", key = "%s" }] }\n' "$WORK/cert.pem" "$WORK/key.pem"
} >"$WORK/vane.toml"
start_vane "$WORK/vane.toml"

# target name, port, pid of the process whose CPU time is the proxy's
TARGETS=(
    "nginx 19211 $NGINX_LB"
    "haproxy 19213 $HAPROXY_PID"
    "vane 19215 $VANE_PID"
)

check_targets https

results="$WORK/results.txt"
: >"$results"
for round in $(seq "$ROUNDS"); do
    for mode in keepalive close; do
        for target in "${TARGETS[@]}"; do
            read -r name port pid <<<"$target"
            [ "$name" = nginx ] && pid=$(nginx_worker "$NGINX_LB")
            header=()
            [ "$mode" = close ] && header=(-H "Connection: close")
            before=$(cpu_ticks "$pid")
            out=$(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" "${header[@]}" "https://127.0.0.1:$port/")
            rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
            total=$(awk '/requests in/ {print $1}' <<<"$out")
            ticks=$(( $(cpu_ticks "$pid") - before ))
            cpu_us=$(awk -v t="$ticks" -v n="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
            errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
            echo "$round $mode $name $rps $cpu_us ${errors:-}" | tee -a "$results" >&2
        done
    done
done

print_medians "$results" run
