#!/usr/bin/env bash
# Benchmark: authenticated telemetry ingest over TLS keep-alive, against nginx answering 204 over TLS
# with the same certificate, in the same run on the same machine. See docs/performance.md.
#
# Usage (from the repository root):  scripts/bench/ingest.sh
#
# Environment:
#   BENCH_DURATION     wrk duration of each measured run (default 20s)
#   BENCH_WARMUP       wrk warm-up before each measured run, not counted (default 3s; 0 to skip)
#   BENCH_CONNECTIONS  keep-alive connections (default 32)
#   BENCH_THREADS      wrk threads (default 1)
#   BENCH_SYNC         full (default, the shipped setting) or normal: the gateway's [store] sync
#   BENCH_DETECTION    on (default) or off: the gateway's [detection] enabled (off only to measure its cost)
#   BENCH_SERVER_CPU   core for the server under test (default 0)
#   BENCH_CLIENT_CPU   core for wrk (default 1)
#   SEKISHO_BIN        benchmark this binary instead of building target/release/sekisho
#   BENCH_OPEN_LOOP    if set, also measure open-loop latency (sekisho-openload): the gateway at 50 % of the
#                      rate wrk reached and nginx proxy_pass (to an upstream answering 204) at the same
#                      rate; and the gateway's CPU per message at 10 % of that rate against at the maximum
#   BENCH_OPEN_DURATION  length of each open-loop run (default: BENCH_DURATION)
#   OPENLOAD_BIN       use this sekisho-openload instead of the one beside SEKISHO_BIN or building it
#   BENCH_PERF         if set, also profile the gateway with perf during its run (prints the top symbols)
#   BENCH_KEEP         if set, keep the temporary directory (data dir, logs, wrk output)
#   BENCH_TMPDIR       where the temporary data directory goes (default $TMPDIR or /tmp); it should be
#                      on the disk you care about, since sync = full fsyncs there
#
# This is a measurement, not a test: slow figures never fail it. It exits non-zero only on errors (the
# gateway or nginx not starting, non-2xx responses, socket errors, fewer messages stored than acknowledged).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO=$(pwd)
LUA="$REPO/scripts/bench/ingest.lua"

DURATION=${BENCH_DURATION:-20s}
WARMUP=${BENCH_WARMUP:-3s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-1}
SYNC=${BENCH_SYNC:-full}
DETECTION=${BENCH_DETECTION:-on}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
BASE_TMP=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
BODY_BYTES=256

die() { echo "ingest.sh: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

case "$SYNC" in full | normal) ;; *) die "BENCH_SYNC must be full or normal, not '$SYNC'" ;; esac
case "$DETECTION" in on | off) ;; *) die "BENCH_DETECTION must be on or off, not '$DETECTION'" ;; esac
[[ "$CONNECTIONS" =~ ^[0-9]+$ && "$THREADS" =~ ^[0-9]+$ ]] || die "BENCH_CONNECTIONS and BENCH_THREADS must be numbers"

# --- 1. tools and build -------------------------------------------------------------------------------
missing=()
have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; } # nginx lives in /usr/sbin
for t in nginx:nginx wrk:wrk curl:curl taskset:util-linux python3:python3 openssl:openssl; do
    have "${t%%:*}" || missing+=("${t#*:}")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update
    $SUDO apt-get install -y "${missing[@]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x "$NGINX" ]] || die "nginx not found"

NPROC=$(nproc)
if ((NPROC < 2)) || ((SERVER_CPU >= NPROC)) || ((CLIENT_CPU >= NPROC)); then
    die "need cores $SERVER_CPU and $CLIENT_CPU (this machine has $NPROC); set BENCH_SERVER_CPU/BENCH_CLIENT_CPU"
fi

if [[ -n "${SEKISHO_BIN:-}" ]]; then
    SEKISHO=$SEKISHO_BIN
    SOURCE="SEKISHO_BIN=$SEKISHO_BIN"
