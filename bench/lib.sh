#!/usr/bin/env bash
# What the bench scripts share: a scratch folder and the processes to stop at exit, tools from
# Debian's packages, vane and its plugins built for release, three nginx backends on loopback,
# and vane's config in front of them. Sourced from the repository root.

WORK=$(mktemp -d /tmp/vane-bench.XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# need_tools COMMAND:PACKAGE...: installs, from Debian's packages, the ones not on the machine.
need_tools() {
    local missing=() tool
    for tool in "$@"; do
        command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || missing+=("${tool#*:}")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing ${missing[*]}" >&2
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" apt-get update -q
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

# build_vane: the plugins and a release build of vane.
build_vane() {
    bash scripts/build-plugins.sh >&2
    cargo build --release -p vane >&2
    VANE=target/release/vane
    PLUGINS=target/wasm32-wasip2/release
}

# Ports: backends 19101-19103; targets 19201...
BACKENDS=(19101 19102 19103)

# start_backends: one nginx per backend port, one worker each, answering a short body; each also
# speaks h2c (HTTP/2 with prior knowledge) on its port + 10.
start_backends() {
    local port
    for port in "${BACKENDS[@]}"; do
        mkdir -p "$WORK/backend-$port"
        cat >"$WORK/backend-$port/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/backend-$port/nginx.pid;
error_log /dev/null crit;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        location / { return 200 "hello from $port\n"; }
    }
    server {
        listen 127.0.0.1:$((port + 10)) http2;
        location / { return 200 "hello from $port\n"; }
    }
}
EOF
        "$NGINX" -p "$WORK/backend-$port" -c "$WORK/backend-$port/nginx.conf" &
        PIDS+=($!)
    done
}

# vane_config PORT [POLICY TABLE] [h2c]: vane on PORT, one worker, in front of the backends
# (over h2c to their HTTP/2 ports with a third argument `h2c`). The backends are tagged for the
# plugins that read tags: the first two `zone=a`, the third `zone=b` and `canary`.
BACKEND_TAGS=('"zone=a"' '"zone=a"' '"zone=b", "canary"')
vane_config() {
    local i port text="listen = \"127.0.0.1:$1\"\nworkers = 1\n$2\n"
    for i in "${!BACKENDS[@]}"; do
        port=${BACKENDS[$i]}
        if [ "${3:-}" = h2c ]; then
            text+="[[backends]]\nname = \"b$port\"\naddress = \"127.0.0.1:$((port + 10))\"\nprotocol = \"h2c\"\n"
        else
            text+="[[backends]]\nname = \"b$port\"\naddress = \"127.0.0.1:$port\"\n"
        fi
        text+="tags = [${BACKEND_TAGS[$i]}]\n"
    done
    printf '%b' "$text"
}

# start_vane CONFIG: vane (release build) with the config file CONFIG, in the background;
# sets VANE_PID.
start_vane() {
    RUST_LOG=warn "$VANE" run --config "$1" &
    PIDS+=($!)
    VANE_PID=$!
}

# start_nginx_lb SERVERS: nginx as the balancer, one worker, with upstreams `rr` (round-robin)
# and `lc` (least_conn) over the backends (keep-alive to them), and the `server` blocks
# SERVERS; sets NGINX_LB to its master's pid.
start_nginx_lb() {
    local servers
    mkdir -p "$WORK/nginx-lb"
    servers=$(printf '        server 127.0.0.1:%s;\n' "${BACKENDS[@]}")
    cat >"$WORK/nginx-lb/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx-lb/nginx.pid;
error_log /dev/null crit;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream rr {
$servers
        keepalive 64;
    }
    upstream lc {
        least_conn;
$servers
        keepalive 64;
    }
$1
}
EOF
    "$NGINX" -p "$WORK/nginx-lb" -c "$WORK/nginx-lb/nginx.conf" &
    PIDS+=($!)
    NGINX_LB=$!
}

# check_targets SCHEME: after a second, fails unless every entry of TARGETS ("name port ...")
# answers SCHEME://127.0.0.1:port/ (certificates not checked).
check_targets() {
    local target name port
    sleep 1
    for target in "${TARGETS[@]}"; do
        read -r name port _ <<<"$target"
        curl -fsSk "$1://127.0.0.1:$port/" >/dev/null || { echo "$name on $port does not answer" >&2; exit 1; }
    done
}

# CPU ticks (user + system) of a process and its threads.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The nginx worker is the master's child.
nginx_worker() { pgrep -P "$1" | head -1; }

# start_haproxy FRONTENDS: HAProxy as the balancer, one thread, connection reuse, with
# backends `rr` (roundrobin) and `lc` (leastconn) over the backends, and the `frontend`
# sections FRONTENDS; sets HAPROXY_PID.
start_haproxy() {
    local servers="" port
    for port in "${BACKENDS[@]}"; do servers+="    server s$port 127.0.0.1:$port"$'\n'; done
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    http-reuse always
$1
backend rr
    balance roundrobin
$servers
backend lc
    balance leastconn
$servers
EOF
    "$(command -v haproxy || echo /usr/sbin/haproxy)" -f "$WORK/haproxy.cfg" -db &
    PIDS+=($!)
    HAPROXY_PID=$!
}

# print_medians RESULTS COLUMN: the medians of RESULTS' lines ("round GROUP TARGET req/s cpu-µs
# ..."), per group and target, with ratios to nginx in the same group; COLUMN names the group.
print_medians() {
    python3 - "$1" "$2" <<'PY'
import statistics, sys

rows = {}
for line in open(sys.argv[1]):
    _, group, name, rps, cpu = line.split()[:5]
    row = rows.setdefault((group, name), {"rps": [], "cpu": []})
    row["rps"].append(float(rps))
    row["cpu"].append(float(cpu))

print(f"{sys.argv[2]:<10} {'target':<8} {'req/s (median)':>14} {'÷ nginx':>8} {'CPU µs/req':>11} {'÷ nginx':>8}  req/s by round")
for (group, name), row in rows.items():
    rps, cpu = statistics.median(row["rps"]), statistics.median(row["cpu"])
    base = rows[(group, "nginx")]
    base_rps, base_cpu = statistics.median(base["rps"]), statistics.median(base["cpu"])
    rounds = " ".join(f"{r / 1000:.1f}k" for r in row["rps"])
    print(f"{group:<10} {name:<8} {rps:>14.0f} {rps / base_rps:>8.2f} {cpu:>11.1f} {cpu / base_cpu:>8.2f}  {rounds}")
PY
}
