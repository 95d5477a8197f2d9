#!/usr/bin/env bash
# Runs inside a virtme-ng VM started by scripts/vm-matrix.sh: mounts what the
# guest lacks, gives the tests a tmpfs TMPDIR, and runs the already-built e2e
# test binary once per backend. Usage: vm-guest.sh OUTDIR
#
# OUTDIR is the host directory shared read-write with the guest (vng
# --rwdir). The host writes OUTDIR/job.env (BIN_DIR, E2E_NAME, BACKENDS,
# THREADS, FILTERS, ONCE, EXPECT, EXTRA_CMDLINE and the environment to pass on);
# this script writes OUTDIR/<backend>.log and OUTDIR/results (one line per backend:
# "<backend> <pass|fail> <seconds> <summary>"), then OUTDIR/status
# ("done <rc>") as its last act, so the host can tell a finished run from a
# guest that died (no status file) whatever vng's own exit code says.
set -uo pipefail

out=${1:?usage: vm-guest.sh OUTDIR}
status() { echo "$*" >"$out/status"; }
status started
# shellcheck source=/dev/null
. "$out/job.env"

echo "vm-guest: kernel $(uname -r), $(nproc) CPUs, memory $(free -m | awk '/^Mem:/ { print $2 }') MiB${EXTRA_CMDLINE:+, boot options: $EXTRA_CMDLINE}"

for opt in ${EXTRA_CMDLINE:-}; do
    grep -qF -- "$opt" /proc/cmdline || echo "vm-guest: WARNING: $opt is not on the kernel command line: $(cat /proc/cmdline)"
done

# What the tests need that virtme-ng's init does not mount. tracefs and
# securityfs are usually there; bpffs never is (pins live in /sys/fs/bpf).
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
mountpoint -q /sys/kernel/security || mount -t securityfs securityfs /sys/kernel/security
echo "vm-guest: LSMs: $(cat /sys/kernel/security/lsm 2>/dev/null || echo '?')"

# virtme-ng lays a writable overlay over /usr (and /usr/lib) on the 9p root.
# Through the overlay, stat() gives the overlay's st_dev while the kernel
# sees the executing file's inode on the 9p layer below, so exe rules (paths
# resolved to device+inode) would never match /usr/bin/python3 and the like.
# Nothing here writes to /usr: drop those overlays (lazily: this shell runs
# from them) and let /usr be the read-only host view. /etc and /var keep
# theirs (the tests add users).
umount -l /usr 2>/dev/null || true
umount -l /usr/lib 2>/dev/null || true
echo "vm-guest: kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid)"

# The host's /tmp is visible here as an overlay on 9p; SQLite on 9p fails
# ("disk I/O error"). The tests' temp dirs (tempfile: TMPDIR) and the rules
# databases in them go to a tmpfs of their own.
tmp=/run/netev-vm-tmp
mkdir -p "$tmp"
mountpoint -q "$tmp" || mount -t tmpfs -o mode=1777,size=50% tmpfs "$tmp"
export TMPDIR=$tmp
# Tests that start netevd without --state-dir use its default
# /var/lib/netev, an overlay on 9p here: SQLite there fails with "disk I/O
# error" when two tests open it at once. A tmpfs of its own.
mkdir -p /var/lib/netev
mountpoint -q /var/lib/netev || mount -t tmpfs -o mode=0750 tmpfs /var/lib/netev
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

# The binaries, into memory (see vm-matrix.sh): the harness finds netevd,
# netev and netev-load next to the test executable's deps/ directory.
bins=/run/netev-vm-bin/debug
rm -rf "$bins"
mkdir -p "${bins%/*}"
cp -a "$BIN_DIR" "$bins"
E2E_BIN=$bins/deps/$E2E_NAME
NETEVD=$bins/netevd

