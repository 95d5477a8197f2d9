//! Process identity: exe from the kernel's view at the time of the call, even across exec.
//!
//! Both workloads run under one netevd, one after the other (a netevd start
//! is most of what a test costs in the matrix's emulated VMs); each is
//! checked on its own process's events, and a failure names the check.

use std::net::TcpListener;

use netev_tests::OutputBounded;
use netev_tests::{root_or_skip, Daemon, Stopped, TestCgroup};
use serde_json::{json, Value};

use crate::{load_bin, ops};

/// A process connects, execs another binary that connects at once and exits:
/// each connect is attributed to the executable that made it, though both
/// are gone by the time userspace reads the events.
fn exec_race_attributes_each_connect_to_its_own_exe(
    facts: &Value,
    got: &Stopped,
    copy: &std::path::Path,
    listener: &TcpListener,
) {
    let connects = ops(got, &facts["pid"], "connect");
    assert_eq!(connects.len(), 2, "{connects:#?}");
    assert_eq!(connects[0]["exe"], json!(load_bin().display().to_string()));
    assert_eq!(connects[1]["exe"], json!(copy.display().to_string()));
    // comm follows exec too (the kernel sets it from the file name)
    assert_eq!(connects[1]["comm"], json!("netev-load-copy"));
    for c in &connects {
        assert_eq!(c["rport"], json!(listener.local_addr().unwrap().port()));
    }
}

/// pid/tid/ppid, timestamps and cmdline are those of the calling process.
fn event_carries_pids_time_and_cmdline(facts: &Value, got: &Stopped, before: &str) {
    let ev = &ops(got, &facts["pid"], "socket")[0];
    // single-threaded: tid == pid; parent is this test process
    assert_eq!(ev["tid"], facts["pid"]);
    assert_eq!(ev["ppid"], json!(std::process::id()));
    assert_eq!(ev["gid"], json!(0));
    let ts = ev["ts"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && ts.len() == "2026-11-25T10:00:00.123456789Z".len(),
        "RFC 3339 with ns: {ts}"
    );
    assert!(
        ts[..19] >= before[..19],
        "event time {ts} is not before the test started ({before})"
    );
    let cmdline = ev["cmdline"].as_str().unwrap_or("");
    assert!(
        cmdline.is_empty() || cmdline.ends_with("netev-load unix"),
        "cmdline, when the process is still there to read it: {cmdline:?}"
    );
}

#[test]
fn each_event_carries_the_identity_of_the_process_that_made_it() {
    if !root_or_skip("each_event_carries_the_identity_of_the_process_that_made_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("netev-load-copy");
    std::fs::copy(load_bin(), &copy).unwrap();
    let copy = std::fs::canonicalize(copy).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let before = chrono_like_now();

    let cg = TestCgroup::new("identity");
    let daemon = Daemon::start(&cg, &[]);
    let race = cg.run_json(&load_bin(), &["exec-race", &addr, copy.to_str().unwrap()]);
    let pids = cg.run_json(&load_bin(), &["unix"]);
    let got = daemon.stop();
    let got = &got;

    crate::check_each(vec![
        (
            "exec race: each connect has its own exe".into(),
            Box::new(|| {
                exec_race_attributes_each_connect_to_its_own_exe(&race, got, &copy, &listener)
            }),
        ),
        (
            "pids, time and cmdline of the caller".into(),
            Box::new(|| event_carries_pids_time_and_cmdline(&pids, got, &before)),
        ),
    ]);
}

fn chrono_like_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S"])
        .output_bounded();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
