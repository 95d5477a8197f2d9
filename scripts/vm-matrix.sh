#!/usr/bin/env bash
# The kernel matrix: boots each kernel below in a virtme-ng VM (qemu, TCG:
# --disable-kvm, because this machine's /dev/kvm cannot boot stock kernels)
# over the host's own filesystem, and runs the kernel-facing end-to-end tests
# there with the binaries already built on the host (scripts/vm-guest.sh
# inside the guest). The host's own kernel is covered by `cargo test`.
#
# Knobs (environment):
#   NETEV_VM=0            skip the matrix (a loud SKIP line; an error under CI=true)
#   NETEV_VM_KERNELS      names from the table to run, e.g. "6.12" or "6.1,5.10" (default: all)
#   NETEV_VM_FILTERS      test filters (default: the kernel-facing groups below)
#   NETEV_VM_ONCE         exact test names run in a kernel's first backend
#                         pass only (default: the backend-independent ones below)
#   NETEV_VM_THREADS      --test-threads inside the guest (default 2)
#   NETEV_VM_CPUS, NETEV_VM_MEMORY   the guest's vCPUs (default 2) and memory (default 3G)
#   NETEV_VM_TIMEOUT      seconds one backend's run may take (default 900;
#                         ~600-700 s measured on 6.12 with the machine loaded); a
#                         kernel's bound is boot + this per backend
#   NETEV_VM_REPORT_TIME=1  each test's time in the logs (libtest's unstable
#                         --report-time, enabled on stable with RUSTC_BOOTSTRAP=1:
#                         a diagnostic, not for CI)
#   NETEV_VNG             the vng command (default: vng on PATH)
# Logs: target/vm-matrix/<kernel>/ (console.log, <backend>.log, results).
# Exit status: 0 only if every kernel booted and every run passed.
set -euo pipefail
cd "$(dirname "$0")/.."

# name | kernel image (glob in /boot, newest match) | backends | expect | extra kernel command line
#   backends: cgroup, lsm (netevd --backend); "default" runs netevd's own choice
#   expect:   pass   = the e2e subset must pass;
#             refuse = netevd must refuse the kernel at start-up with an
#                      explanation (unsupported kernel); the subset is not run
MATRIX=(
    "6.12 | vmlinuz-6.12.*+deb12-amd64 | cgroup lsm | pass   | -"
    "6.1  | vmlinuz-6.1.0-*-amd64      | cgroup lsm | pass   | -"
    "5.10 | vmlinuz-5.10.0-*-amd64     | lsm        | refuse | lsm=lockdown,capability,yama,apparmor,bpf"
)
# The kernel-facing groups of tests/e2e: capture exactness, rules and their
# enforcement (with the kernel-vs-matcher property test), identity and the
# exec race, coalescing, lifecycle (crash/restart, pins), scope, and the
# bypass suite (each trick on each backend). The bypass tests of glob
# expansion (a_deep_glob_*) exercise netevd's resolver, not a kernel, and
# build a 100k-file tree that 9p makes slow: they run on the host only.
# So do the tests of netevd's userspace alone, whose kernel-facing part
# another test here covers: the rules file's parser (a_malformed_rules_file),
# polkit (an_unprivileged_caller), the rules database across a restart
# (rules_survive_a_daemon_restart), userspace expiry (a_timed_rule_expires;
# the kernel's own expiry is bypass::a_timed_rule_expires_in_the_kernel_*),
# daemonizing, the text format and `netev status` without a daemon. Each
# netevd start costs 15-75 s under TCG: these seven were a quarter of a
# backend's run (CI once ran out of the matrix's bound on a slow machine).
FILTERS=${NETEV_VM_FILTERS:-capture:: kernel_rules:: rules:: identity:: coalesce:: lifecycle:: scope:: backends:: bypass:: --skip bypass::a_deep_glob_ --skip rules::a_malformed_rules_file --skip rules::an_unprivileged_caller --skip rules::rules_survive_a_daemon_restart --skip rules::a_timed_rule_expires --skip lifecycle::daemonizes_once --skip lifecycle::text_output --skip lifecycle::status_when_not_running}
# Tests that do not depend on the pass's backend (NETEV_TEST_BACKEND): each
# loads or names every backend itself (--check-backend, --backend lsm), so
# a second pass would run the very same thing again. They run in the first
# backend's pass of each kernel only.
ONCE=${NETEV_VM_ONCE-backends::every_backend_the_kernel_offers_loads_all_its_programs backends::asking_for_lsm_where_the_kernel_refuses_it_is_an_explained_error}
# The kernel-vs-matcher property test's cases per run (256 on the host):
# emulation makes each case seconds long (64 took ~2.5 min of a backend's
# run; each kernel gets 32 per backend, the host 256).
export PROPTEST_CASES=${PROPTEST_CASES:-32}
THREADS=${NETEV_VM_THREADS:-2}
CPUS=${NETEV_VM_CPUS:-2}
# 3G: the guest holds the binaries (~130 MB) and the tests' state in tmpfs;
# headroom costs nothing here, and a 6.12 guest that once died mid-run in CI
# (no status, no log kept) may have run out of it
MEMORY=${NETEV_VM_MEMORY:-3G}
PER_BACKEND=${NETEV_VM_TIMEOUT:-900}
BOOT_BOUND=180
VNG=${NETEV_VNG:-vng}
# setup.sh's virtme-ng lives in a virtual environment: vng runs its siblings
# (virtme-run, virtme-ng-init) by name
[ -d /opt/netev-setup/virtme-ng/bin ] && PATH=/opt/netev-setup/virtme-ng/bin:$PATH

