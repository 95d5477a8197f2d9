//! `netev-sql --from nats://…` against a real private nats-server and a
//! real database (SQLite, and PostgreSQL from netev-testsupport): every
//! exported event lands exactly once, with the publishing host's name, even
//! when netev-sql is killed with SIGKILL mid-stream and started again; a
//! malformed message becomes a gap.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netev_event::{Event, Op};
use netev_export::{Exporter, ExporterConfig};
use netev_testsupport::natsserver::NatsServer;
use netev_testsupport::pgserver::PgServer;

const EVENTS: u32 = 20_000;

fn ev(pid: u32) -> Event {
    let mut e = Event::new(Op::Connect);
    e.pid = pid;
    e.comm = "curl".into();
    e
}

fn netev_sql(url: &str, db: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_netev-sql"))
        .args(["--from", url, "--log-level", "warn", db])
        .stdin(Stdio::null())
        .spawn()
        .expect("starting netev-sql")
}

fn sigterm(mut c: Child) {
    // SAFETY: kill(2) on our own unreaped child.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let status = c.wait().unwrap();
    assert!(status.success(), "netev-sql exited {status}");
}

/// What the database holds: (rows, distinct pids, batch ids, rows not from h1).
type Counts = (u64, u64, u64, u64);

fn wait_until(
    what: &str,
    timeout: Duration,
    count: &dyn Fn() -> Counts,
    ok: &dyn Fn(Counts) -> bool,
) -> Counts {
    let deadline = Instant::now() + timeout;
    loop {
        let c = count();
        if ok(c) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}; the database has {c:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Publishes EVENTS events from host h1 while netev-sql reads them, kills
/// netev-sql mid-stream, starts it again, and checks every event is there
/// once.
fn exactly_once_across_a_kill(db: &str, count: &dyn Fn() -> Counts) {
    let Some(nats) = NatsServer::start_or_skip() else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = ExporterConfig::new("h1", spool.path());
    cfg.batch = 20;
    cfg.max_delay = Duration::from_millis(5);
    let exp = Exporter::start(nats.url().parse().unwrap(), cfg).unwrap();
    let mut sql = netev_sql(&nats.url(), db);
    for pid in 0..EVENTS {
        exp.push(ev(pid));
    }
    // killed mid-stream: some rows, not all
    wait_until("netev-sql writes", Duration::from_secs(60), count, &|c| {
        c.0 > 2000
    });
    sql.kill().unwrap();
    sql.wait().unwrap();
    let at_kill = count();
    assert!(
        at_kill.0 < EVENTS as u64,
        "netev-sql finished before the kill: {at_kill:?}"
    );
    let stats = exp.stop();
    assert_eq!(
        stats.exported.load(std::sync::atomic::Ordering::Relaxed),
        EVENTS as u64
    );
    let sql = netev_sql(&nats.url(), db);
    let done = wait_until("every event", Duration::from_secs(120), count, &|c| {
        c.0 >= EVENTS as u64 && c.2 >= (EVENTS / 20) as u64
    });
    sigterm(sql);
    assert_eq!(
        (done, count()),
        (
            (EVENTS as u64, EVENTS as u64, (EVENTS / 20) as u64, 0),
            done
        ),
        "(rows, distinct pids, batch ids, rows of another host)"
    );
}

fn sqlite_counts(path: &std::path::Path) -> Counts {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return (0, 0, 0, 0);
    };
    c.query_row(
        "SELECT (SELECT count(*) FROM events), (SELECT count(DISTINCT pid) FROM events),
                (SELECT count(*) FROM export_batches),
                (SELECT count(*) FROM events WHERE host <> 'h1')",
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)? as u64,
            ))
        },
    )
    .unwrap_or((0, 0, 0, 0))
}

#[test]
fn sqlite_gets_every_event_once_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    exactly_once_across_a_kill(db.to_str().unwrap(), &|| sqlite_counts(&db));
}

#[test]
fn postgresql_gets_every_event_once_across_a_sigkill() {
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    let url = pg.create_database("fromnats");
    // the schema exists before the first count
    drop(netev_store::open(&url).unwrap());
    exactly_once_across_a_kill(&url, &|| {
        let out = pg.psql(
            "fromnats",
            "SELECT (SELECT count(*) FROM events), (SELECT count(DISTINCT pid) FROM events),
                    (SELECT count(*) FROM export_batches),
                    (SELECT count(*) FROM events WHERE host <> 'h1')",
        );
        let v: Vec<u64> = out.split('|').map(|x| x.parse().unwrap()).collect();
        (v[0], v[1], v[2], v[3])
    });
}

#[test]
fn a_malformed_message_becomes_a_gap_and_the_rest_is_stored() {
    let Some(nats) = NatsServer::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let spool = tempfile::tempdir().unwrap();
    let start = || {
        Exporter::start(
            nats.url().parse().unwrap(),
            ExporterConfig::new("h1", spool.path()),
        )
        .unwrap()
    };
    let exp = start();
    exp.push(ev(1));
    let stats = exp.stop();
    assert_eq!(stats.exported.load(std::sync::atomic::Ordering::Relaxed), 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(nats.servers()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut h = async_nats::HeaderMap::new();
        h.insert(async_nats::header::NATS_MESSAGE_ID, "h2:x:1");
        h.insert("Netev-Host", "h2");
        h.insert("Netev-Events", "3");
        js.publish_with_headers("netev.events.h2", h, "{not json\n".into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    let exp = start();
    exp.push(ev(2));
    exp.stop();
    let sql = netev_sql(&nats.url(), db.to_str().unwrap());
    wait_until(
        "both good events and the bad one",
        Duration::from_secs(60),
        &|| sqlite_counts(&db),
        &|c| c.0 == 2 && c.2 == 3,
    );
    sigterm(sql);
    let c = rusqlite::Connection::open(&db).unwrap();
    let (host, lost, reason): (String, i64, String) = c
        .query_row("SELECT host, lost, reason FROM gaps", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((host.as_str(), lost), ("h2", 3));
    assert!(
        reason.contains("malformed") && reason.contains("line 1"),
        "{reason}"
    );
}
