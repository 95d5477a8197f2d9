//! `netev doctor` on this machine: each check's outcome as the machine and
//! the daemon make it, with the fix for what is wrong.

use std::path::Path;
use std::process::Command;

use netev_tests::OutputBounded;
use netev_tests::{
    ensure_user, root_or_skip, workspace_bin, Daemon, PrivateBus, PublicBin, TestCgroup,
};
use serde_json::Value;

/// Runs `netev doctor --json` with `args`; (exit code, checks by name).
fn doctor(cmd: Command) -> (Option<i32>, Vec<Value>) {
    let mut cmd = cmd;
    let out = cmd.arg("--json").output_bounded();
    let checks = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (out.status.code(), checks)
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {checks:?}"))
}

fn netev_doctor(bus: &str, state: &Path, config: &Path) -> Command {
    let mut c = Command::new(workspace_bin("netev"));
    c.args(["--bus", bus, "doctor", "--state-dir"])
        .arg(state)
        .arg("--config")
        .arg(config);
    c
}

#[test]
fn doctor_reports_the_machine_the_daemon_the_store_and_the_config() {
    if !root_or_skip("doctor_reports_the_machine_the_daemon_the_store_and_the_config") {
        return;
    }
    let bus = PrivateBus::system_like();
    let cg = TestCgroup::new("doctor");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("netev.toml");

    // no daemon yet: the bus answers, nobody owns the name
    let (code, checks) = doctor(netev_doctor(bus.address(), &state, &config));
    assert_eq!(check(&checks, "bus")["level"], "warn");
    assert_eq!(check(&checks, "store")["level"], "warn", "no state dir yet");
    assert_eq!(check(&checks, "config")["level"], "ok");
    for name in ["kernel", "btf", "cgroup2", "rights"] {
        assert_eq!(check(&checks, name)["level"], "ok", "{name}: {checks:?}");
    }
    // this machine's kernel refuses BPF LSM, and doctor says why
    let lsm = check(&checks, "bpf-lsm");
    assert!(
        lsm["level"] == "ok" || lsm["detail"].as_str().unwrap().contains("unavailable: "),
        "{lsm}"
    );
    assert_eq!(code, Some(0), "warnings only: {checks:?}");

    let daemon = Daemon::start(
        &cg,
        &[
            "--bus",
            bus.address(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    cg.run_json(&crate::load_bin(), &["tcp4"]);
    let (_, checks) = doctor(netev_doctor(bus.address(), &state, &config));
    let b = check(&checks, "bus");
    assert_eq!(b["level"], "ok", "{b}");
    assert!(b["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("pid {}", daemon.pid())));
    assert_eq!(check(&checks, "store")["level"], "ok");
    // netevd mounts what it needs when the machine had not
    assert_eq!(check(&checks, "tracefs")["level"], "ok");
    assert_eq!(check(&checks, "bpffs")["level"], "ok");
    drop(daemon);

    // a damaged event database and a bad configuration: FAIL, exit 1
    std::fs::write(state.join("netev.db"), b"this is not sqlite").unwrap();
    let _ = std::fs::remove_file(state.join("netev.db-wal"));
    let _ = std::fs::remove_file(state.join("netev.db-shm"));
    std::fs::write(&config, "bus = \"system\"\n[store]\nmax_rows = -1\n").unwrap();
    let (code, checks) = doctor(netev_doctor(bus.address(), &state, &config));
    assert_eq!(code, Some(1));
    let store = check(&checks, "store");
    assert_eq!(store["level"], "fail", "{store}");
    assert!(store["fix"]
        .as_str()
        .unwrap()
        .contains("move the file aside"));
    let conf = check(&checks, "config");
    assert_eq!(conf["level"], "fail", "{conf}");
    assert!(
        conf["detail"]
            .as_str()
            .unwrap()
            .contains("netev.toml:3: store.max_rows: -1 is negative"),
        "{conf}"
    );
}

#[test]
fn doctor_tells_a_user_outside_the_group_how_to_join_it() {
    if !root_or_skip("doctor_tells_a_user_outside_the_group_how_to_join_it") {
        return;
    }
    ensure_user("netev-doctor-user", &[]);
    let bus = PrivateBus::system_like();
    let netev = PublicBin::copy("netev");
    let mut cmd = netev.as_user("netev-doctor-user");
    cmd.args([
        "--bus",
        bus.address(),
        "doctor",
        "--group",
        "netev-doctor-grp",
    ]);
    let _ = Command::new("groupadd")
        .args(["--system", "netev-doctor-grp"])
        .output_bounded();
    let (_, checks) = doctor(cmd);
    let rights = check(&checks, "rights");
    assert_eq!(rights["level"], "warn", "{rights}");
    assert_eq!(
        rights["fix"],
        "sudo usermod -aG netev-doctor-grp netev-doctor-user, then log in again"
    );
}
