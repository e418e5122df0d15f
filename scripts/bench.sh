#!/usr/bin/env bash
# Runs every benchmark, each against its reference tool in the same run, and prints their
# markdown tables: the figures recorded in docs/benchmarks.md come from this script.
#
# usage: scripts/bench.sh          (starts Docker and installs hyperfine, make, rsync, unison,
#                                   docker-compose and zstd from Debian's packages when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything the benchmarks compare against, installed the way the test script installs
# Docker: nothing to set up by hand on a fresh machine.
scripts/ensure-docker.sh
scripts/ensure-bench-tools.sh
cargo build --release --locked --quiet
export SANCTUARY_BIN=$PWD/target/release/sanctuary SANCTUARY=$PWD/target/release/sanctuary
run() {
    echo
    echo "## $1"
    echo
    shift
    "$@"
}
run "validate: 500-node manifest vs docker-compose config" scripts/bench-validate.sh
run "tasks: no-op, cold hash, 100 trivial tasks" scripts/bench-tasks.sh
run "stack: voidcat with docker-compose vs sanctuary apply" scripts/bench-compose.sh
run "sync: 10,000 files vs rsync and unison" scripts/bench-sync.sh
run "backup and restore vs tar | zstd" env SIZE_MB="${SIZE_MB:-1000}" scripts/bench-backup.sh
run "sweep: a session start with 4,000 dead temporaries" scripts/bench-sweep.sh
run "history, drift and rollback on voidcat with 100 generations" scripts/bench-history.sh
run "blue-green: proxy latency and throughput against direct and haproxy, replace against recreate" scripts/bench-proxy.sh
run "supervisor: idle footprint on 50 services, detection to restart" scripts/bench-supervise.sh
run "traces: a run traced over OTLP against untraced" scripts/bench-traces.sh
run "mcp: tool-call latency against the same command as a process" scripts/bench-mcp.sh
