//! Which backend runs, and what only the BPF LSM backend can refuse: a denied `listen` fails with EPERM; an inbound rule refuses one client's connection while another still connects; a denied SCTP connect and an AF_UNSPEC sendto are refused; where no backend loads, netevd says which kernel, program and verifier message.
//!
//! The `lsm_` tests need a kernel that runs BPF LSM programs (Debian's own
//! kernels do; this machine's host kernel, in integrity lockdown, does
//! not), so they are ignored by a plain `cargo test` and run by
//! scripts/vm-matrix.sh inside the VMs with `NETEV_TEST_BACKEND=lsm` and
//! `--ignored`; likewise `no_backend_` on the kernel the matrix keeps for it
//! (Debian 11's 5.10, older than what netev needs).

use std::process::Command;

use netev_host::security::LsmAvailability;
use netev_tests::{root_or_skip, workspace_bin, Daemon, OutputBounded, Stopped, TestCgroup};
use serde_json::Value;

use crate::{check_each, load_bin};

fn events<'a>(stopped: &'a Stopped, facts: &Value, op: &str) -> Vec<&'a Value> {
    crate::ops(stopped, &facts["pid"], op)
}

/// `lsm listen`: a denied listen fails with EPERM; the next port listens.
const LSM_LISTEN: u16 = 47411;
/// `lsm inbound`: the listener's port (the rule names the client, 127.0.0.2).
const LSM_INBOUND: u16 = 47421;
/// `lsm sctp-connect`.
const LSM_SCTP: u16 = 47431;
/// `lsm sendto-unspec`: denied on this port, delivered on the next.
const LSM_UNSPEC: u16 = 47441;
/// `lsm fast-open`.
const LSM_TFO: u16 = 47451;

/// Every case's rule, each on its own ports (the inbound one on its client
/// address, which no other case uses).
fn lsm_rules() -> String {
    [
        format!("[[rule]]\naction = \"deny\"\nops = \"listen\"\nports = {LSM_LISTEN}\n"),
        "[[rule]]\naction = \"deny\"\nops = \"accept\"\naddr = \"127.0.0.2\"\n".to_string(),
        format!("[[rule]]\naction = \"deny\"\nops = \"connect\"\nports = {LSM_SCTP}\n"),
        format!("[[rule]]\naction = \"deny\"\nops = \"connect\"\nports = {LSM_TFO}\n"),
        format!("[[rule]]\naction = \"deny\"\nops = \"sendmsg\"\nports = {LSM_UNSPEC}\n"),
    ]
    .concat()
}

fn check_listen(stopped: &Stopped, denied: &Value, other: &Value) {
    let port = LSM_LISTEN;
    let facts = denied;
    assert_eq!(facts["bind"], "ok", "{facts}");
    assert_eq!(facts["listen"], "EPERM", "{facts}");
    let listens = events(stopped, facts, "listen");
    assert_eq!(listens.len(), 1, "{listens:#?}");
    assert_eq!(listens[0]["verdict"], "deny");
    assert_eq!(listens[0]["ret"], -1, "listen's EPERM, as returned");
    assert_eq!(listens[0]["lport"], port);

    // another port listens: the rule, not the backend, refused it
    let facts = other;
    assert_eq!(facts["listen"], "ok", "{facts}");
    let listens = events(stopped, facts, "listen");
    assert_eq!(listens.len(), 1, "{listens:#?}");
    assert_eq!(listens[0]["verdict"], "allow");
    assert_eq!(listens[0]["ret"], 0);
}

fn check_inbound(stopped: &Stopped, facts: &Value) {
    let port = LSM_INBOUND;
    assert_eq!(facts["denied"]["connect"], "EINPROGRESS", "{facts}");
    assert_eq!(
        facts["denied"]["state"], "syn-sent",
        "the denied client's SYN was dropped: {facts}"
    );
    assert_eq!(facts["allowed"]["connect"], "ok", "{facts}");
    assert_eq!(facts["allowed"]["state"], "established", "{facts}");
    assert_eq!(facts["accept"], "ok", "{facts}");
    assert_eq!(facts["accepted_peer"], "127.0.0.3", "{facts}");
    assert_eq!(
        facts["accept_again"], "EAGAIN",
        "nothing else reached the queue: {facts}"
    );
    let accepts = events(stopped, facts, "accept");
    let refused: Vec<_> = accepts.iter().filter(|e| e["verdict"] == "deny").collect();
    assert!(!refused.is_empty(), "no refused SYN reported: {accepts:#?}");
    for e in &refused {
        assert_eq!(e["raddr"], "127.0.0.2", "{e}");
        assert_eq!(e["lport"], port, "{e}");
        assert_eq!(e["ret"], -1, "{e}");
        // the listener's process, not whoever the SYN interrupted
        assert_eq!(e["comm"], "netev-load", "{e}");
    }
    let taken: Vec<_> = accepts.iter().filter(|e| e["verdict"] == "allow").collect();
    assert_eq!(taken.len(), 1, "{accepts:#?}");
    assert_eq!(taken[0]["raddr"], "127.0.0.3");
    assert!(taken[0]["ret"].as_i64().unwrap() >= 0, "{}", taken[0]);
}

