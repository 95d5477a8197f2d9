//! The `nats://` export against a real private nats-server
//! (netev-testsupport's natsserver): batches arrive once each with their
//! ids; a server that goes away makes batches spool, and the spool drains
//! when it returns; what overflows the spool arrives as a gap record with
//! the exact count.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use netev_event::{Event, Op};
use netev_export::{ExportStats, Exporter, ExporterConfig};
use netev_testsupport::natsserver::NatsServer;

fn ev(pid: u32) -> Event {
    let mut e = Event::new(Op::Connect);
    e.pid = pid;
    e.comm = "curl".into();
    e
}

fn config(host: &str, spool: &std::path::Path) -> ExporterConfig {
    let mut c = ExporterConfig::new(host, spool);
    c.batch = 10;
    c.max_delay = Duration::from_millis(20);
    c
}

fn wait_for(what: &str, stats: &ExportStats, timeout: Duration, ok: impl Fn(&ExportStats) -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok(stats) {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}: {stats:?}, error {:?}",
            stats.error()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get(stats: &ExportStats) -> (u64, u64, u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        stats.exported.load(Relaxed),
        stats.lost.load(Relaxed),
        stats.spooled.load(Relaxed),
        stats.queued.load(Relaxed),
    )
}

/// One message of the stream as the test reads it back.
#[derive(Debug)]
struct Msg {
    subject: String,
    id: String,
    host: String,
    events: u64,
    gap: Option<u64>,
    lines: Vec<serde_json::Value>,
}

/// Every message in `stream`, in order.
fn read_stream(url_servers: &[String], stream: &str) -> Vec<Msg> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url_servers.to_vec()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut s = js.get_stream(stream).await.unwrap();
        let info = s.info().await.unwrap().clone();
        let mut out = Vec::new();
        if info.state.messages == 0 {
            return out;
        }
        for seq in info.state.first_sequence..=info.state.last_sequence {
            let m = s.get_raw_message(seq).await.unwrap();
            let h = |name: &str| {
                m.headers
                    .get(name)
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default()
            };
            let lines = String::from_utf8(m.payload.to_vec())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            out.push(Msg {
                subject: m.subject.to_string(),
                // the standard name, as async-nats stores it
                id: m
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default(),
                host: h("Netev-Host"),
                events: h("Netev-Events").parse().unwrap(),
                gap: m
                    .headers
                    .get("Netev-Gap")
                    .map(|v| v.as_str().parse().unwrap()),
                lines,
            });
        }
        out
    })
}

/// pid → how many times it is in the stream's events.
fn pids(msgs: &[Msg]) -> BTreeMap<u64, u32> {
    let mut m = BTreeMap::new();
    for msg in msgs.iter().filter(|m| m.gap.is_none()) {
        assert_eq!(msg.events as usize, msg.lines.len(), "{msg:?}");
        for l in &msg.lines {
            *m.entry(l["pid"].as_u64().unwrap()).or_default() += 1;
        }
    }
    m
}

fn assert_exactly_once(msgs: &[Msg], n: u32) {
    let p = pids(msgs);
    let wrong: Vec<_> = (0..n as u64)
        .filter(|pid| p.get(pid) != Some(&1))
        .map(|pid| (pid, p.get(&pid).copied().unwrap_or(0)))
        .collect();
    assert!(
        wrong.is_empty(),
        "events not there exactly once (pid, times): {wrong:?}"
    );
    assert_eq!(p.len(), n as usize, "events that were never exported");
    let mut ids: Vec<_> = msgs.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), msgs.len(), "a batch id is in the stream twice");
}

