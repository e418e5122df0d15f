#!/usr/bin/env bash
# Makes sure the reference tools the benchmarks measure sanctuary against are installed:
# installs the missing ones from Debian's packages (as root, like ensure-docker.sh does).
#
# usage: scripts/ensure-bench-tools.sh [TOOL...]   (default: every reference tool)
# Tools: hyperfine make rsync unison docker-compose zstd python3
set -euo pipefail

LOG_PREFIX=ensure-bench-tools
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

tools=("$@")
if [ ${#tools[@]} -eq 0 ]; then
    tools=(hyperfine make rsync unison docker-compose zstd python3)
fi

missing=()
for tool in "${tools[@]}"; do
    if ! command -v "$tool" >/dev/null; then
        # Every tool here is packaged under its own name.
        missing+=("$tool")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
install_packages "${missing[@]}"
for tool in "${missing[@]}"; do
    command -v "$tool" >/dev/null || die "$tool is still missing after installing it"
done
