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
# NATS JetStream (nats:// exports, netev-sql --from): the tests start private
# nats-server processes and clusters in temp dirs; the packaged service is not used.
PACKAGES+=(nats-server)
# Packaging (scripts/package.sh and its test): dpkg-shlibdeps for the
# package's dependencies, systemd-analyze to verify the unit (and to list the
# syscalls of its filter); libseccomp's Python binding for the test that runs
# netevd under the unit's syscall filter without systemd.
PACKAGES+=(dpkg-dev systemd python3-seccomp)
# netev-gtk: GTK 4 to build it; Xvfb (with xauth for xvfb-run) for its widget
# tests; dunst (a notification server), xdotool and imagemagick for the
# end-to-end test and the screenshots.
PACKAGES+=(libgtk-4-dev xvfb xauth dunst xdotool imagemagick)
# polkit: netevd asks polkitd about changes by non-root members of the netev
# group; the tests start a polkitd of their own on their private bus, and
# `netev` starts pkttyagent (package polkitd) in a terminal.
PACKAGES+=(polkitd)
# The syslog export's tests (netev-export) start private rsyslogds: imtcp,
# imudp, and imtcp over TLS (the gtls driver from rsyslog-gnutls).
PACKAGES+=(rsyslog rsyslog-gnutls)
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

# netev's polkit actions, where polkitd reads them (fixed at its build; the
# package installs them the same way): the tests' polkitd and scripts/run.sh
# need them. Copied only when they differ.
repo="$(cd "$(dirname "$0")/.." && pwd)"
actions=/usr/share/polkit-1/actions
if ! cmp -s "$repo/dist/polkit-1/actions/org.netev.policy" "$actions/org.netev.policy"; then
    need_root
    install -D -m 0644 "$repo/dist/polkit-1/actions/org.netev.policy" "$actions/org.netev.policy"
fi

# The BPF LSM probe reads the active LSM list from securityfs.
if [ ! -e /sys/kernel/security/lsm ] && [ "$(id -u)" -eq 0 ]; then
    mount -t securityfs securityfs /sys/kernel/security 2>/dev/null || true
fi

# The kernel matrix (scripts/vm-matrix.sh, run by test.sh): qemu, busybox
# (virtme-ng builds its initramfs with it), virtme-ng, and the kernels it
# boots. Kernel packages are chosen by pattern, newest first, so that a
# security update that renames one (a new ABI number) does not break this;
# once a kernel of a series is installed nothing is fetched again.
if [ "${NETEV_SETUP_VM:-0}" = 1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    installed() { dpkg-query -W -f='${Status}\n' "$@" 2>/dev/null | grep -q "ok installed"; }
    installed_like() { dpkg-query -W -f='${Package} ${Status}\n' "$1" 2>/dev/null | grep -q "ok installed"; }
    apt_updated=0
    apt_update() {
        [ "$apt_updated" = 1 ] || apt-get update -qq
        apt_updated=1
    }

    vm_missing=()
    # linux-image-amd64 is bookworm's 6.1 (the metapackage follows its ABI bumps)
    # binutils: objcopy (vm-matrix.sh strips the guest's copies of the binaries)
    for p in qemu-system-x86 busybox-static binutils linux-image-amd64; do
        installed "$p" || vm_missing+=("$p")
    done
    if [ "${#vm_missing[@]}" -gt 0 ]; then
        need_root
        echo "setup.sh: installing ${vm_missing[*]}"
        apt_update
        apt-get install -y -qq --no-install-recommends "${vm_missing[@]}" >/dev/null
    fi

    # 6.12: bookworm's newest linux-image-6.12.N+deb12-amd64-unsigned
    # (bookworm-security / bookworm-backports).
    if ! installed_like 'linux-image-6.12.*+deb12-amd64-unsigned'; then
        need_root
        apt_update
        pkg=$(apt-cache pkgnames linux-image-6.12. |
            grep -E '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' | sort -V | tail -n1 || true)
        if [ -z "$pkg" ]; then
            echo "setup.sh: no linux-image-6.12.*+deb12-amd64-unsigned in the apt sources" \
                "(it comes from bookworm-security or bookworm-backports)" >&2
            exit 1
        fi
        echo "setup.sh: installing $pkg"
        apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
    fi

    # 5.10: Debian 11's kernel, from bullseye through a private apt state
    # (its own sources list and lists directory, nothing added to the
    # machine's sources), then installed with bookworm resolving its
    # dependencies.
    if ! installed_like 'linux-image-5.10.0-*-amd64-unsigned'; then
        need_root
        state=/var/cache/netev-setup/bullseye
        mkdir -p "$state/lists/partial" "$state/archives/partial"
        # apt downloads as _apt where it can
        ! getent passwd _apt >/dev/null || chown _apt "$state/archives"
        cat >"$state/sources.list" <<'EOF'
deb http://deb.debian.org/debian bullseye main
deb http://deb.debian.org/debian-security bullseye-security main
EOF
        bullseye=(-o "Dir::Etc::sourcelist=$state/sources.list" -o Dir::Etc::sourceparts=-
            -o "Dir::State::Lists=$state/lists" -o "Dir::Cache::Archives=$state/archives"
            -o "Dir::Cache::pkgcache=$state/pkgcache.bin" -o "Dir::Cache::srcpkgcache=$state/srcpkgcache.bin")
        apt-get "${bullseye[@]}" update -qq
        pkg=$(apt-cache "${bullseye[@]}" pkgnames linux-image-5.10.0- |
            grep -E '^linux-image-5\.10\.0-[0-9]+-amd64-unsigned$' | sort -V | tail -n1 || true)
        if [ -z "$pkg" ]; then
            echo "setup.sh: no linux-image-5.10.0-*-amd64-unsigned in bullseye" >&2
            exit 1
        fi
        echo "setup.sh: installing $pkg (from bullseye)"
        (cd "$state/archives" && apt-get "${bullseye[@]}" download -qq "$pkg")
        deb=$(printf '%s\n' "$state/archives/${pkg}"_*_amd64.deb | sort -V | tail -n1)
        apt_update
        apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
    fi

    # virtme-ng (vng), pinned. Kept in a virtual environment of its own
    # unless a vng of that version is already on PATH.
    VNG_VERSION=1.42
    if ! { command -v vng >/dev/null && vng --version 2>/dev/null | grep -qw "$VNG_VERSION"; }; then
        need_root
        venv=/opt/netev-setup/virtme-ng
        installed python3-venv || {
            apt_update
            apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        }
        echo "setup.sh: installing virtme-ng $VNG_VERSION in $venv"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "virtme-ng==$VNG_VERSION"
        ln -sf "$venv/bin/vng" /usr/local/bin/vng
    fi
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