fn check_sctp(stopped: &Stopped, facts: &Value) {
    let port = LSM_SCTP;
    assert_eq!(facts["connect"], "EPERM", "{facts}");
    let connects = events(stopped, facts, "connect");
    assert_eq!(connects.len(), 1, "{connects:#?}");
    assert_eq!(connects[0]["verdict"], "deny");
    assert_eq!(connects[0]["raddr"], "127.0.0.1");
    assert_eq!(connects[0]["rport"], port);
}

fn check_fast_open(stopped: &Stopped, facts: &Value) {
    let port = LSM_TFO;
    assert_eq!(facts["sendto"], "EPERM", "{facts}");
    let connects = events(stopped, facts, "connect");
    assert_eq!(connects.len(), 1, "{connects:#?}");
    assert_eq!(connects[0]["verdict"], "deny");
    assert_eq!(connects[0]["rport"], port);
    assert!(events(stopped, facts, "sendmsg").is_empty());
}

fn check_unspec(stopped: &Stopped, denied: &Value, other: &Value) {
    let port = LSM_UNSPEC;
    let facts = denied;
    assert_eq!(facts["sendto"], "EPERM", "{facts}");
    assert_eq!(facts["received"], false, "{facts}");
    let sends = events(stopped, facts, "sendmsg");
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0]["verdict"], "deny");
    assert_eq!(sends[0]["family"], "inet", "what the kernel acts on");
    assert_eq!(sends[0]["raddr"], "127.0.0.1");
    assert_eq!(sends[0]["rport"], port);

    // unruled, the same datagram is delivered (the kernel takes AF_UNSPEC)
    let facts = other;
    assert_eq!(facts["sendto"], "ok", "{facts}");
    assert_eq!(facts["received"], true, "{facts}");
    let sends = events(stopped, facts, "sendmsg");
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0]["verdict"], "allow");
    assert_eq!(sends[0]["rport"], port + 1);
}

/// What only the LSM backend refuses, under one netevd (which must be
/// running the LSM backend) with one rules file, each case on ports of its
/// own and a process of its own (its events told apart by pid), each
/// checked as when it had a netevd to itself; a failure names it:
///
/// - `lsm listen`: a denied `listen` fails with EPERM; another port listens.
/// - `lsm inbound`: an inbound rule refuses one client's connection (its
///   SYN dropped) while another client connects and is accepted.
/// - `lsm sctp-connect`: a denied SCTP connect is refused.
/// - `lsm fast-open`: a TCP Fast Open send is decided as the connect it is.
/// - `lsm sendto-unspec`: an AF_UNSPEC sendto is refused and reported with
///   its destination; unruled, the same datagram is delivered.
#[test]
#[ignore = "needs BPF LSM: run by scripts/vm-matrix.sh (NETEV_TEST_BACKEND=lsm)"]
fn lsm_listen_inbound_sctp_fast_open_and_unspec_sends_are_refused() {
    if !root_or_skip("lsm_listen_inbound_sctp_fast_open_and_unspec_sends_are_refused") {
        return;
    }
    assert_eq!(
        std::env::var("NETEV_TEST_BACKEND").as_deref(),
        Ok("lsm"),
        "the lsm_ tests test the BPF LSM backend: run them with NETEV_TEST_BACKEND=lsm on a \
         kernel that has it (scripts/vm-matrix.sh does)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rules.toml");
    std::fs::write(&file, lsm_rules()).expect("writing the rules");
    let cg = TestCgroup::new("lsm-only");
    let daemon = Daemon::start(&cg, &["--rules-file", file.to_str().expect("utf-8")]);
    let run = |what: &str, port: u16| cg.run_json(&load_bin(), &["edge", what, &port.to_string()]);
    let listen = run("listen", LSM_LISTEN);
    let listen_other = run("listen", LSM_LISTEN + 1);
    let inbound = run("inbound", LSM_INBOUND);
    let sctp = run("sctp-connect", LSM_SCTP);
    let tfo = run("fast-open", LSM_TFO);
    let unspec = run("sendto-unspec", LSM_UNSPEC);
    let unspec_ok = run("sendto-unspec", LSM_UNSPEC + 1);
    let stopped = daemon.stop();
    assert!(stopped.success, "{}", stopped.log);
    assert!(
        stopped.log.contains("backend: bpf-lsm"),
        "netevd did not run the LSM backend:\n{}",
        stopped.log
    );
    let s = &stopped;
    check_each(vec![
        (
            format!("lsm listen (ports {LSM_LISTEN}/+1)"),
            Box::new(|| check_listen(s, &listen, &listen_other)),
        ),
        (
            format!("lsm inbound (port {LSM_INBOUND}, client 127.0.0.2 denied)"),
            Box::new(|| check_inbound(s, &inbound)),
        ),
        (
            format!("lsm sctp-connect (port {LSM_SCTP})"),
            Box::new(|| check_sctp(s, &sctp)),
        ),
        (
            format!("lsm fast-open (port {LSM_TFO})"),
            Box::new(|| check_fast_open(s, &tfo)),
        ),
        (
            format!("lsm sendto-unspec (ports {LSM_UNSPEC}/+1)"),
            Box::new(|| check_unspec(s, &unspec, &unspec_ok)),
        ),
    ]);
}

