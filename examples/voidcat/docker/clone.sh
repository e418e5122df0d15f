#!/bin/sh
# A clone: publishes its health as JSON, records its start in the shared volumes, serves HTTP.
set -eu
mkdir -p /www
printf '{"name":"%s","role":"%s","status":"running"}\n' "$CLONE_NAME" "$CLONE_ROLE" > /www/health
# Writers record themselves in the shared volumes; read-only mounts (the auditor's
# artifacts) refuse the write, which is expected.
printf '%s\n' "$CLONE_NAME" 2>/dev/null > "/workspace/artifacts/$CLONE_NAME.txt" || true
printf '%s started\n' "$CLONE_NAME" 2>/dev/null >> /workspace/audit/events.log || true
# httpd as PID 1 would ignore SIGTERM and make every stop wait for the kill timeout.
httpd -f -p "$CLONE_PORT" -h /www &
trap 'kill $!; exit 0' TERM INT
wait
