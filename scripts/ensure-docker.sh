#!/usr/bin/env bash
# Makes sure a Docker daemon answers and the static busybox that test images are built from
# is present. Idempotent: does nothing when both are already there.
#
# As root it installs what is missing (docker.io, busybox-static) and starts dockerd in the
# background, logging to /tmp/sanctuary-dockerd.log, then waits up to 60 s for it to answer.
set -euo pipefail

LOG_PREFIX=ensure-docker
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

docker_answers() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

if [ ! -x /bin/busybox ]; then
    install_packages busybox-static
fi

if docker_answers; then
    log "Docker daemon answers; nothing to do"
    exit 0
fi

if [ -n "${DOCKER_HOST:-}" ]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer; start that daemon or unset DOCKER_HOST"
fi

is_root || die "no Docker daemon answers and not root: start Docker (e.g. 'sudo systemctl start docker')"

if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    install_packages docker.io
fi

DOCKERD_LOG=/tmp/sanctuary-dockerd.log
log "starting dockerd in the background (log: $DOCKERD_LOG)"
nohup dockerd >"$DOCKERD_LOG" 2>&1 &

for _ in $(seq 1 60); do
    if docker_answers; then
        log "Docker daemon is up"
        exit 0
    fi
    sleep 1
done
die "dockerd did not answer within 60 s; see $DOCKERD_LOG"
