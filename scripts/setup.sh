#!/usr/bin/env bash
# Installs what building and running netev needs on a Debian 12 machine.
# Idempotent: packages already present are skipped, mounts already there are kept.
set -euo pipefail

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup.sh: must run as root (installs packages, mounts tracefs)" >&2
        exit 1
    fi
}

PACKAGES=(clang llvm libelf-dev zlib1g-dev pkg-config make iproute2 procps python3 dbus passwd util-linux)
# PostgreSQL's binaries: the netev-store tests start private servers with them
# (initdb + pg_ctl in a temp dir); the cluster Debian creates is not used.
PACKAGES+=(postgresql)
# Packaging (scripts/package.sh and its test): dpkg-shlibdeps for the
# package's dependencies, systemd-analyze to verify the unit.
PACKAGES+=(dpkg-dev systemd)
# netev-gtk: GTK 4 to build it; Xvfb (with xauth for xvfb-run) for its widget
# tests; dunst (a notification server), xdotool and imagemagick for the
# end-to-end test and the screenshots.
PACKAGES+=(libgtk-4-dev xvfb xauth dunst xdotool imagemagick)
if [ "${NETEV_SETUP_BENCH:-0}" = 1 ]; then
    PACKAGES+=(auditd)
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    need_root
    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Syscall tracepoints (listen/accept) need tracefs; some machines don't mount it.
if [ ! -d /sys/kernel/tracing/events ] && [ ! -d /sys/kernel/debug/tracing/events ]; then
    need_root
    mount -t tracefs nodev /sys/kernel/tracing
fi

# Members of this group may watch events (the D-Bus policy and netevd check it).
if ! getent group netev >/dev/null; then
    need_root
    groupadd --system netev
fi

# The BPF LSM probe reads the active LSM list from securityfs.
if [ ! -e /sys/kernel/security/lsm ] && [ "$(id -u)" -eq 0 ]; then
    mount -t securityfs securityfs /sys/kernel/security 2>/dev/null || true
fi

if ! command -v cargo >/dev/null; then
    echo "setup.sh: cargo not found; install the Rust toolchain (rustup) first" >&2
    exit 1
fi
# cargo-deb builds the Debian package; compiled once (a few minutes), so
# only for the tests and packaging, not for run.sh.
if [ "${NETEV_SETUP_PACKAGING:-0}" = 1 ] && ! command -v cargo-deb >/dev/null; then
    echo "setup.sh: installing cargo-deb"
    cargo install cargo-deb --locked --version 3.8.0 --quiet
fi
echo "setup.sh: ok"