else
    log "cargo build --release --bin sekisho"
    cargo build --release --bin sekisho
    SEKISHO="$REPO/target/release/sekisho"
    SOURCE="target/release/sekisho built from the working tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    [[ -z "$(git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]] || SOURCE+=" with uncommitted changes"
fi
[[ -x "$SEKISHO" ]] || die "$SEKISHO is not an executable"
OPEN_LOOP=${BENCH_OPEN_LOOP:-}
OPEN_DURATION=${BENCH_OPEN_DURATION:-$DURATION}
if [[ -n "$OPEN_LOOP" ]]; then
    OPENLOAD=${OPENLOAD_BIN:-$(dirname "$SEKISHO")/sekisho-openload}
    if [[ ! -x "$OPENLOAD" ]]; then
        log "cargo build --release -p sekisho-sim --bin sekisho-openload"
        cargo build --release -p sekisho-sim --bin sekisho-openload
        OPENLOAD="$REPO/target/release/sekisho-openload"
    fi
fi

# --- temp dirs, cleanup ---------------------------------------------------------------------------------
WORK=$(mktemp -d "$BASE_TMP/sekisho-bench.XXXXXX")
DATA="$WORK/data"
NGX="$WORK/nginx"
OUT="$WORK/out"
mkdir -p "$NGX" "$OUT"
chmod 755 "$WORK" "$NGX" # the nginx worker may run as another user
GW_PID=""
NGX_PID=""

stop_pid() { # pid signal name
    local pid=$1 sig=$2 name=$3 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "ingest.sh: $name (pid $pid) did not stop in 15 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null
}

cleanup() {
    local rc=$?
    set +e
    [[ -n "$GW_PID" ]] && stop_pid "$GW_PID" TERM sekisho
    [[ -n "$NGX_PID" ]] && stop_pid "$NGX_PID" TERM nginx
    if [[ -n "${BENCH_KEEP:-}" ]]; then
        echo "ingest.sh: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() { # n: prints n free loopback TCP ports
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

json_get() { # key: reads JSON on stdin, prints obj[key] (dotted path)
    python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1"
}

# CPU counters (clock ticks): "cpuN busy total iowait" for the two cores from /proc/stat, then
# "server ticks 0 0" with the CPU time of the server processes given as arguments (all their threads).
# Server core busy well above the server's own share means something else ran on that core.
cpu_sample() {
    awk -v a="cpu$SERVER_CPU" -v b="cpu$CLIENT_CPU" '$1 == a || $1 == b {
        t = 0; for (i = 2; i <= 9; i++) t += $i
        print $1, t - $5 - $6, t, $6 }' /proc/stat
    local pid ticks=0
    for pid in "$@"; do
        ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "server $ticks 0 0"
}

read -r DEV_PORT ADMIN_PORT NGX_PORT NGX_PROXY_PORT NGX_UP_PORT <<<"$(free_ports 5)"
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg) # other work on the machine skews the figures: reported

# --- 2. gateway -------------------------------------------------------------------------------------------
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
log "sekisho init --data-dir $DATA"
SEKISHO_ADMIN_PASSWORD="$PASSWORD" "$SEKISHO" init --data-dir "$DATA" >"$OUT/init.log" 2>&1 ||
    { cat "$OUT/init.log" >&2; die "sekisho init failed"; }
if [[ "$SYNC" == normal ]]; then
    sed -i 's/^sync = "full"$/sync = "normal"/' "$DATA/sekisho.toml"
fi
grep -q "^sync = \"$SYNC\"$" "$DATA/sekisho.toml" || die "could not set [store] sync = \"$SYNC\" in $DATA/sekisho.toml"
# All of wrk's connections come from 127.0.0.1: lift the per-address cap (64 by default) above them.
if ((CONNECTIONS > 64)); then
    sed -i "s/^max_connections_per_address = 64$/max_connections_per_address = $((CONNECTIONS + 16))/" "$DATA/sekisho.toml"
    grep -q "^max_connections_per_address = $((CONNECTIONS + 16))$" "$DATA/sekisho.toml" ||
        die "could not raise [device] max_connections_per_address in $DATA/sekisho.toml"