say() { echo "vm-matrix: $*"; }
die() {
    echo "vm-matrix: $*" >&2
    exit 1
}
skip() {
    if [ "${CI:-}" = true ]; then
        die "cannot run the kernel matrix: $*; under CI=true a skip is a failure"
    fi
    echo
    echo "######## SKIP vm-matrix: $* ########"
    echo
    exit 0
}
trim() {
    local s=$1
    s=${s#"${s%%[![:space:]]*}"}
    echo "${s%"${s##*[![:space:]]}"}"
}

[ "${NETEV_VM:-1}" = 0 ] && skip "NETEV_VM=0: no kernel other than the host's was tested"
[ "$(id -u)" -eq 0 ] || skip "needs root (the tests load BPF inside the VM as the same user)"
command -v "$VNG" >/dev/null || die "$VNG not found: run NETEV_SETUP_VM=1 scripts/setup.sh"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found: run NETEV_SETUP_VM=1 scripts/setup.sh"
command -v objcopy >/dev/null || die "objcopy not found: run NETEV_SETUP_VM=1 scripts/setup.sh"

# The binaries the guest runs, built here (a no-op when test.sh built them).
cargo build --workspace --bins --quiet
E2E_BIN=$(cargo test -p netev-tests --test e2e --no-run --quiet --message-format=json |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "e2e" and m.get("executable"):
        print(m["executable"])')
[ -x "$E2E_BIN" ] || die "no e2e test executable found (cargo test -p netev-tests --test e2e --no-run)"
profile_dir=$(dirname "$(dirname "$E2E_BIN")")
NETEVD=$profile_dir/netevd
[ -x "$NETEVD" ] || die "$NETEVD missing: cargo build --workspace --bins"
if ! "$NETEVD" --help 2>/dev/null | grep -q -- '--backend'; then
    say "NOTE: this netevd has no --backend flag: each kernel runs once with netevd's own backend choice"
    no_backend_flag=1
fi

# Which kernels.
wanted=${NETEV_VM_KERNELS:-}
wanted=${wanted//,/ }
names=()
for row in "${MATRIX[@]}"; do names+=("$(trim "${row%%|*}")"); done
for w in $wanted; do
    [[ " ${names[*]} " == *" $w "* ]] || die "NETEV_VM_KERNELS: no kernel $w in the matrix (${names[*]})"
done

# One matrix at a time on this machine (two TCG guests on 2 cores would
# each take twice as long and trip the bounds).
exec 9>/run/lock/netev-vm-matrix.lock
if ! flock -n 9; then
    say "another vm-matrix run holds /run/lock/netev-vm-matrix.lock; waiting"
    flock 9
fi

vm_pid=
stop_vm() {
    if [ -n "$vm_pid" ]; then
        say "stopping the VM (timeout pid $vm_pid)"
        kill -TERM "$vm_pid" 2>/dev/null || true
        wait "$vm_pid" 2>/dev/null || true
    fi
}
trap 'stop_vm; exit 143' TERM
trap 'stop_vm; exit 130' INT

root=$PWD/target/vm-matrix
mkdir -p "$root"

# The guest runs copies of the binaries without their debug info (a fifth
# of the size), which it copies once into its own tmpfs: the host's files
# reach the guest over 9p without a page cache (cache=none), so every exec
# of a 100+ MB debug binary from there reads it anew, and the tests exec
# netev and netevd hundreds of times. Same layout as target/<profile>, so
# that the harness finds netevd & co. next to the test executable.
bin=$root/bin
rm -rf "$bin"
mkdir -p "$bin/deps"
for f in "$profile_dir"/*; do
    [ -f "$f" ] && [ -x "$f" ] && objcopy --strip-debug "$f" "$bin/${f##*/}"
done
objcopy --strip-debug "$E2E_BIN" "$bin/deps/${E2E_BIN##*/}"
table=()
failed=0
for row in "${MATRIX[@]}"; do
    IFS='|' read -r name glob backends expect append <<<"$row"
    name=$(trim "$name") glob=$(trim "$glob") backends=$(trim "$backends")
    expect=$(trim "$expect") append=$(trim "$append")
    if [ -n "$wanted" ] && [[ " $wanted " != *" $name "* ]]; then
        continue
    fi
    [ "${no_backend_flag:-0}" = 1 ] && backends=default

    # shellcheck disable=SC2086 # the glob is meant to expand
    image=$(printf '%s\n' /boot/$glob | grep -v '[*]' | sort -V | tail -n1 || true)
    if [ -z "$image" ] || [ ! -e "$image" ]; then
        say "$name: no kernel /boot/$glob: run NETEV_SETUP_VM=1 scripts/setup.sh"
        table+=("$name|-|$backends|NOT INSTALLED|-")
        failed=1
        continue
    fi
    version=${image#/boot/vmlinuz-}

    dir=$root/$name
    rm -rf "$dir"
    mkdir -p "$dir"
    {
        printf 'BIN_DIR=%q\nE2E_NAME=%q\n' "$bin" "${E2E_BIN##*/}"
        printf 'BACKENDS=%q\nTHREADS=%q\nFILTERS=%q\nEXPECT=%q\n' "$backends" "$THREADS" "$FILTERS" "$expect"
        printf 'ONCE=%q\n' "$ONCE"
        [ "$append" = - ] || printf 'EXTRA_CMDLINE=%q\n' "$append"
        printf 'REPORT_TIME=%q\n' "${NETEV_VM_REPORT_TIME:-0}"
        for v in CI PROPTEST_CASES RUST_BACKTRACE; do
            [ -z "${!v+x}" ] || printf 'export %s=%q\n' "$v" "${!v}"
        done
    } >"$dir/job.env"

    nb=$(wc -w <<<"$backends")
    bound=$((BOOT_BOUND + nb * PER_BACKEND))
    args=(-r "$image" --disable-kvm --cpus "$CPUS" --memory "$MEMORY" --rwdir "$dir")
    [ "$append" = - ] || args+=(--append "$append")
    args+=(--exec "$(printf '%q %q' "$PWD/scripts/vm-guest.sh" "$dir")")
    say "==== $name: booting $version (backends: $backends, expect: $expect${append:+, append: $append}; bound ${bound}s)"
    start=$(date +%s)
    # In the background, so that a TERM to this script (test.sh's own bound)
    # reaches qemu: timeout runs vng in a process group of its own, and
    # forwards the signal to it.
    timeout --kill-after=30 "$bound" "$VNG" "${args[@]}" </dev/null > >(tee "$dir/console.log") 2>&1 &
    vm_pid=$!
    vng_rc=0
    wait "$vm_pid" || vng_rc=$?
    vm_pid=
    wall=$(($(date +%s) - start))

    # The guest's own account (scripts/vm-guest.sh writes status last), and
    # vng's exit code (the guest command's status, 255 if the guest died).
    guest=$(cat "$dir/status" 2>/dev/null || echo none)
    why=""
    case "$guest:$vng_rc" in
        "done 0:0") ;;
        "done 0:"*) why="the guest's run passed but vng exited $vng_rc" ;;
        done\ *) why="tests failed (guest status ${guest#done }, vng exit $vng_rc)" ;;
        started:124 | started:137) why="timed out after ${bound}s inside the guest" ;;
        none:124 | none:137) why="did not boot within ${bound}s" ;;
        started:*) why="the guest died during the run (vng exit $vng_rc: kernel panic?)" ;;
        none:*) why="did not boot or never ran vm-guest.sh (vng exit $vng_rc; see $dir/console.log)" ;;
    esac
    ran=0
    while read -r b result secs summary; do
        ran=1
        mins=$(awk -v s="$secs" 'BEGIN { printf "%.1f", s / 60 }')
        table+=("$name|$version|$b|$result: $summary|$mins")
    done < <(cat "$dir/results" 2>/dev/null)
    boot_mins=$(awk -v s="$wall" 'BEGIN { printf "%.1f", s / 60 }')
    if [ -n "$why" ]; then
        failed=1
        [ "$ran" = 1 ] && [[ "$guest" == done* ]] ||
            table+=("$name|$version|$backends|FAILED: $why|$boot_mins")
        say "$name: FAILED: $why ($boot_mins min in all)"
    else
        say "$name: passed ($boot_mins min in all, boot included)"
    fi
done

echo
say "results (logs in target/vm-matrix/<kernel>/; minutes per run, boot not included):"
printf '  %-6s  %-22s  %-8s  %7s  %s\n' kernel version backend minutes result
for t in "${table[@]}"; do
    IFS='|' read -r name version b result mins <<<"$t"
    printf '  %-6s  %-22s  %-8s  %7s  %s\n' "$name" "$version" "$b" "$mins" "$result"
done
if [ "${#table[@]}" -eq 0 ]; then
    die "no kernel ran (NETEV_VM_KERNELS=$wanted)"
fi
if [ "$failed" != 0 ]; then
    die "FAILED: at least one kernel did not boot or failed its run"
fi
say "all passed"
