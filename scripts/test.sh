#!/usr/bin/env bash
# Sets up the machine, then runs every check and test: formatting, clippy,
# unit tests, and the end-to-end tests (real BPF on the real kernel, as root,
# each in its own child cgroup).
set -euo pipefail
cd "$(dirname "$0")/.."

# NETEV_SETUP_VM: qemu, virtme-ng and the kernels of the matrix below
# (NETEV_VM=0 skips both).
vm=1
[ "${NETEV_VM:-1}" = 0 ] && vm=0
NETEV_SETUP_PACKAGING=1 NETEV_SETUP_VM=$vm ./scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests run the daemon and the workload binaries.
cargo build --workspace --bins
# A bound on the whole run (it takes minutes), so that a hang the tests' own
# bounds miss fails here with its output instead of running out CI's clock.
# Under a virtual X server: netev-gtk's widget tests need a display (its
# end-to-end test starts its own Xvfb, session bus and dunst).
export GSK_RENDERER=cairo NO_AT_BRIDGE=1 GTK_A11Y=none
timeout --kill-after=30 1200 xvfb-run -a -s "-screen 0 1280x860x24 -nolisten tcp" cargo test --workspace
# The same end-to-end tests' kernel-facing groups on the other kernels of
# the matrix (6.12, 6.1, 5.10), each booted in a VM over this filesystem;
# vm-matrix.sh bounds each kernel itself, this bounds the whole. Starting
# netevd is what costs under TCG (its verifier run: ~15-20 s on the cgroup
# backend, about twice that on LSM), so tests that differ only in a rule
# and a workload share one; a kernel's two backends then take ~22 min
# (6.12, boot included, measured on this 2-core machine with other builds
# beside it; ~35 min before), the matrix ~45 min there, less when the
# machine is idle. The bound leaves CI's 90 minutes room for the host part.
timeout --kill-after=60 "${NETEV_VM_BOUND:-4200}" ./scripts/vm-matrix.sh