fi
if [[ "$DETECTION" == off ]]; then
    sed -i 's/^enabled = true$/enabled = false/' "$DATA/sekisho.toml"
    grep -q '^enabled = false$' "$DATA/sekisho.toml" || die "could not set [detection] enabled = false"
fi
CA="$DATA/tls/ca.crt"

log "starting sekisho on core $SERVER_CPU (device 127.0.0.1:$DEV_PORT, admin 127.0.0.1:$ADMIN_PORT, sync=$SYNC)"
NO_COLOR=1 taskset -c "$SERVER_CPU" "$SEKISHO" serve --data-dir "$DATA" \
    --device-listen "127.0.0.1:$DEV_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" >"$OUT/gateway.log" 2>&1 &
GW_PID=$!
ADMIN="https://127.0.0.1:$ADMIN_PORT"
DEVICE="https://127.0.0.1:$DEV_PORT"
for ((i = 0; ; i++)); do
    kill -0 "$GW_PID" 2>/dev/null || { cat "$OUT/gateway.log" >&2; die "sekisho exited during start-up"; }
    curl -s -o /dev/null --cacert "$CA" "$ADMIN/api/v1/openapi.json" &&
        curl -s -o /dev/null --cacert "$CA" "$DEVICE/v1/openapi.json" && break
    ((i < 300)) || { cat "$OUT/gateway.log" >&2; die "sekisho did not answer within 30 s"; }
    sleep 0.1
done

# --- 3. field, device, token ------------------------------------------------------------------------------
api() { # method path [json]: admin API call, prints the body, fails on HTTP errors
    curl -sS --fail-with-body --cacert "$CA" -X "$1" -H 'content-type: application/json' \
        ${TOKEN:+-H "authorization: Bearer $TOKEN"} ${3:+-d "$3"} "$ADMIN$2"
}
TOKEN=""
TOKEN=$(api POST /api/v1/login "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" | json_get token)
FIELD_JSON=$(api POST /api/v1/fields '{"name":"bench"}')
FIELD_ID=$(json_get id <<<"$FIELD_JSON")
DEV_JSON=$(api POST "/api/v1/fields/$FIELD_ID/devices" '{"unique_id":"BENCH-1"}')
AUTH_REQ=$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
print(json.dumps({"auth_id": d["auth_id"], "auth_secret": d["auth_secret"], "unique_id": "BENCH-1"}))' "$DEV_JSON")
TOK_JSON=$(curl -sS --fail-with-body --cacert "$CA" -H 'content-type: application/json' -d "$AUTH_REQ" "$DEVICE/v1/auth/token")
export BENCH_TOKEN BENCH_DEVICE_ID BENCH_BODY_FILE
BENCH_TOKEN=$(json_get access_token <<<"$TOK_JSON")
BENCH_DEVICE_ID=$(json_get device_id <<<"$TOK_JSON")
log "field $FIELD_ID, device $BENCH_DEVICE_ID, token issued"

# --- 4. the 256-byte body ---------------------------------------------------------------------------------
BENCH_BODY_FILE="$OUT/body.json"
python3 - "$BENCH_BODY_FILE" "$BODY_BYTES" <<'EOF'
import json, sys, time
path, size = sys.argv[1], int(sys.argv[2])
msg = {"ts": int(time.time() * 1000), "seq": 1, "speed": 42.5, "lat": 35.681236, "lon": 139.767125,
       "temp": 21.4, "pad": ""}
short = len(json.dumps(msg, separators=(",", ":")).encode())
msg["pad"] = "x" * (size - short)
data = json.dumps(msg, separators=(",", ":")).encode()
assert len(data) == size, len(data)
open(path, "wb").write(data)
EOF

post_once() { # url: one POST with the benchmark's headers and body; prints the status code
    curl -sS -o "$OUT/sanity.out" -w '%{http_code}' --cacert "$CA" -X POST \
        -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_TOKEN" \
        -H "Device-Id: $BENCH_DEVICE_ID" --data-binary "@$BENCH_BODY_FILE" "$1"
}
code=$(post_once "$DEVICE/v1/telemetry")
[[ "$code" == 202 ]] || { cat "$OUT/sanity.out" >&2; die "sanity POST to sekisho answered $code, not 202"; }