/// Runs netevd with `args` until it exits (it must not start).
fn netevd_refused(cg: &TestCgroup, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(workspace_bin("netevd"))
        .args(["--foreground", "--bus", "none", "--cgroup"])
        .arg(cg.path())
        .arg("--run-dir")
        .arg(dir.path())
        .arg("--state-dir")
        .arg(dir.path())
        .args(args)
        .output_bounded();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .expect("osrelease")
        .trim()
        .to_string()
}

#[test]
fn asking_for_lsm_where_the_kernel_refuses_it_is_an_explained_error() {
    if !root_or_skip("asking_for_lsm_where_the_kernel_refuses_it_is_an_explained_error") {
        return;
    }
    let cg = TestCgroup::new("lsm-asked");
    match netev_bpf::lsm::probe() {
        LsmAvailability::Unavailable(why) => {
            let (ok, err) = netevd_refused(&cg, &["--backend", "lsm"]);
            assert!(!ok, "netevd started without the backend asked for: {err}");
            assert!(
                err.contains("the bpf-lsm backend cannot run here") && err.contains(&why),
                "{err}"
            );
        }
        LsmAvailability::Available => {
            let daemon = Daemon::start(&cg, &["--backend", "lsm"]);
            let stopped = daemon.stop();
            assert!(stopped.success, "{}", stopped.log);
            assert!(
                stopped.log.contains("backend: bpf-lsm, as asked"),
                "{}",
                stopped.log
            );
        }
    }
}

#[test]
#[ignore = "needs a kernel netev does not support: run by scripts/vm-matrix.sh on 5.10"]
fn no_backend_loads_and_netevd_says_which_kernel_program_and_why() {
    if !root_or_skip("no_backend_loads_and_netevd_says_which_kernel_program_and_why") {
        return;
    }
    let cg = TestCgroup::new("no-backend");
    let (ok, err) = netevd_refused(&cg, &["--backend", "auto"]);
    assert!(!ok, "netevd started: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("does not load on kernel {}", kernel_release())),
        "the last line names the kernel: {last}\n{err}"
    );
    assert!(last.contains("program netev_"), "and the program: {last}");
    // the verifier's own words, as in the log above it
    let reason = last
        .split_once("): ")
        .map(|(head, _)| head.rsplit_once(" (").map(|(_, r)| r).unwrap_or(""))
        .unwrap_or("");
    assert!(
        !reason.is_empty() && err.lines().any(|l| l.trim() == reason),
        "the reason is the verifier's line: {reason:?}\n{err}"
    );
}

#[test]
fn every_backend_the_kernel_offers_loads_all_its_programs() {
    if !root_or_skip("every_backend_the_kernel_offers_loads_all_its_programs") {
        return;
    }
    // loads (verifies) each object whole, attaching nothing
    let out = Command::new(workspace_bin("netevd"))
        .arg("--check-backend")
        .output_bounded();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.lines().any(|l| l == "cgroup+tracepoints: loads"),
        "the cgroup backend loads on kernel {}: {said}",
        kernel_release()
    );
    match netev_bpf::lsm::probe() {
        LsmAvailability::Available => {
            assert!(said.lines().any(|l| l == "bpf-lsm: loads"), "{said}");
            assert!(said.lines().any(|l| l == "chosen: bpf-lsm"), "{said}");
        }
        LsmAvailability::Unavailable(why) => {
            assert!(
                said.contains(&format!("bpf-lsm: unavailable: {why}")),
                "{said}"
            );
            assert!(
                said.lines().any(|l| l == "chosen: cgroup+tracepoints"),
                "{said}"
            );
        }
    }
}
