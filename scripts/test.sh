#!/usr/bin/env bash
# The project's one test command: make sure Docker is there, then run every test with the
# Docker tests required (they fail instead of skipping). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-docker.sh
SANCTUARY_REQUIRE_DOCKER=1 exec cargo test --all-targets "$@"