tls_params() { # port: protocol and cipher suite as OpenSSL's client negotiates them
    openssl s_client -connect "127.0.0.1:$1" -servername localhost -brief </dev/null 2>&1 |
        awk -F': ' '/^Protocol version/ {p=$2} /^Ciphersuite/ {c=$2} END {print p " " c}'
}

warm_up() { # name url: a short unmeasured run (opens the connections, warms caches)
    local name=$1 url=$2
    [[ "$WARMUP" == 0 || "$WARMUP" == 0s ]] && return 0
    log "$name: warm-up $WARMUP"
    taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" --timeout 10s -s "$LUA" "$url" \
        >"$OUT/$name.warmup" 2>&1 || { cat "$OUT/$name.warmup" >&2; die "wrk warm-up against $name failed"; }
}

run_wrk() { # name url pid...: the measured run; leaves $OUT/name.wrk and the CPU counters $OUT/name.cpu{0,1}
    local name=$1 url=$2
    shift 2
    log "$name: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency (core $CLIENT_CPU) $url"
    cpu_sample "$@" >"$OUT/$name.cpu0"
    taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency --timeout 10s -s "$LUA" "$url" \
        >"$OUT/$name.wrk" 2>&1 || { cat "$OUT/$name.wrk" >&2; die "wrk against $name failed"; }
    cpu_sample "$@" >"$OUT/$name.cpu1"
    grep -q '^BENCH_RESULT ' "$OUT/$name.wrk" || { cat "$OUT/$name.wrk" >&2; die "no result line from wrk ($name)"; }
}

run_open() { # name url rate pid...: one open-loop run; leaves $OUT/name.open and $OUT/name.cpu{0,1}
    local name=$1 url=$2 rate=$3
    shift 3
    log "$name: sekisho-openload --rate $rate --duration $OPEN_DURATION (core $CLIENT_CPU) $url"
    cpu_sample "$@" >"$OUT/$name.cpu0"
    taskset -c "$CLIENT_CPU" "$OPENLOAD" --url "$url" --cacert "$CA" --rate "$rate" --warmup 1 \
        --duration "${OPEN_DURATION%s}" --connections "$CONNECTIONS" --body-file "$BENCH_BODY_FILE" \
        --header 'Content-Type: application/json' --header "Authorization: Bearer $BENCH_TOKEN" \
        --header "Device-Id: $BENCH_DEVICE_ID" >"$OUT/$name.open" 2>&1 ||
        { cat "$OUT/$name.open" >&2; die "sekisho-openload against $name failed"; }
    cpu_sample "$@" >"$OUT/$name.cpu1"
}

open_rate() { # percent: that share of the rate wrk reached against the gateway, per second
    awk -v p="$1" '/^BENCH_RESULT / { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "rps") printf "%d", kv[2] * p / 100 } }' "$OUT/sekisho.wrk"
}

highest_seq() {
    api GET "/api/v1/history/messages?limit=1" | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
print(items[0]["seq"] if items else 0)'
}

# --- 5. sekisho -------------------------------------------------------------------------------------------
GW_TLS=$(tls_params "$DEV_PORT")
warm_up sekisho "$DEVICE/v1/telemetry"
sleep 1 # let the last warm-up commits land before counting
SEQ_BEFORE=$(highest_seq)
STATUS_BEFORE=$(api GET /api/v1/system/status)
PERF_PID=""
if [[ -n "${BENCH_PERF:-}" ]]; then # optional CPU profile of the gateway (perturbs the figures a little)
    command -v perf >/dev/null || die "BENCH_PERF is set but perf is not installed"
    taskset -c "$CLIENT_CPU" perf record -q -F 999 -g -p "$GW_PID" -o "$OUT/perf.data" >"$OUT/perf.log" 2>&1 &
    PERF_PID=$!
