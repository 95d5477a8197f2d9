//! Repeated sends on one flow are folded into counts, and no call goes uncounted.

use std::net::UdpSocket;

use netev_tests::{root_or_skip, Daemon, TestCgroup};

use crate::{load_bin, ops};

const SENDS: u64 = 500;

fn sendto_run(extra: &[&str]) -> (Vec<serde_json::Value>, (u64, u64, u64)) {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sink.local_addr().unwrap().to_string();
    let cg = TestCgroup::new("coalesce");
    let daemon = Daemon::start(&cg, extra);
    let facts = cg.run_json(&load_bin(), &["sendto", &addr, &SENDS.to_string()]);
    let got = daemon.stop();
    let sends = ops(&got, &facts["pid"], "sendmsg")
        .into_iter()
        .cloned()
        .collect();
    (sends, got.final_counters())
}

#[test]
fn coalesced_sends_add_up_to_every_call() {
    if !root_or_skip("coalesced_sends_add_up_to_every_call") {
        return;
    }
    let (sends, (seen, delivered, dropped)) = sendto_run(&[]);
    let total: u64 = sends.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(total, SENDS, "the counts stand for every call: {sends:#?}");
    assert_eq!(
        sends[0]["count"], 1,
        "the first call of a flow is reported at once"
    );
    assert!(
        sends.len() < 10,
        "{} events for one flow within a second or two",
        sends.len()
    );
    assert_eq!(seen, delivered + dropped);
}

#[test]
fn no_coalesce_gives_one_event_per_call() {
    if !root_or_skip("no_coalesce_gives_one_event_per_call") {
        return;
    }
    let (sends, (seen, delivered, dropped)) = sendto_run(&["--no-coalesce"]);
    assert_eq!(sends.len() as u64, SENDS);
    assert!(sends.iter().all(|e| e["count"] == 1));
    assert_eq!((dropped, seen), (0, delivered));
}
