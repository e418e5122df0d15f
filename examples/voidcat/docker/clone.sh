#!/bin/sh
# A clone: publishes its health as JSON, records its start in the shared volumes, serves HTTP.
set -eu
mkdir -p /www /workspace/artifacts
printf '{"name":"%s","role":"%s","status":"running"}\n' "$CLONE_NAME" "$CLONE_ROLE" > /www/health
printf '%s\n' "$CLONE_NAME" > "/workspace/artifacts/$CLONE_NAME.txt"
if [ -w /workspace/audit ]; then
    printf '%s started\n' "$CLONE_NAME" >> /workspace/audit/events.log
fi
exec httpd -f -p "$CLONE_PORT" -h /www
