//! End-to-end tests: the real netevd, real BPF programs on the real kernel,
//! attached to a dedicated test cgroup, and real workloads inside it.
//! Each module's first line says what it pins.

mod backends;
mod bus;
mod bypass;
mod capture;
mod coalesce;
mod config;
mod doctor;
mod export;
mod fleet;
mod gtk;
mod identity;
mod kernel_rules;
mod lifecycle;
mod metrics;
mod package;
mod polkit;
mod rules;
mod run;
mod scope;
mod store;
mod surface;

use netev_testsupport::pgserver;

use netev_tests::{workspace_bin, Stopped};
use serde_json::Value;

/// The workload program.
fn load_bin() -> std::path::PathBuf {
    workspace_bin("netev-load")
}

/// The events of `pid` with op `op`, in order.
fn ops<'a>(stopped: &'a Stopped, pid: &Value, op: &str) -> Vec<&'a Value> {
    stopped
        .events
        .iter()
        .filter(|e| &e["pid"] == pid && e["op"] == op)
        .collect()
}

/// Exactly one event of `pid` with op `op`.
fn one<'a>(stopped: &'a Stopped, pid: &Value, op: &str) -> &'a Value {
    let found = ops(stopped, pid, op);
    assert_eq!(
        found.len(),
        1,
        "expected one {op} event from pid {pid}, got {found:#?}\nall events of the pid: {:#?}",
        stopped
            .events
            .iter()
            .filter(|e| &e["pid"] == pid)
            .collect::<Vec<_>>()
    );
    found[0]
}

/// Opens the backend the run asks for (`NETEV_TEST_BACKEND`: `lsm` or
/// `cgroup`, as scripts/vm-matrix.sh sets it; unset: cgroup, the one every
/// kernel of the matrix has).
fn open_test_capture(config: &netev_bpf::CaptureConfig) -> Box<dyn netev_bpf::Capture> {
    let mut config = config.clone();
    config.backend = match netev_tests::test_backend().as_deref() {
        Some("lsm") => netev_bpf::BackendChoice::Lsm,
        _ => netev_bpf::BackendChoice::Cgroup,
    };
    netev_bpf::open_capture(&config).expect("loading BPF")
}

/// Whether this run tests the BPF LSM backend (`NETEV_TEST_BACKEND=lsm`).
fn on_lsm() -> bool {
    netev_tests::test_backend().as_deref() == Some("lsm")
}

/// The verdict of an allowed op that the cgroup backend can only observe
/// (listen, accept, socket() of a non-IP family) and the LSM backend
/// decides.
fn allowed_where_enforced() -> serde_json::Value {
    serde_json::json!(if on_lsm() { "allow" } else { "observe" })
}

/// Runs every check, each named (`edge sendmmsg`, `lsm listen`, …), and fails the test
/// once all have run, with the name and the failed assertion of each that
/// failed: tests that share one netevd still say which of them failed, and
/// one failure does not hide another.
pub(crate) fn check_each(checks: Vec<(String, Box<dyn FnOnce() + '_>)>) {
    let mut failed = Vec::new();
    for (name, check) in checks {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
            let said = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(a panic without a message)".into());
            failed.push(format!("{name}: FAILED: {said}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} failed:\n\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}
