#!/usr/bin/env bash
# The project's one test command: make sure Docker is there, then run every test with the
# Docker tests required (they fail instead of skipping). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-docker.sh
# The JUnit reports of `sanctuary test` are checked with an independent parser.
if ! python3 -c 'import junitparser' 2>/dev/null; then
    pip install -q junitparser 2>/dev/null || pip install -q --break-system-packages junitparser
fi
SANCTUARY_REQUIRE_DOCKER=1 exec cargo test --all-targets "$@"
