#!/usr/bin/env bash
# Builds the Debian packages target/debian/netev_<version>_<arch>.deb (the
# daemon and command-line tools) and netev-gtk_<version>_<arch>.deb (the
# desktop front-end, apart so that servers need no GTK):
# release binaries, man pages and shell completions generated from the
# programs' own clap definitions, then cargo-deb (installed if missing).
#
#   scripts/package.sh            # release build (what you ship)
#   PROFILE=dev scripts/package.sh  # the debug binaries already built (tests)
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-release}
case "$PROFILE" in
    release) BIN=target/release ;;
    dev) BIN=target/debug ;;
    *) echo "PROFILE must be release or dev, not $PROFILE" >&2; exit 2 ;;
esac

NETEV_SETUP_PACKAGING=1 ./scripts/setup.sh >&2

# PROFILE=dev packages what `cargo build --workspace --bins` made (the
# tests run those binaries meanwhile: rebuilding them here could swap them
# under their feet)
if [ "$PROFILE" = release ]; then
    cargo build --release -p netevd -p netev -p netev-sql -p netev-gtk
fi
for name in netevd netev netev-sql netev-gtk; do
    [ -x "$BIN/$name" ] || { echo "package.sh: $BIN/$name is missing; build it first" >&2; exit 1; }
done

assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
for prog in netevd:8 netev:1 netev-sql:1 netev-gtk:1; do
    name=${prog%%:*}
    section=${prog##*:}
    "$BIN/$name" --generate man | gzip -9n > "$assets/man/$name.$section.gz"
    "$BIN/$name" --generate bash > "$assets/completions/$name.bash"
    "$BIN/$name" --generate zsh > "$assets/completions/_$name"
    "$BIN/$name" --generate fish > "$assets/completions/$name.fish"
done

# cargo-deb reads target/release/…: with PROFILE=dev it maps those
# paths onto target/debug (and must not strip debug binaries twice)
args=(--no-build --output target/debian/)
if [ "$PROFILE" = dev ]; then
    args+=(--profile dev --no-strip --fast)
fi
mkdir -p target/debian
cargo deb -p netevd "${args[@]}"
cargo deb -p netev-gtk "${args[@]}"
