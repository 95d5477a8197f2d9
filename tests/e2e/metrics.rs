//! `netevd --metrics`: what a Prometheus scrape of the endpoint gets — the numbers `netev status` shows, as OpenMetrics, over real HTTP.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use netev_tests::{root_or_skip, workspace_bin, Daemon, OutputBounded, PrivateBus, TestCgroup};
use serde_json::Value;

/// One HTTP/1.1 request; (status code, content type, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    let kind = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (code, kind, body.to_string())
}

/// The samples of a scrape: name with its labels → value.
fn samples(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_scrape_shows_what_netev_status_shows() {
    if !root_or_skip("a_scrape_shows_what_netev_status_shows") {
        return;
    }
    let bus = PrivateBus::system_like();
    let cg = TestCgroup::new("metrics");
    let daemon = Daemon::start(&cg, &["--bus", bus.address(), "--metrics", "127.0.0.1:0"]);
    let log = daemon.log();
    let addr = log
        .split("metrics at http://")
        .nth(1)
        .and_then(|r| r.split("/metrics").next())
        .unwrap_or_else(|| panic!("netevd did not say where metrics are:\n{log}"))
        .to_string();
    cg.run_json(&super::load_bin(), &["loop", "udp", "--iterations", "500"]);

    let status = || -> Value {
        let out = Command::new(workspace_bin("netev"))
            .args(["--bus", bus.address(), "status", "--json"])
            .output_bounded();
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Prometheus name → `netev status --json`'s counter.
    let names = [
        ("netev_records_seen_total", "seen"),
        ("netev_records_delivered_total", "delivered"),
        ("netev_records_dropped_total", "dropped"),
        ("netev_calls_total", "calls"),
        ("netev_calls_coalesced_total", "coalesced"),
        ("netev_events_total", "events"),
        ("netev_bus_events_dropped_total", "bus_dropped"),
        ("netev_store_events_stored_total", "stored"),
        ("netev_store_events_lost_total", "store_lost"),
        ("netev_export_events_exported_total", "exported"),
        ("netev_export_events_lost_total", "export_lost"),
        ("netev_export_events_spooled", "export_spooled"),
        ("netev_prompts_pending", "prompts_pending"),
        ("netev_prompts_refused_total", "prompts_refused"),
        ("netev_rules", "rules"),
        ("netev_bus_events_queued", "bus_queued"),
        ("netev_store_events_queued", "store_queued"),
        ("netev_export_events_queued", "export_queued"),
    ];
    let mut last = String::new();
    // Both show one snapshot, refreshed every second: once the events of
    // the loop are in, a scrape between two equal statuses shows them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut agrees = || {
        let before = status();
        let (code, kind, body) = http(&addr, "GET", "/metrics");
        let after = status();
        assert_eq!(code, 200, "{body}");
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        let got = samples(&body);
        last = format!("status {before}\nscrape:\n{body}");
        if before["counters"] != after["counters"]
            || before["counters"]["calls"].as_u64() < Some(500)
        {
            return false;
        }
        let by_op = before["calls_by_op"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        names.iter().all(|(metric, counter)| {
            got.get(*metric).copied() == before["counters"][counter].as_u64()
        }) && got.contains_key("netev_uptime_seconds")
            && by_op.contains_key("sendmsg")
            && by_op.iter().all(|(op, n)| {
                got.get(&format!("netev_op_calls_total{{op=\"{op}\"}}"))
                    .copied()
                    == n.as_u64()
            })
    };
    while !agrees() {
        assert!(
            Instant::now() < deadline,
            "no scrape agreed with netev status in 60 s; the last:\n{last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, _, body) = http(&addr, "GET", "/metrics");
    let hooks = body
        .lines()
        .filter(|l| l.starts_with("netev_hook{"))
        .count();
    assert_eq!(
        hooks,
        status()["hooks"].as_array().unwrap().len(),
        "one sample per hook: {last}"
    );
    let backend = status()["backend"].as_str().unwrap().to_string();
    assert!(
        body.contains(&format!("backend=\"{backend}\"")),
        "the backend in netev_daemon_info: {body}"
    );

    // Anything else is refused, and says what is served.
    let (code, _, body) = http(&addr, "GET", "/");
    assert_eq!(
        (code, body.as_str()),
        (404, "netevd serves /metrics only\n")
    );
    let (code, _, _) = http(&addr, "POST", "/metrics");
    assert_eq!(code, 405);
    daemon.stop();
}
