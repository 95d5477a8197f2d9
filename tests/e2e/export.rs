//! netevd --export: what the daemon captures reaches each receiver (files in
//! both schemas, a real rsyslogd), and a receiver that is away costs no
//! event: they spool, the status says so, and they arrive when it is back.

use std::collections::BTreeSet;
use std::time::Duration;

use netev_tests::{root_or_skip, wait_until, Daemon, TestCgroup};
use netev_testsupport::rsyslog::Rsyslog;
use serde_json::Value;

use crate::load_bin;

/// netev status's counters, from the daemon's status file.
fn counters(daemon: &Daemon) -> Value {
    let text = std::fs::read_to_string(daemon.status_path()).unwrap_or_default();
    serde_json::from_str::<Value>(&text).map_or(Value::Null, |s| s["counters"].clone())
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect()
}

#[test]
fn every_event_printed_is_in_each_export_file_once() {
    if !root_or_skip("every_event_printed_is_in_each_export_file_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let netev = dir.path().join("netev.json");
    let ocsf = dir.path().join("ocsf.json");
    let (a, b) = (
        format!("file:{}", netev.display()),
        format!("file:{}?format=ocsf", ocsf.display()),
    );
    let cg = TestCgroup::new("export-file");
    let daemon = Daemon::start(
        &cg,
        &[
            "--no-coalesce",
            "--store",
            "none",
            "--export",
            &a,
            "--export",
            &b,
        ],
    );
    let load = cg.run_json(&load_bin(), &["loop", "udp", "--iterations", "300"]);
    let pid = load["pid"].as_u64();
    let stopped = daemon.stop();
    assert!(stopped.success, "{}", stopped.log);
    let printed = &stopped.events;
    assert!(
        printed.iter().filter(|e| e["pid"].as_u64() == pid).count() >= 300,
        "the loop's events were captured: {}",
        stopped.log
    );

    // netev's schema: the very events netevd printed, each once, in order
    let exported = lines(&netev);
    assert_eq!(exported.len(), printed.len(), "{}", stopped.log);
    assert!(
        exported == *printed,
        "the export differs from what was printed"
    );

    // OCSF: one Network Activity per event, the same processes and calls
    let ocsf = lines(&ocsf);
    assert_eq!(ocsf.len(), printed.len());
    for (o, e) in ocsf.iter().zip(printed) {
        assert_eq!(o["class_uid"], 4001, "{o}");
        assert_eq!(o["actor"]["process"]["pid"], e["pid"], "{o}\n{e}");
        assert_eq!(o["count"], e["count"], "{o}\n{e}");
    }
    // the final counters say the same
    let n = printed.len() as u64;
    let log = &stopped.log;
    let final_line = log.lines().find(|l| l.contains("final counters")).unwrap();
    assert!(
        final_line.contains(&format!("exported={}", 2 * n)) && final_line.contains("export_lost=0"),
        "{final_line}"
    );
}

/// The JSON inside a received RFC 5424 message (after its BOM).
fn body(msg: &[u8]) -> Option<Value> {
    let at = msg.windows(3).position(|w| w == b"\xEF\xBB\xBF")?;
    serde_json::from_slice(&msg[at + 3..]).ok()
}

#[test]
fn a_syslog_receiver_that_is_away_gets_every_event_when_it_is_back() {
    if !root_or_skip("a_syslog_receiver_that_is_away_gets_every_event_when_it_is_back") {
        return;
    }
    let Some(mut rsyslog) = Rsyslog::start_or_skip(None) else {
        return;
    };
    let url = format!("syslog+tcp://127.0.0.1:{}", rsyslog.tcp_port());
    rsyslog.stop();
    let cg = TestCgroup::new("export-away");
    let daemon = Daemon::start(&cg, &["--no-coalesce", "--store", "none", "--export", &url]);
    cg.run_json(&load_bin(), &["loop", "udp", "--iterations", "200"]);
    // nothing to send to: the events wait on disk, and the status says so
    wait_until("events spooled while rsyslogd is away", || {
        let c = counters(&daemon);
        c["export_spooled"].as_u64() >= Some(200) && c["exported"] == 0
    });
    let status = std::fs::read_to_string(daemon.status_path()).unwrap();
    assert!(status.contains(&format!("export to {url}")), "{status}");
    assert!(status.contains("failing"), "{status}");

    rsyslog.start_again();
    wait_until("the spool drained to rsyslogd", || {
        let c = counters(&daemon);
        c["export_spooled"] == 0 && c["exported"].as_u64() >= Some(200)
    });
    let stopped = daemon.stop();
    let want: BTreeSet<String> = stopped.events.iter().map(Value::to_string).collect();
    let got = rsyslog.wait_for(Duration::from_secs(30), |msgs| {
        let have: BTreeSet<String> = msgs
            .iter()
            .filter_map(|m| body(m))
            .map(|v| v.to_string())
            .collect();
        want.is_subset(&have)
    });
    let have: BTreeSet<String> = got
        .iter()
        .filter_map(|m| body(m))
        .map(|v| v.to_string())
        .collect();
    let missing = want.difference(&have).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} events never reached rsyslogd",
        want.len()
    );
    let final_line = stopped
        .log
        .lines()
        .find(|l| l.contains("final counters"))
        .unwrap();
    assert!(final_line.contains("export_lost=0"), "{final_line}");
}
