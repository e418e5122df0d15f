#!/usr/bin/env bash
# From a fresh clone to a running stack in one command: makes sure a Docker engine answers
# (starting one as the test script does), builds sanctuary, and applies examples/voidcat.
#
# usage: scripts/up.sh [EXAMPLE]     (default: voidcat; extra sanctuary flags via SANCTUARY_FLAGS)
set -euo pipefail
cd "$(dirname "$0")/.."
example=${1:-voidcat}
scripts/ensure-docker.sh
cargo build --release --locked
bin=$PWD/target/release/sanctuary
"$bin" -f "examples/$example/Sanctuary.kdl" apply -y ${SANCTUARY_FLAGS:-}
"$bin" -f "examples/$example/Sanctuary.kdl" status
echo
echo "The $example stack is up. Try:"
echo "  $bin -f examples/$example/Sanctuary.kdl status"
echo "  $bin -f examples/$example/Sanctuary.kdl logs --follow"
echo "  $bin -f examples/$example/Sanctuary.kdl destroy -y"
