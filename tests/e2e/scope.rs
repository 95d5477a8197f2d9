//! Only the target cgroup is captured, and never the daemon itself.

use netev_tests::OutputBounded;
use netev_tests::{root_or_skip, workspace_bin, Daemon, TestCgroup};

use crate::load_bin;

#[test]
fn processes_outside_the_cgroup_are_not_reported() {
    if !root_or_skip("processes_outside_the_cgroup_are_not_reported") {
        return;
    }
    let cg = TestCgroup::new("scope");
    let daemon = Daemon::start(&cg, &[]);
    // Outside: the test's own cgroup.
    let outside = std::process::Command::new(load_bin())
        .arg("tcp4")
        .output_bounded();
    assert!(outside.status.success());
    let outside: serde_json::Value = serde_json::from_slice(&outside.stdout).unwrap();
    // Inside, after it: proves capture was live while the outside one ran.
    let inside = cg.run_json(&load_bin(), &["tcp4"]);
    let daemon_pid = daemon.pid();
    let got = daemon.stop();

    assert_eq!(got.of_pid(inside["pid"].as_u64().unwrap()).len(), 6);
    assert!(
        got.of_pid(outside["pid"].as_u64().unwrap()).is_empty(),
        "events from a process outside the test cgroup"
    );
    assert!(
        got.of_pid(u64::from(daemon_pid)).is_empty(),
        "the daemon reported itself"
    );
    let foreign: Vec<_> = got
        .events
        .iter()
        .filter(|e| e["pid"] != inside["pid"])
        .collect();
    assert!(
        foreign.is_empty(),
        "only the workload ran in the cgroup: {foreign:#?}"
    );
    let _ = workspace_bin("netevd");
}