# shellcheck disable=SC2153 # FILTERS comes from job.env
read -r -a filters <<<"$FILTERS"
if [ "${REPORT_TIME:-0}" = 1 ]; then
    export RUSTC_BOOTSTRAP=1
    filters=(-Z unstable-options --report-time "${filters[@]}")
fi
: >"$out/results"
rc=0
# the tests of ONCE (backend-independent) run in the first pass only
once_skip=()
for backend in $BACKENDS; do
    log=$out/$backend.log
    start=$(date +%s)
    if [ "$EXPECT" = refuse ]; then
        # A kernel netev does not support: netevd must refuse it at start-up
        # with the kernel, the program and the verifier's reason (the test
        # says exactly what it checks), not half-attach.
        echo "vm-guest: ==== expecting netevd to refuse this kernel: backends::no_backend_"
        export NETEV_TEST_BACKEND=$backend
        [ "$backend" = default ] && unset NETEV_TEST_BACKEND
        "$E2E_BIN" --ignored --exact \
            backends::no_backend_loads_and_netevd_says_which_kernel_program_and_why 2>&1 | tee "$log"
        st=${PIPESTATUS[0]}
        summary=$(grep -a '^test result:' "$log" | tail -n1)
        [ -n "$summary" ] || summary="no test summary (exit $st)"
        if [ "$st" -eq 0 ] && grep -q '1 passed' <<<"$summary"; then result=pass; else result=fail; fi
    else
        echo "vm-guest: ==== backend $backend: ${E2E_BIN##*/} --test-threads=$THREADS $FILTERS"
        if [ "$backend" = default ]; then
            unset NETEV_TEST_BACKEND
        else
            export NETEV_TEST_BACKEND=$backend
        fi
        : >"$log"
        once_summary=""
        if [ "${#once_skip[@]}" -eq 0 ] && [ -n "${ONCE:-}" ]; then
            # One at a time: each loads every backend's programs, and two
            # at once on 6.12 under TCG stalled RCU tasks past the hang bound
            # (twice, once in CI), after which the guest died.
            echo "vm-guest: ==== the backend-independent tests, one at a time (first pass only): $ONCE"
            # shellcheck disable=SC2086 # ONCE is a list of names
            "$E2E_BIN" --test-threads=1 --exact $ONCE 2>&1 | tee -a "$log"
            st1=${PIPESTATUS[0]}
            once_summary="; backend-independent: $(grep -a '^test result:' "$log" | tail -n1)"
            for t in $ONCE; do once_skip+=(--skip "$t"); done
        else
            [ "${#once_skip[@]}" -eq 0 ] || echo "vm-guest: run in the first pass only (backend-independent): ${ONCE:-}"
            st1=0
        fi
        "$E2E_BIN" --test-threads="$THREADS" "${filters[@]}" "${once_skip[@]}" 2>&1 | tee -a "$log"
        st=${PIPESTATUS[0]}
        [ "$st1" -eq 0 ] || st=$st1
        summary=$(grep -a '^test result:' "$log" | tail -n1)
        [ -n "$summary" ] || summary="no test summary (exit $st)"
        summary="$summary$once_summary"
        if [ "$backend" = lsm ]; then
            # what only the LSM backend can refuse (ignored elsewhere)
            echo "vm-guest: ==== backend lsm: the LSM-only tests (backends::lsm_)"
            "$E2E_BIN" --test-threads="$THREADS" --ignored backends::lsm_ 2>&1 | tee -a "$log"
            st2=${PIPESTATUS[0]}
            [ "$st2" -eq 0 ] || st=$st2
            summary="$summary; LSM-only: $(grep -a '^test result:' "$log" | tail -n1)"
        fi
        if [ "$st" -eq 0 ]; then result=pass; else result=fail; fi
    fi
    secs=$(($(date +%s) - start))
    [ "$result" = pass ] || rc=1
    echo "$backend $result $secs $summary" >>"$out/results"
    echo "vm-guest: backend $backend: $result in ${secs}s: $summary"
done

status "done $rc"
exit "$rc"