fi
run_wrk sekisho "$DEVICE/v1/telemetry" "$GW_PID"
if [[ -n "$PERF_PID" ]]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" || true
    perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
        grep -E "^ +[0-9.]+%" | sed -E "s/[ -]+\$//" | head -40 >"$OUT/perf.top" || true
fi
sleep 1 # requests in flight when wrk stopped may still commit; they only make the count larger
SEQ_AFTER=$(highest_seq)
STATUS_AFTER=$(api GET /api/v1/system/status)
echo "$STATUS_BEFORE" >"$OUT/status.before.json"
echo "$STATUS_AFTER" >"$OUT/status.after.json"
if [[ -n "$OPEN_LOOP" ]]; then
    RATE50=$(open_rate 50)
    RATE10=$(open_rate 10)
    run_open sekisho.open50 "$DEVICE/v1/telemetry" "$RATE50" "$GW_PID"
    PERF10_PID=""
    if [[ -n "${BENCH_PERF:-}" ]]; then # where the CPU goes at low load
        taskset -c "$CLIENT_CPU" perf record -q -F 999 -g -p "$GW_PID" -o "$OUT/perf10.data" >"$OUT/perf10.log" 2>&1 &
        PERF10_PID=$!
    fi
    run_open sekisho.open10 "$DEVICE/v1/telemetry" "$RATE10" "$GW_PID"
    if [[ -n "$PERF10_PID" ]]; then
        kill -INT "$PERF10_PID" 2>/dev/null || true
        wait "$PERF10_PID" || true
        perf report -i "$OUT/perf10.data" --no-children --sort comm,dso,symbol --stdio 2>/dev/null |
            grep -E "^ +[0-9.]+%" | sed -E "s/[ -]+\$//" | head -40 >"$OUT/perf10.top" || true
    fi
fi
stop_pid "$GW_PID" TERM sekisho && GW_RC=0 || GW_RC=$?
GW_PID=""

# --- 6. nginx ---------------------------------------------------------------------------------------------
cat >"$NGX/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $NGX/client_body;
    proxy_temp_path $NGX/proxy;
    fastcgi_temp_path $NGX/fastcgi;
    uwsgi_temp_path $NGX/uwsgi;
    scgi_temp_path $NGX/scgi;
    keepalive_timeout 65s;
    keepalive_requests 100000000;
    # Both TLS servers below: the gateway's device certificate and key.
    ssl_certificate $DATA/tls/device.crt;
    ssl_certificate_key $DATA/tls/device.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:$NGX_PORT ssl;
        location = /v1/telemetry {
            if (\$request_method != POST) { return 405; }
            return 204;
        }
        location = /nginx_status { stub_status; }
        location / { return 404; }
    }
    # For the open-loop comparison: a TLS proxy in front of an upstream answering 204.
    upstream answer204 {
        server 127.0.0.1:$NGX_UP_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGX_PROXY_PORT ssl;
        location = /v1/telemetry {
            proxy_pass http://answer204;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location / { return 404; }
    }
    server {
        listen 127.0.0.1:$NGX_UP_PORT;
        location / { return 204; }
    }
}
EOF
"$NGINX" -t -q -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" || { cat "$NGX/error.log" >&2; die "nginx config rejected"; }
log "starting nginx on core $SERVER_CPU (127.0.0.1:$NGX_PORT, same certificate and key)"
taskset -c "$SERVER_CPU" "$NGINX" -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" &
NGX_PID=$!
NGINX_URL="https://127.0.0.1:$NGX_PORT"
for ((i = 0; ; i++)); do
    kill -0 "$NGX_PID" 2>/dev/null || { cat "$NGX/error.log" >&2; die "nginx exited during start-up"; }
    curl -s -o /dev/null --cacert "$CA" "$NGINX_URL/nginx_status" && break
    ((i < 100)) || die "nginx did not answer within 10 s"
    sleep 0.1
