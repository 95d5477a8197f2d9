//! netev-sql: two hosts' streams into one PostgreSQL database (a real
//! server started by the test), and a database restart while writing:
//! nothing committed is lost and what could not be written is counted; and
//! two netevd exporting through a 3-node NATS JetStream cluster that loses
//! a node, then all of it, into PostgreSQL exactly once.

use std::process::{Child, Command, Stdio};

use netev_tests::{root_or_skip, wait_until, workspace_bin, Daemon, PrivateBus, TestCgroup};

use crate::load_bin;
use crate::pgserver::PgServer;

struct Sql(Child, std::path::PathBuf);

impl Sql {
    fn start(bus: &PrivateBus, url: &str, host: &str) -> Sql {
        let log = std::env::temp_dir().join(format!("netev-sql-{host}-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        Sql(
            Command::new(workspace_bin("netev-sql"))
                .args([
                    "--bus",
                    bus.address(),
                    "--host",
                    host,
                    "--log-level",
                    "debug",
                    url,
                ])
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stderr(file)
                .spawn()
                .expect("netev-sql"),
            log,
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// SIGTERM; it writes what it holds and exits 0.
    fn stop(mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let st = netev_tests::wait_bounded(&mut self.0, "netev-sql");
        assert!(st.success(), "netev-sql exit: {st}");
    }
}

impl Drop for Sql {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn count(pg: &PgServer, db: &str, sql: &str) -> u64 {
    pg.psql(db, sql).trim().parse().unwrap_or(0)
}

#[test]
fn two_hosts_into_one_postgres_and_a_restart_loses_nothing_committed() {
    if !root_or_skip("two_hosts_into_one_postgres_and_a_restart_loses_nothing_committed") {
        return;
    }
    let Some(mut pg) = PgServer::start_or_skip() else {
        return;
    };
    let url = pg.create_database("fleet");
    let bus = PrivateBus::system_like();
    let cg = TestCgroup::new("fleet");
    let daemon = Daemon::start(
        &cg,
        &["--bus", bus.address(), "--no-coalesce", "--store", "none"],
    );
    let a = Sql::start(&bus, &url, "host-a");
    let b = Sql::start(&bus, &url, "host-b");
    netev_tests::wait_for_log(&daemon, "2 subscribers", |log| {
        log.lines().filter(|l| l.contains(" subscribed ")).count() >= 2
    });

    let first = cg.run_json(&load_bin(), &["loop", "udp", "--iterations", "3000"]);
    let pid = first["pid"].as_u64().unwrap();
    let per_host = |host: &str, pid: u64| {
        format!(
            "SELECT count(*) FROM events WHERE host = '{host}' AND pid = {pid} AND op = 'sendmsg'"
        )
    };
    wait_until("both hosts' rows", || {
        count(&pg, "fleet", &per_host("host-a", pid)) == 3000
            && count(&pg, "fleet", &per_host("host-b", pid)) == 3000
    });

    // A restart while events flow: what was committed stays; what was
    // sent meanwhile is written after the reconnect or counted as a gap.
    let second = std::thread::scope(|s| {
        let load = s.spawn(|| {
            cg.run_json(
                &load_bin(),
                &["loop", "udp", "--iterations", "20000", "--rate", "5000"],
            )
        });
        std::thread::sleep(std::time::Duration::from_millis(1500));
        pg.restart();
        load.join().unwrap()
    });
    let pid2 = second["pid"].as_u64().unwrap();
    for host in ["host-a", "host-b"] {
        let accounted = || {
            let rows = count(&pg, "fleet", &per_host(host, pid2));
            let lost = count(
                &pg,
                "fleet",
                &format!("SELECT COALESCE(sum(lost), 0) FROM gaps WHERE host = '{host}'"),
            );
            (rows, lost)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (rows, lost) = accounted();
            if rows + lost >= 20_000 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{host}: {rows} rows + {lost} recorded as lost < 20000 events sent; rows of the pid by host: {}; sessions: {}\nlogs:\n{}",
                pg.psql("fleet", &format!("SELECT host, count(*) FROM events WHERE pid = {pid2} GROUP BY host")),
                pg.psql("fleet", "SELECT pid, state, wait_event_type, wait_event, left(query, 80) FROM pg_stat_activity WHERE datname = 'fleet'"),
                [&a, &b]
                    .iter()
                    .flat_map(|x| x.log().lines().filter(|l| l.contains("netev_s")).map(String::from).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        // nothing committed before the restart went missing
        assert_eq!(count(&pg, "fleet", &per_host(host, pid)), 3000);
    }
    a.stop();
    b.stop();
    drop(daemon);
}

#[test]
fn netevd_stores_into_postgres_and_serves_queries_from_it() {
    if !root_or_skip("netevd_stores_into_postgres_and_serves_queries_from_it") {
        return;
    }
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    let url = pg.create_database("direct");
    let bus = PrivateBus::system_like();
    let cg = TestCgroup::new("pg-direct");
    let daemon = Daemon::start(
        &cg,
        &[
            "--bus",
            bus.address(),
            "--store",
            &url,
            "--host-name",
            "direct-host",
        ],
    );
    let facts = cg.run_json(&load_bin(), &["tcp4"]);
    let pid = facts["pid"].as_u64().unwrap();
    wait_until("the connect in PostgreSQL", || {
        count(
            &pg,
            "direct",
            &format!("SELECT count(*) FROM events WHERE pid = {pid} AND op = 'connect' AND host = 'direct-host'"),
        ) == 1
    });
    // netev log over the bus reads from whichever store netevd uses
    let port = pg.psql(
        "direct",
        &format!("SELECT rport FROM events WHERE pid = {pid} AND op = 'connect'"),
    );
    let rows = netev_tests::netev_json(&[
        "--bus",
        bus.address(),
        "log",
        "--json",
        "--op",
        "connect",
        "--port",
        port.trim(),
    ]);
    assert!(
        rows.iter()
            .any(|r| r["pid"] == pid && r["host"] == "direct-host"),
        "{rows:#?}"
    );
    let status = Command::new(workspace_bin("netev"))
        .args(["--bus", bus.address(), "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("events stored in postgres://postgres@127.0.0.1"),
        "{text}"
    );
    let stopped = daemon.stop();
    assert!(stopped.success, "{}", stopped.log);
}

#[test]
fn after_kill_9_of_netev_sql_its_sqlite_file_opens_with_every_committed_batch() {
    if !root_or_skip("after_kill_9_of_netev_sql_its_sqlite_file_opens_with_every_committed_batch") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fleet.db");
    let db = db.to_str().unwrap();
    let bus = PrivateBus::system_like();
    let cg = TestCgroup::new("sql-kill");
    let daemon = Daemon::start(
        &cg,
        &["--bus", bus.address(), "--no-coalesce", "--store", "none"],
    );
    let mut sql = Sql::start(&bus, db, "h");
    netev_tests::wait_for_log(&daemon, "netev-sql subscribed", |log| {
        log.contains(" subscribed ")
    });
    let facts = cg.run_json(
        &load_bin(),
        &["loop", "udp", "--iterations", "20000", "--rate", "10000"],
    );
    let pid = facts["pid"].as_u64().unwrap();
    let rows = |db: &str| -> u64 {
        netev_tests::netev_json(&["log", "--db", db, "--json", "--limit", "1000000"])
            .iter()
            .filter(|e| e["pid"] == pid)
            .count() as u64
    };
    wait_until("some committed batches", || rows(db) > 0);
    unsafe { libc::kill(sql.0.id() as i32, libc::SIGKILL) };
    let _ = sql.0.wait();
    let committed = rows(db);
    assert!(committed > 0);
    // a new netev-sql takes the same file up again, nothing lost
    let again = Sql::start(&bus, db, "h");
    netev_tests::wait_for_log(&daemon, "the second netev-sql subscribed", |log| {
        log.lines().filter(|l| l.contains(" subscribed ")).count() >= 2
    });
    again.stop();
    assert!(rows(db) >= committed);
    drop(daemon);
}

// Issue 19's fleet test with the real daemons: two netevd (two test cgroups,
// two host names) → a 3-node JetStream cluster → netev-sql → PostgreSQL.

/// `netev status`'s counters of a running daemon, from its status file.
fn counters_of(daemon: &Daemon) -> serde_json::Value {
    let text = std::fs::read_to_string(daemon.status_path()).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .map_or(serde_json::Value::Null, |s| s["counters"].clone())
}

/// Every event the daemon produced so far has reached JetStream or was
/// counted as lost (none queued, none spooled).
fn all_exported(daemon: &Daemon) -> bool {
    let c = counters_of(daemon);
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    n("events") > 0 && n("exported") + n("export_lost") == n("events") && n("export_spooled") == 0
}

#[test]
fn two_netevds_through_a_nats_cluster_into_postgres_exactly_once() {
    if !root_or_skip("two_netevds_through_a_nats_cluster_into_postgres_exactly_once") {
        return;
    }
    let Some(mut nats) = netev_testsupport::natsserver::NatsServer::cluster_or_skip(3) else {
        return;
    };
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    let db_url = pg.create_database("natsfleet");
    let url = nats.url();
    let hosts = ["alpha.example", "beta.example"];
    let cgroups = [TestCgroup::new("nats-a"), TestCgroup::new("nats-b")];
    let daemons: Vec<Daemon> = hosts
        .iter()
        .zip(&cgroups)
        .map(|(host, cg)| {
            Daemon::start(
                cg,
                &[
                    "--no-coalesce",
                    "--store",
                    "none",
                    "--host-name",
                    host,
                    "--export",
                    &url,
                ],
            )
        })
        .collect();
    let mut sql = Command::new(workspace_bin("netev-sql"))
        .args(["--from", &url, "--log-level", "warn", &db_url])
        .stdin(Stdio::null())
        .spawn()
        .expect("netev-sql");
    let load = || {
        for cg in &cgroups {
            cg.run_json(&load_bin(), &["loop", "udp", "--iterations", "300"]);
        }
    };
    let settled = |what: &str| {
        wait_until(what, || daemons.iter().all(all_exported));
    };

    // everything up
    load();
    settled("both daemons' events in JetStream");
    // one node killed mid-stream, then back
    nats.kill(1);
    load();
    nats.restart(1);
    settled("the events of the node's absence in JetStream");
    // the whole cluster away: the daemons spool; then back
    nats.stop_all();
    load();
    wait_until("both daemons spooling", || {
        daemons
            .iter()
            .all(|d| counters_of(d)["export_spooled"].as_u64() > Some(0))
    });
    nats.restart_all();
    settled("the spools drained");

    let stopped: Vec<_> = daemons.into_iter().map(Daemon::stop).collect();
    let lost: Vec<u64> = stopped
        .iter()
        .map(|s| {
            let line = s
                .log
                .lines()
                .find(|l| l.contains("final counters"))
                .unwrap();
            let at = line.find("export_lost=").unwrap() + "export_lost=".len();
            line[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let rows_of = |host: &str| {
        count(
            &pg,
            "natsfleet",
            &format!("SELECT count(*) FROM events WHERE host = '{host}'"),
        )
    };
    let gaps_of = |host: &str| {
        count(
            &pg,
            "natsfleet",
            &format!("SELECT coalesce(sum(lost), 0) FROM gaps WHERE host = '{host}'"),
        )
    };
    for ((host, s), lost) in hosts.iter().zip(&stopped).zip(&lost) {
        let printed = s.events.len() as u64;
        assert!(printed >= 900, "{host}: {printed} events");
        // the spool (1G) held the cluster's absence: nothing had to be lost
        assert_eq!(*lost, 0, "{host}: events lost:\n{}", s.log);
        wait_until(&format!("{host}'s events in PostgreSQL"), || {
            rows_of(host) + gaps_of(host) >= printed
        });
        // exactly once: as many rows as events printed, less what was
        // counted lost, and those are the gaps
        assert_eq!(
            (rows_of(host), gaps_of(host)),
            (printed - lost, *lost),
            "{host}: rows and gaps against {printed} events printed"
        );
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(sql.id() as i32, libc::SIGTERM) };
    let st = netev_tests::wait_bounded(&mut sql, "netev-sql");
    assert!(st.success(), "netev-sql exit: {st}");
}
