#!/usr/bin/env bash
# What tracing costs a command: `sanctuary run --force` of TASKS independent trivial tasks
# (`true`) plus one that depends on them all, with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a
# real OTLP receiver (oteltest's sink, on loopback) against the same run with tracing off,
# measured in the same hyperfine invocation. The traced run includes sending its spans
# before it exits; the receiver only counts them, as a collector that forwards them would
# answer at once.
#
# usage: scripts/bench-traces.sh [TASKS]   (default 100; installs hyperfine and oteltest)
# SANCTUARY_BIN=path overrides the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-bench-tools.sh hyperfine python3
tasks=${1:-100}
if [ -z "${SANCTUARY_BIN:-}" ]; then
    cargo build --release --quiet
    SANCTUARY_BIN=$PWD/target/release/sanctuary
fi
venv=target/test-venv
if ! "$venv/bin/python" -c 'import oteltest' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q oteltest
fi
dir=$(mktemp -d)
sink_pid=""
cleanup() {
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/python" tests/support/otlp_sink.py "$port" "$dir/spans.txt" --count >/dev/null 2>&1 &
sink_pid=$!
for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null && break
    sleep 0.1
done
{
    echo 'project "benchtraces"'
    for i in $(seq 1 "$tasks"); do
        printf 'task "t%s" {\n    run "true"\n}\n' "$i"
    done
    printf 'task "all" {\n    run "true"\n'
    for i in $(seq 1 "$tasks"); do printf '    depends-on "t%s"\n' "$i"; done
    printf '}\n'
} > "$dir/Sanctuary.kdl"
run="$SANCTUARY_BIN -f $dir/Sanctuary.kdl run --force -j 2 all"
hyperfine --warmup 2 --runs 15 --export-json "$dir/h.json" -N \
    -n off "$run" \
    -n traced "env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$port $run" >&2
spans=$(awk '{ n += $1 } END { print n }' "$dir/spans.txt")
python3 - "$dir/h.json" "$tasks" "$spans" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
off, on = r["off"]["mean"], r["traced"]["mean"]
print(f"`run --force` of {sys.argv[2]} trivial tasks + 1, -j 2; the receiver got {sys.argv[3]} spans over all traced runs:\n")
print("| Run | Mean | Ratio to off | Target |")
print("|---|---|---|---|")
print(f"| tracing off | {off*1000:.0f} ms | 1.00× | |")
print(f"| traced (OTLP/HTTP to a local receiver) | {on*1000:.0f} ms | {on/off:.2f}× | ≤ 1.05× |")
print(f"\nCommand: scripts/bench-traces.sh {sys.argv[2]}")
PY