done
code=$(post_once "$NGINX_URL/v1/telemetry")
[[ "$code" == 204 ]] || die "sanity POST to nginx answered $code, not 204"
NGX_TLS=$(tls_params "$NGX_PORT")
warm_up nginx "$NGINX_URL/v1/telemetry"
# shellcheck disable=SC2046 # the worker pids, one word each
run_wrk nginx "$NGINX_URL/v1/telemetry" "$NGX_PID" $(pgrep -P "$NGX_PID")
curl -s --cacert "$CA" "$NGINX_URL/nginx_status" >"$OUT/nginx_status.txt"
if [[ -n "$OPEN_LOOP" ]]; then
    code=$(post_once "https://127.0.0.1:$NGX_PROXY_PORT/v1/telemetry")
    [[ "$code" == 204 ]] || die "sanity POST to the nginx proxy answered $code, not 204"
    # shellcheck disable=SC2046 # the worker pids, one word each
    run_open nginx.open50 "https://127.0.0.1:$NGX_PROXY_PORT/v1/telemetry" "$RATE50" "$NGX_PID" $(pgrep -P "$NGX_PID")
fi
stop_pid "$NGX_PID" TERM nginx || true
NGX_PID=""

# --- 7. report --------------------------------------------------------------------------------------------
# rustls warns once per connection when a client (wrk does) sends an IP address as SNI: counted apart.
SNI_RE='Illegal SNI extension'
GW_SNI_WARNINGS=$(grep -c "$SNI_RE" "$OUT/gateway.log" || true)
GW_LOG_PROBLEMS=$(grep -E 'WARN|ERROR|panicked' "$OUT/gateway.log" | grep -cv "$SNI_RE" || true)
export R_OUT="$OUT" R_NPROC="$NPROC" R_THREADS="$THREADS" R_CONNECTIONS="$CONNECTIONS" R_DURATION="$DURATION" \
    R_WARMUP="$WARMUP" R_SYNC="$SYNC" R_DETECTION="$DETECTION" R_SERVER_CPU="$SERVER_CPU" R_CLIENT_CPU="$CLIENT_CPU" R_GW_TLS="$GW_TLS" \
    R_NGX_TLS="$NGX_TLS" R_SEQ_BEFORE="$SEQ_BEFORE" R_SEQ_AFTER="$SEQ_AFTER" R_GW_RC="$GW_RC" \
    R_GW_LOG_PROBLEMS="$GW_LOG_PROBLEMS" R_GW_SNI_WARNINGS="$GW_SNI_WARNINGS" R_SOURCE="$SOURCE" \
    R_OPEN_LOOP="$OPEN_LOOP" R_CLK_TCK="$(getconf CLK_TCK)"
R_CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
R_FS=$(df -PT "$WORK" | awk 'NR == 2 {print $2 " (" $1 ")"}')
R_KERNEL=$(uname -r)
R_LOADAVG="$LOADAVG_START -> $(cut -d' ' -f1-3 /proc/loadavg)"
export R_CPU_MODEL R_FS R_KERNEL R_LOADAVG

set +e
python3 - <<'EOF'
import json, os, sys
E = os.environ
out = E["R_OUT"]

def wrk(name):
    for line in open(os.path.join(out, name + ".wrk")):
        if line.startswith("BENCH_RESULT "):
            return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}

def cpu(name):
    def load(suffix):
        return {l.split()[0]: [int(x) for x in l.split()[1:]] for l in open(os.path.join(out, name + suffix))}
    a, b = load(".cpu0"), load(".cpu1")
    res = {}
    for core in a:
        if core == "server":
            continue
        busy, total, iow = (b[core][i] - a[core][i] for i in range(3))
        res[core] = (100.0 * busy / total if total else 0.0, 100.0 * iow / total if total else 0.0)
    wall = b[sc][1] - a[sc][1]
    res["server"] = 100.0 * (b["server"][0] - a["server"][0]) / wall if wall else 0.0
    return res

def status(name):
    return json.load(open(os.path.join(out, "status.%s.json" % name)))

