#!/usr/bin/env bash
# Benchmarks of blue-green services, each against references measured in the same run:
#   latency     p50/p99 of sequential HTTP/1.0 requests (one connection each) to busybox
#               httpd, two pairs: on the published port, a blue-green service (Docker's port
#               forwarding, then sanctuary's proxy) against a recreated one (Docker's port
#               forwarding only); on the container network, sanctuary's proxy against the
#               container directly and against Debian's haproxy (TCP mode) in front of it
#   throughput  requests per second with `ab -c 16` to the same five
#   replace     `sanctuary apply -y` of a one-line change to a blue-green service (start
#               beside, wait healthy, switch, drain, remove) against the same change to a
#               recreated service (stop, start, wait healthy)
#
# usage: scripts/bench-proxy.sh [REQUESTS]   (default 3000 per latency case; installs
# haproxy and apache2-utils (ab) when missing; SANCTUARY_BIN overrides the release binary)
set -euo pipefail
REQUESTS="${1:-3000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
LOG_PREFIX=bench-proxy
. "$ROOT/scripts/lib.sh"
"$ROOT/scripts/ensure-docker.sh" >/dev/null
"$ROOT/scripts/ensure-bench-tools.sh" python3
command -v haproxy >/dev/null || install_packages haproxy
command -v ab >/dev/null || install_packages apache2-utils
if [ -z "${SANCTUARY_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    SANCTUARY_BIN=$ROOT/target/release/sanctuary
fi
BIN=$SANCTUARY_BIN
WORK="$(mktemp -d)"
PROJECT="benchproxy$$"
PROXY_PORT=47180
HAPROXY_PORT=47181
RECREATE_PORT=47182
cleanup() {
    [ -f "$WORK/haproxy.pid" ] && kill "$(cat "$WORK/haproxy.pid")" 2>/dev/null || true
    (cd "$WORK" && "$BIN" destroy -y >/dev/null 2>&1) || true
    docker images -q --filter "label=sanctuary.project=$PROJECT" | xargs -r docker rmi -f >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/ctx"
cp /bin/busybox "$WORK/ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' >"$WORK/ctx/Dockerfile"
manifest() {
    cat >"$WORK/Sanctuary.kdl" <<EOF
project "$PROJECT"
image "bb" {
    context "ctx"
}
service "web" {
    image "bb"
    command "sh" "-c" "mkdir -p /www && echo $1 > /www/index.html && exec httpd -f -p 8080 -h /www"
    stop-timeout "1s"
    port 8080 host=$PROXY_PORT ip="127.0.0.1"
    update "blue-green"
    drain-timeout "5s"
    health {
        cmd "wget" "-q" "-O-" "http://127.0.0.1:8080/"
        interval "1s"
    }
}
service "plain" {
    image "bb"
    command "sh" "-c" "mkdir -p /www && echo $1 > /www/index.html && exec httpd -f -p 8080 -h /www"
    stop-timeout "1s"
    port 8080 host=$RECREATE_PORT ip="127.0.0.1"
    health {
        cmd "wget" "-q" "-O-" "http://127.0.0.1:8080/"
        interval "1s"
    }
}
EOF
}
manifest v1
(cd "$WORK" && "$BIN" apply -y >/dev/null)
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
DIRECT_IP=$(ip_of "$PROJECT-web")
PROXY_IP=$(ip_of "$PROJECT-web-proxy")
cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend f
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend b
backend b
    server web $DIRECT_IP:8080
EOF
haproxy -D -f "$WORK/haproxy.cfg" -p "$WORK/haproxy.pid"
sleep 0.5

TARGETS=(
    "bg-published 127.0.0.1:$PROXY_PORT"
    "plain-published 127.0.0.1:$RECREATE_PORT"
    "proxy $PROXY_IP:8080"
    "direct $DIRECT_IP:8080"
    "haproxy 127.0.0.1:$HAPROXY_PORT"
)
python3 - "$REQUESTS" "${TARGETS[@]}" >"$WORK/latency.txt" <<'PY'
import socket, statistics, sys, time
n = int(sys.argv[1])
targets = [t.split() for t in sys.argv[2:]]
def run(addr):
    host, port = addr.rsplit(":", 1)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while s.recv(65536):
            pass
        s.close()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]
# Interleaved rounds, so drift of the machine touches every target alike.
acc = {name: [] for name, _ in targets}
for _ in range(3):
    for name, addr in targets:
        acc[name].append(run(addr))
for name, _ in targets:
    p50 = statistics.median(x[0] for x in acc[name])
    p99 = statistics.median(x[1] for x in acc[name])
    print(f"{name} {p50:.3f} {p99:.3f}")
PY

rps() {
    ab -q -n 20000 -c 16 "http://$1/" 2>/dev/null | awk '/Requests per second/ {print $4}'
}
: >"$WORK/rps.txt"
for round in 1 2 3; do
    for t in "${TARGETS[@]}"; do
        set -- $t
        echo "$1 $(rps "$2")" >>"$WORK/rps.txt"
    done
done

# Replace: alternate v1/v2 on one service at a time, timing each apply.
: >"$WORK/replace.txt"
for round in 1 2 3 4 5 6; do
    version=v$((round % 2 + 1))
    manifest "$version"
    for svc in web plain; do
        start=$(date +%s.%N)
        (cd "$WORK" && "$BIN" apply -y "$svc" >/dev/null)
        end=$(date +%s.%N)
        echo "$svc $(python3 -c "print($end - $start)")" >>"$WORK/replace.txt"
    done
done

python3 - "$WORK/latency.txt" "$WORK/rps.txt" "$WORK/replace.txt" <<'PY'
import statistics, sys
lat = {l.split()[0]: tuple(map(float, l.split()[1:])) for l in open(sys.argv[1])}
rps = {}
for l in open(sys.argv[2]):
    k, v = l.split()
    rps.setdefault(k, []).append(float(v))
rps = {k: statistics.median(v) for k, v in rps.items()}
rep = {}
for l in open(sys.argv[3]):
    k, v = l.split()
    rep.setdefault(k, []).append(float(v))
def row(label, a, b):
    (la, lb) = (lat[a], lat[b])
    print(f"| {label} | {la[0]:.3f} / {la[1]:.3f} ms | {lb[0]:.3f} / {lb[1]:.3f} ms | {la[0]-lb[0]:+.3f} ms | {rps[a]:.0f} vs {rps[b]:.0f} req/s | {rps[a]/rps[b]:.2f}× |")
print("| case | sanctuary p50 / p99 | reference p50 / p99 | added p50 | throughput (ab -c 16) | ratio |")
print("|---|---|---|---|---|---|")
row("published port: blue-green (through the proxy) vs recreated", "bg-published", "plain-published")
row("container network: proxy vs the container directly", "proxy", "direct")
row("container network: proxy vs haproxy 2.6 (TCP) in front of it", "proxy", "haproxy")
row("haproxy vs the container directly (for scale)", "haproxy", "direct")
bg, rc = statistics.mean(rep["web"]), statistics.mean(rep["plain"])
print()
print("| case | blue-green | recreate | ratio |")
print("|---|---|---|---|")
print(f"| apply of a one-line change, mean of {len(rep['web'])} | {bg:.2f} s | {rc:.2f} s | {bg/rc:.2f}× |")
PY