#[test]
fn events_arrive_once_each_with_their_batch_ids_and_headers() {
    let Some(nats) = NatsServer::start_or_skip() else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    let target = nats.url().parse().unwrap();
    let exp = Exporter::start(target, config("web-1.example.com", spool.path())).unwrap();
    for pid in 0..500 {
        exp.push(ev(pid));
    }
    wait_for("all exported", exp.stats(), Duration::from_secs(30), |s| {
        get(s).0 == 500
    });
    let stats = exp.stop();
    assert_eq!(get(&stats).1, 0);
    let msgs = read_stream(&nats.servers(), "NETEV_EVENTS");
    assert_exactly_once(&msgs, 500);
    for m in &msgs {
        assert_eq!(m.subject, "netev.events.web-1_example_com");
        assert_eq!(m.host, "web-1.example.com");
        assert!(m.id.starts_with("web-1.example.com:"), "{}", m.id);
    }
}

#[test]
fn a_server_away_makes_batches_spool_and_the_spool_drains_once_it_is_back() {
    let Some(mut nats) = NatsServer::start_or_skip() else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    let target = nats.url().parse().unwrap();
    let exp = Exporter::start(target, config("h1", spool.path())).unwrap();
    for pid in 0..200 {
        exp.push(ev(pid));
    }
    wait_for(
        "first half exported",
        exp.stats(),
        Duration::from_secs(30),
        |s| get(s).0 == 200,
    );
    nats.stop(0);
    for pid in 200..400 {
        exp.push(ev(pid));
    }
    wait_for(
        "second half spooled",
        exp.stats(),
        Duration::from_secs(60),
        |s| {
            let (exported, _, spooled, queued) = get(s);
            queued == 0 && spooled > 0 && exported + spooled == 400
        },
    );
    nats.restart(0);
    wait_for("spool drained", exp.stats(), Duration::from_secs(60), |s| {
        let (exported, _, spooled, _) = get(s);
        exported == 400 && spooled == 0
    });
    let stats = exp.stop();
    assert_eq!(get(&stats).1, 0, "nothing lost");
    assert_exactly_once(&read_stream(&nats.servers(), "NETEV_EVENTS"), 400);
}

#[test]
fn what_overflows_the_spool_arrives_as_a_gap_with_the_exact_count() {
    let Some(mut nats) = NatsServer::start_or_skip() else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    // the stream exists first, then the server goes away
    let target: netev_export::ExportTarget = nats.url().parse().unwrap();
    {
        let exp = Exporter::start(target.clone(), config("h1", spool.path())).unwrap();
        exp.push(ev(1_000_000));
        wait_for("first", exp.stats(), Duration::from_secs(30), |s| {
            get(s).0 == 1
        });
        exp.stop();
    }
    nats.stop(0);
    let target: netev_export::ExportTarget =
        format!("{}?spool_max=8K", nats.url()).parse().unwrap();
    let exp = Exporter::start(target, config("h1", spool.path())).unwrap();
    let pushed = 2000u64;
    for pid in 0..pushed {
        exp.push(ev(pid as u32));
    }
    wait_for(
        "spool full, events lost",
        exp.stats(),
        Duration::from_secs(60),
        |s| {
            let (_, lost, spooled, queued) = get(s);
            queued == 0 && lost > 0 && spooled + lost == pushed
        },
    );
    nats.restart(0);
    wait_for("spool drained", exp.stats(), Duration::from_secs(60), |s| {
        get(s).2 == 0
    });
    let stats = exp.stop();
    let (exported, lost, _, _) = get(&stats);
    assert_eq!(
        exported + lost,
        pushed,
        "every event exported or counted lost"
    );
    let msgs = read_stream(&nats.servers(), "NETEV_EVENTS");
    let gap_total: u64 = msgs.iter().filter_map(|m| m.gap).sum();
    assert_eq!(gap_total, lost, "the gap records carry the lost count");
    for m in msgs.iter().filter(|m| m.gap.is_some()) {
        assert_eq!(m.lines.len(), 1);
        assert_eq!(m.lines[0]["gap"]["lost"].as_u64(), m.gap, "{m:?}");
        assert_eq!(m.events, 0);
    }
    let arrived: u64 = pids(&msgs).values().map(|&n| n as u64).sum();
    assert_eq!(
        arrived,
        exported + 1,
        "events in the stream (and the first exporter's one)"
    );
    assert!(pids(&msgs).values().all(|&n| n == 1), "an event twice");
}
