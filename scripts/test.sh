#!/usr/bin/env bash
# The project's one test command: make sure Docker and a loopback sshd are there, then run
# every test with the Docker and sftp tests required (they fail instead of skipping). Extra
# arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-docker.sh
# The GitOps tests make their repositories with the git CLI; the https probe tests make
# their certificates with the openssl CLI; the supervisor tests send alerts to Debian's
# webhook server and are scraped by Prometheus (each started by its test, on loopback).
for tool in git openssl webhook prometheus; do
    if ! command -v "$tool" >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
    fi
done
# Installing prometheus starts its service; the tests run their own.
if command -v systemctl >/dev/null; then
    systemctl stop prometheus prometheus-node-exporter 2>/dev/null || true
fi
pkill -x prometheus-node-exporter 2>/dev/null || true
# A throwaway sshd on loopback for the offsite (rclone sftp) backup tests, which then fail
# instead of skipping; it prints HOST:PORT:USER:KEYFILE.
SANCTUARY_TEST_SFTP=$(scripts/ensure-sshd.sh)
export SANCTUARY_TEST_SFTP
export SANCTUARY_REQUIRE_SFTP=1
# The JUnit reports of `sanctuary test` are checked with an independent parser.
if ! python3 -c 'import junitparser' 2>/dev/null; then
    pip install -q junitparser 2>/dev/null || pip install -q --break-system-packages junitparser
fi
# The trace tests export to a real OTLP receiver (PyPI's oteltest) and the MCP tests are
# driven by PyPI's MCP SDK, both from a venv of their own.
venv=target/test-venv
if ! "$venv/bin/python" -c 'import oteltest, mcp' 2>/dev/null; then
    python3 -m venv "$venv" 2>/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
    }
    "$venv/bin/pip" install -q oteltest mcp
fi
export SANCTUARY_TEST_OTLP_PYTHON=$PWD/$venv/bin/python
export SANCTUARY_REQUIRE_OTLP=1
export SANCTUARY_TEST_MCP_PYTHON=$PWD/$venv/bin/python
export SANCTUARY_REQUIRE_MCP=1
SANCTUARY_REQUIRE_DOCKER=1 exec cargo test --all-targets "$@"
