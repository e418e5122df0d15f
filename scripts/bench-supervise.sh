#!/usr/bin/env bash
# The supervisor's cost and speed on a stack of SERVICES busy-waiting-free services:
#   - idle CPU (share of one core) and resident memory of `sanctuary supervise` over SECONDS,
#     against `docker events` watching the same project over the same window (the least any
#     event-driven watcher runs);
#   - detection to restart of an unhealthy container: from the moment its health file is
#     removed to the container's new start, against the budget of one health interval + 1 s.
# Prints a markdown table with the figures and the commands.
#
# usage: scripts/bench-supervise.sh [SERVICES] [SECONDS]
# SANCTUARY_BIN=path overrides the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-docker.sh >/dev/null
services=${1:-50}
seconds=${2:-60}
if [ -z "${SANCTUARY_BIN:-}" ]; then
    cargo build --release --quiet
    SANCTUARY_BIN=$PWD/target/release/sanctuary
fi
bin=$SANCTUARY_BIN
dir=$(mktemp -d)
project="benchsup$$"
sup_pid=""
ev_pid=""
cleanup() {
    [ -n "$sup_pid" ] && kill "$sup_pid" 2>/dev/null || true
    [ -n "$ev_pid" ] && kill "$ev_pid" 2>/dev/null || true
    "$bin" -f "$dir/Sanctuary.kdl" destroy -y >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

mkdir -p "$dir/ctx"
cp "$(command -v busybox)" "$dir/ctx/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' > "$dir/ctx/Dockerfile"
{
    printf 'project "%s"\nimage "bb" {\n    context "ctx"\n}\n' "$project"
    for i in $(seq 1 "$services"); do
        printf 'service "s%s" {\n    image "bb"\n    command "sleep" "100000"\n    stop-timeout "1s"\n    health {\n        cmd "true"\n        interval "30s"\n    }\n}\n' "$i"
    done
    printf 'service "probe" {\n    image "bb"\n    command "sh" "-c" "trap exit TERM; touch /ok; sleep 100000 & wait"\n    stop-timeout "1s"\n    restart-limit 10 within="10m"\n    health {\n        cmd "test" "-f" "/ok"\n        interval "1s"\n        retries 1\n    }\n}\n'
} > "$dir/Sanctuary.kdl"
"$bin" -f "$dir/Sanctuary.kdl" apply -y >/dev/null

# CPU ticks (user + system) of a process, and its resident memory in KiB.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

"$bin" -f "$dir/Sanctuary.kdl" supervise --interval 10s --metrics 127.0.0.1:0 >"$dir/sup.log" 2>&1 &
sup_pid=$!
docker events --filter "label=sanctuary.project=$project" >/dev/null 2>&1 &
ev_pid=$!
sleep 5
s0=$(ticks "$sup_pid"); e0=$(ticks "$ev_pid")
sleep "$seconds"
s1=$(ticks "$sup_pid"); e1=$(ticks "$ev_pid")
sup_rss=$(rss "$sup_pid"); ev_rss=$(rss "$ev_pid")

# Detection to restart, three times (the backoff after each is shorter than the pause).
container="$project-probe"
lat=()
for run in 1 2 3; do
    before=$(docker inspect -f '{{.State.StartedAt}}' "$container")
    t0=$(date +%s.%N)
    docker exec "$container" rm /ok
    while [ "$(docker inspect -f '{{.State.StartedAt}}' "$container")" = "$before" ]; do sleep 0.05; done
    after=$(docker inspect -f '{{.State.StartedAt}}' "$container")
    lat+=("$(python3 -c "import sys,datetime as d; a=sys.argv[1]; s,f=a.rstrip('Z').split('.'); t=d.datetime.fromisoformat(s).replace(tzinfo=d.timezone.utc).timestamp()+float('0.'+f); print(f'{t-float(sys.argv[2]):.2f}')" "$after" "$t0")")
    sleep 12
done

python3 - "$services" "$seconds" "$hz" "$s0" "$s1" "$e0" "$e1" "$sup_rss" "$ev_rss" "${lat[@]}" <<'PY'
import sys
services, seconds, hz, s0, s1, e0, e1, sup_rss, ev_rss = (float(x) for x in sys.argv[1:10])
lat = [float(x) for x in sys.argv[10:]]
sup_cpu = (s1 - s0) / hz / seconds * 100
ev_cpu = (e1 - e0) / hz / seconds * 100
ratio = lambda a, b: f"{a / b:.2f}×" if b else "n/a (reference used no measurable CPU)"
print(f"Supervisor on {int(services)} services + 1 probe, idle for {int(seconds)} s, `--interval 10s`:\n")
print("| Measure | sanctuary supervise | docker events | Ratio | Target |")
print("|---|---|---|---|---|")
print(f"| CPU (% of one core) | {sup_cpu:.2f}% | {ev_cpu:.2f}% | {ratio(sup_cpu, ev_cpu)} | ≤ 0.5% |")
print(f"| Resident memory | {sup_rss/1024:.1f} MiB | {ev_rss/1024:.1f} MiB | {ratio(sup_rss, ev_rss)} | ≤ 20 MiB |")
print()
print("| Detection to restart (health interval 1 s) | runs | worst | budget (interval + 1 s) | worst / budget |")
print("|---|---|---|---|---|")
print(f"| file removed → container started again | {', '.join(f'{l:.2f} s' for l in lat)} | {max(lat):.2f} s | 2.00 s | {max(lat)/2:.2f}× |")
print(f"\nCommand: scripts/bench-supervise.sh {int(services)} {int(seconds)}")
PY
