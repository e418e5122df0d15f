#!/usr/bin/env bash
# Times `sanctuary validate` on a generated 500-node manifest, against `docker-compose config`
# on the same 150 services written as a compose file (the reference, measured in the same run).
#
# usage: scripts/bench-validate.sh [NODES]   (installs hyperfine and docker-compose when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-bench-tools.sh hyperfine python3 docker-compose
nodes=${1:-500}
cargo build --release --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 scripts/gen-manifest.py "$nodes" "$dir" >/dev/null
bin=$PWD/target/release/sanctuary
cmds=("$bin -f $dir/Sanctuary.kdl validate")
names=(-n "sanctuary validate ($nodes nodes)")
if command -v docker-compose >/dev/null; then
    cmds+=("docker-compose -f $dir/docker-compose.yml config -q")
    names+=(-n "docker-compose config (same services)")
fi
hyperfine --warmup 3 --min-runs 20 --export-markdown "$dir/result.md" "${names[@]}" "${cmds[@]}" >&2
cat "$dir/result.md"
