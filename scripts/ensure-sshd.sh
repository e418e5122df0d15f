#!/usr/bin/env bash
# Makes sure a throwaway sshd answers on loopback, so the offsite (rclone sftp) backup copy is
# tested against a real remote. Idempotent: does nothing when it already answers.
#
# Everything lives in one directory it owns, $SANCTUARY_SSHD_DIR (default /tmp/sanctuary-sshd):
# a client key pair (id_ed25519), a host key, authorized_keys, sshd_config, sshd.pid and
# sshd.log. The sshd listens only on 127.0.0.1, port $SANCTUARY_SSHD_PORT (default 2222),
# key authentication only, for the current user alone (root included: prohibit-password).
#
# As root it installs what is missing (openssh-server, rclone) with apt.
#
# On success it prints one line on stdout, HOST:PORT:USER:KEYFILE, which is what the tests
# read from SANCTUARY_TEST_SFTP; the same line is written to $SANCTUARY_SSHD_DIR/sftp.env as
# SANCTUARY_TEST_SFTP=... Everything else goes to stderr.
set -euo pipefail

LOG_PREFIX=ensure-sshd
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

DIR=${SANCTUARY_SSHD_DIR:-/tmp/sanctuary-sshd}
PORT=${SANCTUARY_SSHD_PORT:-2222}
HOST=127.0.0.1
USER_NAME=$(id -un)
KEY="$DIR/id_ed25519"
CONFIG="$DIR/sshd_config"
SSHD_LOG="$DIR/sshd.log"

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v rclone >/dev/null || missing+=(rclone)
if [ "${#missing[@]}" -gt 0 ]; then
    install_packages "${missing[@]}"
fi
# The sftp subsystem is sshd's own (internal-sftp): no sftp-server binary is needed.

mkdir -p "$DIR"
chmod 700 "$DIR"

if [ ! -f "$KEY" ]; then
    log "generating the client key $KEY"
    ssh-keygen -q -t ed25519 -N '' -C sanctuary-test -f "$KEY"
fi
if [ ! -f "$DIR/ssh_host_ed25519_key" ]; then
    ssh-keygen -q -t ed25519 -N '' -C sanctuary-test-host -f "$DIR/ssh_host_ed25519_key"
fi
cp "$KEY.pub" "$DIR/authorized_keys"
chmod 600 "$DIR/authorized_keys"

# Rewritten every time so a changed port or user takes effect at the next start.
cat >"$CONFIG" <<EOF
# Throwaway sshd for sanctuary's sftp tests: loopback only, key authentication only.
Port $PORT
ListenAddress $HOST
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
AllowUsers $USER_NAME
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The key files live under /tmp, whose permissions StrictModes would reject.
StrictModes no
Subsystem sftp internal-sftp
EOF

# Answers = a real key login works, not merely something listening on the port.
sshd_answers() {
    ssh -q -i "$KEY" -p "$PORT" \
        -o BatchMode=yes -o ConnectTimeout=3 \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o IdentitiesOnly=yes \
        "$USER_NAME@$HOST" true </dev/null 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

report() {
    local line="$HOST:$PORT:$USER_NAME:$KEY"
    echo "SANCTUARY_TEST_SFTP=$line" >"$DIR/sftp.env"
    echo "$line"
}

if sshd_answers; then
    log "sshd answers on $HOST:$PORT; nothing to do"
    report
    exit 0
fi

if port_open; then
    die "$HOST:$PORT is taken by something that does not accept $KEY; stop it or set SANCTUARY_SSHD_PORT"
fi

# Privilege separation directory; sshd refuses to start without it.
if is_root; then
    mkdir -p /run/sshd
    chmod 755 /run/sshd
fi

/usr/sbin/sshd -t -f "$CONFIG" || die "sshd rejects $CONFIG"
log "starting sshd on $HOST:$PORT (log: $SSHD_LOG)"
/usr/sbin/sshd -f "$CONFIG" -E "$SSHD_LOG"

for _ in $(seq 1 30); do
    if sshd_answers; then
        log "sshd is up"
        report
        exit 0
    fi
    sleep 1
done
die "sshd did not accept a key login within 30 s; see $SSHD_LOG"
