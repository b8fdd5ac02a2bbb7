#!/usr/bin/env bash
# Benchmark: memory per idle TLS connection, the gateway against nginx with the same certificate. Opens
# BENCH_IDLE connections (default 5000) to each server in turn. Each connection completes the TLS
# handshake, sends one request (answered 404 by both) and then stays idle, as a device between its
# messages does. The script reports the server's resident memory (all its processes) before and 3 s
# after, and the growth per connection.
#
# Usage (from the repository root):  scripts/bench/idle_memory.sh
#   BENCH_IDLE     connections (default 5000)
#   SEKISHO_BIN    this binary instead of building target/release/sekisho
# A measurement, not a test: it exits non-zero only if a server does not start or a connection fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
N=${BENCH_IDLE:-5000}
ulimit -n $((N * 2 + 1024))
die() { echo "idle_memory.sh: $*" >&2; exit 1; }
if [[ -z "${SEKISHO_BIN:-}" ]]; then
    cargo build --release --bin sekisho
    SEKISHO_BIN=target/release/sekisho
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x "$NGINX" ]] || die "nginx not found (apt-get install nginx)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sekisho-idle.XXXXXX")
chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
read -r DEV ADM NGX <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')"

rss_kb() { # pids: summed VmRSS in KiB
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done
    echo "$t"
}

hold() { # port pids...: opens N idle connections, prints "before after" RSS in KiB, then closes them
    local port=$1
    shift
    python3 - "$port" "$N" "$WORK/data/tls/ca.crt" "$@" <<'EOF'
import socket, ssl, sys, time
port, n, ca, pids = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
def rss():
    t = 0
    for p in pids:
        for line in open(f"/proc/{p}/status"):
            if line.startswith("VmRSS"):
                t += int(line.split()[1])
    return t
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
time.sleep(1)
before = rss()
conns = []
for i in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.sendall(b"GET /idle HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = s.recv(65536)
    if not head.startswith(b"HTTP/1.1 404"):
        sys.exit(f"connection {i}: unexpected answer {head[:40]!r}")
    conns.append(s)
time.sleep(3)
after = rss()
print(before, after)
for s in conns:
    s.close()
EOF
}

SEKISHO_ADMIN_PASSWORD=bench-only-password "$SEKISHO_BIN" init --data-dir "$WORK/data" >/dev/null 2>&1 || die "sekisho init failed"
sed -i "s/^max_connections_per_address = 64$/max_connections_per_address = $((N + 16))/; s/^max_connections = 10000$/max_connections = $((N + 100))/" "$WORK/data/sekisho.toml"
grep -q "^max_connections_per_address = $((N + 16))$" "$WORK/data/sekisho.toml" || die "could not raise the per-address cap"
taskset -c 0 "$SEKISHO_BIN" serve --data-dir "$WORK/data" --device-listen "127.0.0.1:$DEV" --admin-listen "127.0.0.1:$ADM" >"$WORK/gateway.log" 2>&1 &
GW=$!
PIDS+=("$GW")
for ((i = 0; i < 300; i++)); do curl -s -o /dev/null --cacert "$WORK/data/tls/ca.crt" "https://127.0.0.1:$DEV/v1/openapi.json" && break; sleep 0.1; done
read -r G0 G1 <<<"$(hold "$DEV" "$GW")"
kill "$GW"

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
worker_rlimit_nofile $((N * 2 + 1024));
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections $((N + 100)); }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/cb; proxy_temp_path $WORK/nginx/p; fastcgi_temp_path $WORK/nginx/f;
    uwsgi_temp_path $WORK/nginx/u; scgi_temp_path $WORK/nginx/s;
    keepalive_timeout 65s;
    server {
        listen 127.0.0.1:$NGX ssl;
        ssl_certificate $WORK/data/tls/device.crt;
        ssl_certificate_key $WORK/data/tls/device.key;
        location / { return 404; }
    }
}
EOF
taskset -c 0 "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
NP=$!
PIDS+=("$NP")
for ((i = 0; i < 100; i++)); do curl -s -o /dev/null --cacert "$WORK/data/tls/ca.crt" "https://127.0.0.1:$NGX/" && break; sleep 0.1; done
# shellcheck disable=SC2046 # the master and its worker
read -r N0 N1 <<<"$(hold "$NGX" "$NP" $(pgrep -P "$NP"))"

python3 - "$N" "$G0" "$G1" "$N0" "$N1" <<'EOF'
import sys
n, g0, g1, n0, n1 = map(int, sys.argv[1:])
g, x = (g1 - g0) * 1024 / n, (n1 - n0) * 1024 / n
print(f"{n} idle TLS connections (handshake, one request, idle 3 s)")
print(f"  sekisho: RSS {g0/1024:.1f} -> {g1/1024:.1f} MiB, {g/1000:.1f} KB per connection")
print(f"  nginx  : RSS {n0/1024:.1f} -> {n1/1024:.1f} MiB, {x/1000:.1f} KB per connection")
print(f"memory per idle connection sekisho/nginx = {g/x:.2f}   (goal <= 1.0)")
EOF