g, n = wrk("sekisho"), wrk("nginx")
sc, cc = "cpu" + E["R_SERVER_CPU"], "cpu" + E["R_CLIENT_CPU"]
gc, nc = cpu("sekisho"), cpu("nginx")
before, after = status("before"), status("after")
seq_before, seq_after, gw_rc = int(E["R_SEQ_BEFORE"]), int(E["R_SEQ_AFTER"]), int(E["R_GW_RC"])
stored = seq_after - seq_before
commits = after["store"]["commits"] - before["store"]["commits"]
records = after["store"]["records"] - before["store"]["records"]
accepted = after["messages_accepted"] - before["messages_accepted"]
rejected = after["messages_rejected"] - before["messages_rejected"]
conns = after["device_listener"]["accepted"] - before["device_listener"]["accepted"]
nginx_accepts = open(os.path.join(out, "nginx_status.txt")).read().split("\n")[2].split()[0]

def ms(us):
    return "%.2f ms" % (us / 1000.0)

def errors(r):
    return int(r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"])

print()
print("Sekisho ingest benchmark")
print("  machine : %s cores, %s, Linux %s; data dir on %s" % (E["R_NPROC"], E["R_CPU_MODEL"], E["R_KERNEL"], E["R_FS"]))
print("  load    : wrk -t%s -c%s -d%s --latency (after a %s warm-up), %d-byte JSON body, HTTP/1.1 keep-alive"
      % (E["R_THREADS"], E["R_CONNECTIONS"], E["R_DURATION"], E["R_WARMUP"], g["body_bytes"]))
print("  pinning : server on core %s, wrk on core %s; load average %s" % (E["R_SERVER_CPU"], E["R_CLIENT_CPU"], E["R_LOADAVG"]))
print("  TLS     : sekisho %s; nginx %s (same device.crt/device.key)" % (E["R_GW_TLS"], E["R_NGX_TLS"]))
print('  sekisho : [store] sync = "%s"; detection %s; %s' % (E["R_SYNC"], E["R_DETECTION"], E["R_SOURCE"]))
print()
print("| server | req/s | p50 | p90 | p99 | max | non-2xx | socket errors | server process CPU | server core busy (iowait) | wrk core busy |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for label, r, c in (("sekisho POST /v1/telemetry (sync=%s)" % E["R_SYNC"], g, gc), ("nginx return 204", n, nc)):
    print("| %s | %.1f | %s | %s | %s | %s | %d | %d | %.1f%% | %.1f%% (%.1f%%) | %.1f%% |" % (
        label, r["rps"], ms(r["p50_us"]), ms(r["p90_us"]), ms(r["p99_us"]), ms(r["max_us"]),
        r["non2xx"], errors(r), c["server"], c[sc][0], c[sc][1], c[cc][0]))
print()
print("throughput ratio sekisho/nginx = %.3f   (goal >= 0.5)" % (g["rps"] / n["rps"]))
print("latency ratio sekisho/nginx: p50 %.2f, p99 %.2f" % (g["p50_us"] / n["p50_us"], g["p99_us"] / n["p99_us"]))
print()
print("sekisho, measured run: wrk completed %d requests; %d messages stored (highest seq %d -> %d)"
      % (g["requests"], stored, seq_before, seq_after))
print("  accepted %d, rejected %d; %d commits for %d records (%.1f per commit); %d TLS connections opened"
      % (accepted, rejected, commits, records, records / commits if commits else 0, conns))
print("  gateway log: %s WARN/ERROR/panic lines (besides %s rustls 'Illegal SNI extension' warnings); exit status on SIGTERM: %d"
      % (E["R_GW_LOG_PROBLEMS"], E["R_GW_SNI_WARNINGS"], gw_rc))
print("nginx: %s TLS connections accepted in total (warm-up, measured run and checks)" % nginx_accepts)
runs = [("sekisho", gc), ("nginx", nc)]

def open_result(name):
    for line in open(os.path.join(out, name + ".open")):
        if line.startswith("OPENLOAD_RESULT "):
            return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    raise SystemExit("no result line from sekisho-openload (%s)" % name)

def cpu_ticks(name):
    def server(suffix):
        for l in open(os.path.join(out, name + suffix)):
            if l.startswith("server "):
                return int(l.split()[1])
    return server(".cpu1") - server(".cpu0")

opens = {}
if E["R_OPEN_LOOP"]:
    tick_us = 1e6 / float(E["R_CLK_TCK"])
    for name in ("sekisho.open50", "sekisho.open10", "nginx.open50"):
        opens[name] = open_result(name)
        runs.append((name, cpu(name)))
    print()
    print("Open loop (sekisho-openload, %d connections; latency counted from when each request was due)" % opens["sekisho.open50"]["connections"])
    print()
    print("| server | rate asked | rate done | p50 | p90 | p99 | p99.9 | max | non-2xx | socket errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, name in (("sekisho at 50 % of its wrk rate", "sekisho.open50"), ("nginx proxy_pass to 204, same rate", "nginx.open50"),
                        ("sekisho at 10 %", "sekisho.open10")):
        o = opens[name]
        print("| %s | %.0f | %.0f | %s | %s | %s | %s | %s | %d | %d |" % (label, o["rate_asked"], o["rate_done"], ms(o["p50_us"]),
              ms(o["p90_us"]), ms(o["p99_us"]), ms(o["p999_us"]), ms(o["max_us"]), o["non2xx"], o["errors"]))
    g50, n50, g10 = opens["sekisho.open50"], opens["nginx.open50"], opens["sekisho.open10"]
    print()
    print("open-loop p99 ratio sekisho/nginx proxy at %.0f/s = %.2f   (goal <= 1.0)" % (g50["rate_asked"], g50["p99_us"] / max(n50["p99_us"], 1)))
    at_max = cpu_ticks("sekisho") * tick_us / g["requests"]
    at_10 = cpu_ticks("sekisho.open10") * tick_us / max(g10["completed"], 1)
    print("sekisho CPU per message: %.1f us at its maximum (wrk), %.1f us at 10 %% (%.0f/s): ratio %.2f   (goal <= 2)"
          % (at_max, at_10, g10["rate_asked"], at_10 / at_max))

for label, c in runs:
    if c[sc][0] - c["server"] > 5:
        print("WARNING: during the %s run the server core was %.1f%% busy but %s used only %.1f%% of it: other work "
              "ran on that core and the figures are skewed; rerun on a quiet machine" % (label, c[sc][0], label, c["server"]))

problems = []
for label, r in (("sekisho", g), ("nginx", n)):
    if r["non2xx"]:
        problems.append("%s: %d non-2xx responses" % (label, r["non2xx"]))
    if errors(r):
        problems.append("%s: %d socket errors" % (label, errors(r)))
for name, o in opens.items():
    if o["non2xx"] or o["errors"]:
        problems.append("%s: %d non-2xx responses, %d socket errors" % (name, o["non2xx"], o["errors"]))
if stored < g["requests"]:
    problems.append("sekisho stored %d messages but wrk got %d answers" % (stored, g["requests"]))
if rejected:
    problems.append("sekisho rejected %d messages" % rejected)
if gw_rc != 0:
    problems.append("sekisho exited with status %d on SIGTERM" % gw_rc)
for p in problems:
    print("ERROR: " + p)
sys.exit(1 if problems else 0)
EOF
rc=$?
set -e
if [[ "$GW_LOG_PROBLEMS" != 0 ]]; then
    echo "--- gateway log lines with WARN/ERROR/panic:" >&2
    grep -E 'WARN|ERROR|panicked' "$OUT/gateway.log" | grep -v "$SNI_RE" | head -20 >&2
fi
if [[ -s "$OUT/perf.top" ]]; then
    echo
    echo "--- BENCH_PERF: gateway CPU profile during the measured run (self time, top 40)"
    cat "$OUT/perf.top"
fi
if [[ -s "$OUT/perf10.top" ]]; then
    echo
    echo "--- BENCH_PERF: gateway CPU profile at 10 % of its rate, open loop (self time by thread, top 40)"
    cat "$OUT/perf10.top"
fi
exit "$rc"
