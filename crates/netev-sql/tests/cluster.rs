//! The fleet test of issue 19: a 3-node JetStream cluster on loopback, two
//! publishers with two host names (Exporters in-process, as netevd runs
//! them), one netev-sql consumer into a private PostgreSQL. One node is
//! killed and restarted mid-stream, then the whole cluster is stopped while
//! the publishers go on (they spool) and started again: afterwards every
//! event is in PostgreSQL exactly once, or counted in a gap.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use netev_event::{Event, Op};
use netev_export::{ExportStats, Exporter, ExporterConfig};
use netev_testsupport::natsserver::NatsServer;
use netev_testsupport::pgserver::PgServer;

/// Events per host per phase.
const PHASE: u32 = 1500;
const PHASES: u32 = 4;

fn ev(pid: u32) -> Event {
    let mut e = Event::new(Op::Connect);
    e.pid = pid;
    e.comm = "curl".into();
    e
}

fn poll(what: &str, timeout: Duration, mut ok: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match ok() {
            Ok(()) => return,
            Err(state) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}: {state}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn stats(s: &ExportStats) -> String {
    format!(
        "exported {} lost {} spooled {} queued {} error {:?}",
        s.exported.load(Relaxed),
        s.lost.load(Relaxed),
        s.spooled.load(Relaxed),
        s.queued.load(Relaxed),
        s.error()
    )
}

fn netev_sql(url: &str, db: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_netev-sql"))
        .args(["--from", url, "--log-level", "error", db])
        .stdin(Stdio::null())
        .spawn()
        .expect("starting netev-sql")
}

#[test]
fn two_hosts_through_a_3_node_cluster_that_loses_a_node_then_everything() {
    let Some(mut nats) = NatsServer::cluster_or_skip(3) else {
        return;
    };
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    let db = pg.create_database("fleet");
    // The operator's stream: three replicas, so that one node away loses
    // nothing (the exporters leave an existing stream as it is).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(nats.servers()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut config = netev_export::nats::stream_config("NETEV_EVENTS", "netev.events");
        config.num_replicas = 3;
        js.create_stream(config).await.unwrap();
    });

    let spools = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let hosts = ["alpha.example", "beta.example"];
    let exporters: Vec<Exporter> = hosts
        .iter()
        .zip(&spools)
        .map(|(host, spool)| {
            let mut cfg = ExporterConfig::new(*host, spool.path());
            cfg.batch = 50;
            cfg.max_delay = Duration::from_millis(10);
            Exporter::start(nats.url().parse().unwrap(), cfg).unwrap()
        })
        .collect();
    let mut sql = netev_sql(&nats.url(), &db);
    // host h's events have pids h*1_000_000 + n: unique across hosts
    let mut next = [0u32; 2];
    let mut publish = |exporters: &[Exporter]| {
        for (h, exp) in exporters.iter().enumerate() {
            for _ in 0..PHASE {
                exp.push(ev(h as u32 * 1_000_000 + next[h]));
                next[h] += 1;
            }
        }
    };
    let all_exported = |exporters: &[Exporter], n: u64| {
        poll("exported", Duration::from_secs(120), || {
            let done = exporters
                .iter()
                .all(|e| e.stats().exported.load(Relaxed) + e.stats().lost.load(Relaxed) == n);
            if done {
                Ok(())
            } else {
                Err(exporters
                    .iter()
                    .map(|e| stats(e.stats()))
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        })
    };

    // 1: everything up
    publish(&exporters);
    all_exported(&exporters, PHASE as u64);
    // 2: one node killed (it may lead the stream or the consumer)
    nats.kill(1);
    publish(&exporters);
    all_exported(&exporters, 2 * PHASE as u64);
    nats.restart(1);
    // 3: the whole cluster away: the exporters spool
    publish(&exporters);
    all_exported(&exporters, 3 * PHASE as u64);
    nats.stop_all();
    publish(&exporters);
    poll("spooling", Duration::from_secs(60), || {
        if exporters
            .iter()
            .all(|e| e.stats().spooled.load(Relaxed) > 0 && e.stats().queued.load(Relaxed) == 0)
        {
            Ok(())
        } else {
            Err(exporters
                .iter()
                .map(|e| stats(e.stats()))
                .collect::<Vec<_>>()
                .join("; "))
        }
    });
    nats.restart_all();
    let total = (PHASES * PHASE) as u64;
    all_exported(&exporters, total);
    let lost: u64 = exporters
        .into_iter()
        .map(|e| e.stop().lost.load(Relaxed))
        .sum();

    let counts = || {
        let out = pg.psql(
            "fleet",
            "SELECT (SELECT count(*) FROM events), (SELECT count(DISTINCT (host, pid)) FROM events),
                    (SELECT coalesce(sum(lost), 0) FROM gaps),
                    (SELECT count(*) FROM events WHERE host NOT IN ('alpha.example', 'beta.example'))",
        );
        let v: Vec<u64> = out.split('|').map(|x| x.parse().unwrap()).collect();
        (v[0], v[1], v[2], v[3])
    };
    poll(
        "every event in PostgreSQL",
        Duration::from_secs(120),
        || {
            let (rows, _, gaps, _) = counts();
            if rows + gaps >= 2 * total {
                Ok(())
            } else {
                Err(format!("{:?}", counts()))
            }
        },
    );
    // SAFETY: kill(2) on our own unreaped child.
    unsafe { libc::kill(sql.id() as i32, libc::SIGTERM) };
    assert!(sql.wait().unwrap().success());
    let (rows, distinct, gaps, strangers) = counts();
    assert_eq!(gaps, lost, "the gaps are what the exporters lost");
    assert_eq!(rows + gaps, 2 * total, "every event stored or counted");
    assert_eq!(rows, distinct, "no event stored twice");
    assert_eq!(strangers, 0, "rows carry the publishing host");
}
