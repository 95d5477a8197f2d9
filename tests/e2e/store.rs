//! The event store: netevd writes every event into SQLite; `netev log` /
//! `netev top` read it over the bus and from the file; kill -9 loses no
//! committed batch; a full disk is reported and capture goes on.

use std::path::Path;
use std::process::Command;

use netev_tests::OutputBounded;
use netev_tests::{
    netev_json, root_or_skip, wait_until, workspace_bin, Daemon, PrivateBus, TestCgroup,
};
use serde_json::Value;

use crate::load_bin;

fn netev(args: &[&str]) -> std::process::Output {
    Command::new(workspace_bin("netev"))
        .args(args)
        .output_bounded()
}

fn counters(daemon: &Daemon) -> Value {
    let text = std::fs::read_to_string(daemon.status_path()).unwrap_or_default();
    serde_json::from_str::<Value>(&text)
        .map(|s| s["counters"].clone())
        .unwrap_or(Value::Null)
}

/// An event without the fields that only the database adds.
fn strip_host(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("host");
    v
}

#[test]
fn every_event_is_stored_and_netev_log_and_top_read_it_back() {
    if !root_or_skip("every_event_is_stored_and_netev_log_and_top_read_it_back") {
        return;
    }
    let bus = PrivateBus::system_like();
    let cg = TestCgroup::new("store");
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let daemon = Daemon::start(
        &cg,
        &[
            "--bus",
            bus.address(),
            "--host-name",
            "test-host",
            "--state-dir",
            state_dir,
        ],
    );
    let facts = cg.run_json(&load_bin(), &["tcp4"]);
    let pid = facts["pid"].clone();
    let exe = std::fs::canonicalize(load_bin()).unwrap();
    let exe = exe.to_str().unwrap();
    wait_until("the workload's events in the store", || {
        netev_json(&["--bus", bus.address(), "log", "--json", "--exe", exe])
            .iter()
            .filter(|e| e["pid"] == pid)
            .count()
            >= 4
    });
    let via_bus = netev_json(&[
        "--bus",
        bus.address(),
        "log",
        "--json",
        "--exe",
        exe,
        "--limit",
        "1000",
    ]);
    let top = netev_json(&[
        "--bus",
        bus.address(),
        "top",
        "--json",
        "--by",
        "exe",
        "--since",
        "1h",
    ]);
    let db = state.path().join("netev.db");
    let stopped = daemon.stop();

    // Exactly what netevd printed, field for field, with the host added.
    let printed: Vec<Value> = stopped
        .of_pid(facts["pid"].as_u64().unwrap())
        .into_iter()
        .cloned()
        .collect();
    let stored: Vec<Value> = via_bus
        .iter()
        .filter(|e| e["pid"] == pid)
        .cloned()
        .collect();
    assert!(
        stored.iter().all(|e| e["host"] == "test-host"),
        "{stored:#?}"
    );
    assert_eq!(
        stored.into_iter().map(strip_host).collect::<Vec<_>>(),
        printed,
        "the store holds what netevd printed"
    );
    let ours = top
        .iter()
        .find(|r| r["exe"] == exe)
        .unwrap_or_else(|| panic!("{top:#?}"));
    assert!(
        ours["ops"].as_u64().unwrap() >= printed.len() as u64,
        "{ours}"
    );

    // The same from the file, with the daemon gone; filters apply.
    let db = db.to_str().unwrap();
    let from_file = netev_json(&[
        "log", "--db", db, "--json", "--exe", exe, "--op", "connect", "--limit", "1000",
    ]);
    let connects: Vec<&Value> = from_file.iter().filter(|e| e["pid"] == pid).collect();
    assert_eq!(connects.len(), 1, "{from_file:#?}");
    assert_eq!(connects[0]["raddr"], "127.0.0.1");
    let port = connects[0]["rport"].to_string();
    let by_dest = netev_json(&[
        "log",
        "--db",
        db,
        "--json",
        "--dest",
        "127.0.0.0/8",
        "--port",
        &port,
    ]);
    assert!(by_dest
        .iter()
        .any(|e| e["pid"] == pid && e["op"] == "connect"));
    let none = netev_json(&["log", "--db", db, "--json", "--dest", "10.0.0.0/8"]);
    assert!(none.is_empty(), "{none:#?}");
    // A bad filter says what is wrong.
    let bad = netev(&["log", "--db", db, "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a time"));
}

#[test]
fn after_kill_9_every_committed_batch_is_there_and_the_database_opens() {
    if !root_or_skip("after_kill_9_every_committed_batch_is_there_and_the_database_opens") {
        return;
    }
    let cg = TestCgroup::new("store-kill");
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let daemon = Daemon::start(&cg, &["--no-coalesce", "--state-dir", state_dir]);
    let facts = cg.run_json(&load_bin(), &["loop", "udp", "--iterations", "20000"]);
    let pid = facts["pid"].as_u64().unwrap();
    // Wait until the status file reports that most of them are committed,
    // then kill -9 with batches still flowing.
    wait_until("stored events", || {
        counters(&daemon)["stored"].as_u64().unwrap_or(0) >= 10_000
    });
    let stored_before = counters(&daemon)["stored"].as_u64().unwrap();
    daemon.signal(libc::SIGKILL);
    let db = state.path().join("netev.db");
    let _ = daemon.stop();
    let db = db.to_str().unwrap();
    let all = netev_json(&["log", "--db", db, "--json", "--limit", "1000000"]);
    let sends = all
        .iter()
        .filter(|e| e["pid"] == pid && e["op"] == "sendmsg")
        .count() as u64;
    assert!(
        all.len() as u64 >= stored_before,
        "{} rows, {stored_before} reported stored",
        all.len()
    );
    assert!(sends > 0);
    // and netevd takes the file up again
    let cg2 = TestCgroup::new("store-kill2");
    let state = Path::new(db)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let again = Daemon::start(&cg2, &["--state-dir", &state]);
    let stopped = again.stop();
    assert!(stopped.success, "{}", stopped.log);
    let after = netev_json(&["log", "--db", db, "--json", "--limit", "1000000"]);
    assert!(after.len() >= all.len());
}

#[test]
fn a_full_disk_is_reported_counted_and_capture_goes_on() {
    if !root_or_skip("a_full_disk_is_reported_counted_and_capture_goes_on") {
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let m = mnt.path().to_str().unwrap().to_string();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "netev-test-full", &m])
        .status()
        .unwrap();
    assert!(st.success(), "mounting a small tmpfs");
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(m.clone());
    let cg = TestCgroup::new("store-full");
    let store = format!("sqlite:{m}/netev.db");
    let daemon = Daemon::start(&cg, &["--no-coalesce", "--store", &store]);
    let facts = cg.run_json(&load_bin(), &["loop", "udp", "--iterations", "20000"]);
    wait_until("the loss to be counted", || {
        counters(&daemon)["store_lost"].as_u64().unwrap_or(0) > 0
    });
    let status: Value =
        serde_json::from_str(&std::fs::read_to_string(daemon.status_path()).unwrap()).unwrap();
    let notes = status["notes"].to_string();
    assert!(
        notes.contains("event store failing") && notes.contains("full"),
        "{notes}"
    );
    let stopped = daemon.stop();
    assert!(stopped.success, "{}", stopped.log);
    // capture went on: every send was printed
    let sends: u64 = stopped
        .of_pid(facts["pid"].as_u64().unwrap())
        .iter()
        .filter(|e| e["op"] == "sendmsg")
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(sends, 20_000);
    assert!(
        stopped.log.contains("cannot write events to the store"),
        "{}",
        stopped.log
    );
}
