# Shared by the scripts that prepare a machine (sourced, not run). The sourcing script sets
# LOG_PREFIX first; messages go to stderr.

log() { echo "${LOG_PREFIX:-sanctuary}: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# install_packages PKG...: installs Debian packages with apt, as root only.
install_packages() {
    is_root || die "must be root to install $* (or install them yourself)"
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
