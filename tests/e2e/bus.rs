//! The D-Bus connector on a real dbus-daemon: batches, filters, access control, introspection, slow clients.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use netev_tests::OutputBounded;
use netev_tests::{
    ensure_group, ensure_user, log_count, root_or_skip, wait_bounded, wait_for_log, workspace_bin,
    Daemon, PrivateBus, PublicBin, TestCgroup,
};
use serde_json::Value;

use crate::load_bin;

/// `netev monitor --json` on a bus, its output collected.
struct Monitor {
    child: Child,
    lines: Option<JoinHandle<Vec<String>>>,
}

impl Monitor {
    fn start(bus: &PrivateBus, filter: &[&str]) -> Monitor {
        let mut child = Command::new(workspace_bin("netev"))
            .args(["--bus", bus.address(), "monitor", "--json"])
            .args(filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("netev monitor");
        let out = child.stdout.take().unwrap();
        let lines =
            std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).collect());
        Monitor {
            child,
            lines: Some(lines),
        }
    }

    /// Every event it printed, once it has exited.
    fn events(mut self) -> Vec<Value> {
        wait_bounded(&mut self.child, "netev monitor");
        self.lines
            .take()
            .unwrap()
            .join()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(name: &str, bus: &PrivateBus) -> (TestCgroup, Daemon) {
    let cg = TestCgroup::new(name);
    let daemon = Daemon::start(&cg, &["--bus", bus.address()]);
    (cg, daemon)
}

fn wait_subscribers(daemon: &Daemon, n: usize) {
    wait_for_log(daemon, &format!("{n} subscriber(s)"), |log| {
        log.lines().filter(|l| l.contains(" subscribed ")).count() >= n
    });
}

#[test]
fn monitor_receives_the_workloads_events_as_netevd_prints_them() {
    if !root_or_skip("monitor_receives_the_workloads_events_as_netevd_prints_them") {
        return;
    }
    let bus = PrivateBus::system_like();
    let (cg, daemon) = start("bus-monitor", &bus);
    let monitor = Monitor::start(&bus, &[]);
    wait_subscribers(&daemon, 1);
    let facts = cg.run_json(&load_bin(), &["tcp4"]);
    // Stopping the daemon flushes the last batch before it leaves the bus;
    // the monitor then exits, having printed everything.
    let printed = daemon.stop();
    let received = monitor.events();
    let mine = |evs: &[Value]| -> Vec<Value> {
        evs.iter()
            .filter(|e| e["pid"] == facts["pid"])
            .cloned()
            .collect()
    };
    let want = mine(&printed.events);
    assert_eq!(want.len(), 6);
    assert_eq!(
        mine(&received),
        want,
        "monitor --json prints what netevd --print json prints"
    );
}

#[test]
fn filters_deliver_only_what_was_asked() {
    if !root_or_skip("filters_deliver_only_what_was_asked") {
        return;
    }
    let bus = PrivateBus::system_like();
    let (cg, daemon) = start("bus-filter", &bus);
    let connects = Monitor::start(&bus, &["--op", "connect"]);
    let server_side = Monitor::start(&bus, &["--op", "listen", "--op", "accept"]);
    let nobody = Monitor::start(&bus, &["--pid", "1"]);
    wait_subscribers(&daemon, 3);
    let facts = cg.run_json(&load_bin(), &["tcp4"]);
    let _ = daemon.stop();

    let ops = |evs: Vec<Value>| -> Vec<String> {
        evs.iter()
            .filter(|e| e["pid"] == facts["pid"])
            .map(|e| e["op"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ops(connects.events()), ["connect"]);
    assert_eq!(ops(server_side.events()), ["listen", "accept"]);
    assert!(
        nobody.events().is_empty(),
        "a pid filter for pid 1 received events"
    );
}

/// Runs `netev monitor` as a user outside the netev group; asserts the
/// access-denied exit status and returns what it printed.
fn outsider_is_refused(netev: &PublicBin, bus: &PrivateBus) -> String {
    let out = netev
        .as_user("netev-t-outsider")
        .args(["--bus", bus.address(), "monitor"])
        .output_bounded();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(77), "{err}");
    err
}

#[test]
fn outsiders_are_refused_and_members_accepted() {
    if !root_or_skip("outsiders_are_refused_and_members_accepted") {
        return;
    }
    ensure_group("netev");
    ensure_user("netev-t-outsider", &[]);
    ensure_user("netev-t-member", &["netev"]);
    let netev = PublicBin::copy("netev");
    let bus = PrivateBus::system_like();
    let (_cg, daemon) = start("bus-access", &bus);

    // Refused by the bus policy before the daemon is even asked.
    let err = outsider_is_refused(&netev, &bus);
    assert!(err.contains("access denied"), "{err}");

    // Status is for everyone.
    let out = netev
        .as_user("netev-t-outsider")
        .args(["--bus", bus.address(), "status"])
        .output_bounded();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("cgroup+tracepoints"));

    // A member subscribes.
    let mut member = netev
        .as_user("netev-t-member")
        .args(["--bus", bus.address(), "monitor"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_subscribers(&daemon, 1);
    assert_eq!(
        member.try_wait().unwrap(),
        None,
        "the member's monitor is running"
    );
    let _ = member.kill();
    let _ = member.wait();
}

#[test]
fn the_daemon_checks_callers_itself_even_where_the_bus_lets_them_through() {
    if !root_or_skip("the_daemon_checks_callers_itself") {
        return;
    }
    ensure_group("netev");
    ensure_user("netev-t-outsider", &[]);
    let netev = PublicBin::copy("netev");
    let bus = PrivateBus::permissive();
    let (_cg, daemon) = start("bus-own-check", &bus);
    let err = outsider_is_refused(&netev, &bus);
    assert!(
        err.contains("needs root or membership of the group 'netev'")
            && err.contains("usermod -aG netev"),
        "the refusal names what is missing and how to fix it: {err}"
    );
    assert_eq!(log_count(&daemon, " subscribed "), 0);
}

#[test]
fn introspection_matches_the_checked_in_xml() {
    if !root_or_skip("introspection_matches_the_checked_in_xml") {
        return;
    }
    let bus = PrivateBus::system_like();
    let (_cg, _daemon) = start("bus-introspect", &bus);
    let live = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let conn = zbus::connection::Builder::address(bus.address())
                .build()
                .await
                .unwrap();
            zbus::fdo::IntrospectableProxy::builder(&conn)
                .destination("org.netev.Daemon1")
                .path("/org/netev/Daemon1")
                .build()
                .await
                .unwrap()
                .introspect()
                .await
                .unwrap()
        });
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let docs = std::fs::read_to_string(repo.join("dist/dbus/org.netev.Daemon1.xml")).unwrap();
    let iface = |xml: &str| -> String {
        let start = xml
            .find(r#"<interface name="org.netev.Daemon1">"#)
            .expect("interface in XML");
        let end = xml[start..].find("</interface>").unwrap() + start;
        xml[start..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        iface(&docs),
        iface(&live),
        "dist/dbus/org.netev.Daemon1.xml is out of date; live introspection:\n{live}"
    );
}

#[test]
fn the_daemon_outlives_a_client_killed_mid_stream() {
    if !root_or_skip("the_daemon_outlives_a_client_killed_mid_stream") {
        return;
    }
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sink.local_addr().unwrap().to_string();
    let bus = PrivateBus::system_like();
    let cg = TestCgroup::new("bus-kill");
    let daemon = Daemon::start(&cg, &["--bus", bus.address(), "--no-coalesce"]);
    let mut doomed = Monitor::start(&bus, &[]);
    wait_subscribers(&daemon, 1);
    let mut load = cg
        .command(load_bin())
        .args(["sendto", &addr, "30000"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // kill -9 while batches are flowing
    std::thread::sleep(std::time::Duration::from_millis(100));
    doomed.child.kill().unwrap();
    let _ = doomed.child.wait();
    wait_bounded(&mut load, "the sendto workload");
    wait_for_log(&daemon, "the subscriber's departure", |log| {
        log.contains("subscriber left")
    });

    let after = Monitor::start(&bus, &["--op", "connect"]);
    wait_subscribers(&daemon, 2);
    let facts = cg.run_json(&load_bin(), &["tcp4"]);
    let got = daemon.stop();
    assert!(got.success, "netevd exited cleanly");
    let connects: Vec<Value> = after
        .events()
        .into_iter()
        .filter(|e| e["pid"] == facts["pid"])
        .collect();
    assert_eq!(
        connects.len(),
        1,
        "a new subscriber is served after the killed one"
    );
}

#[test]
fn a_stopped_client_costs_other_subscribers_nothing() {
    if !root_or_skip("a_stopped_client_costs_other_subscribers_nothing") {
        return;
    }
    const SENDS: u64 = 30_000;
    // 30 000 events are ~8 MB of signals; dbus-daemon here holds at most
    // 2 MB per sender. Without per-subscriber flow control the stopped
    // client would fill that and dbus-daemon would stop reading netevd.
    let bus = PrivateBus::system_like_with_limit(2_000_000);
    let cg = TestCgroup::new("bus-slow");
    // No event store: what is measured is the bus, not a debug-built SQLite
    // writer competing with the debug-built healthy client for two vCPUs.
    let daemon = Daemon::start(
        &cg,
        &["--bus", bus.address(), "--no-coalesce", "--store", "none"],
    );
    let stalled = Monitor::start(&bus, &["--op", "sendmsg"]);
    let healthy = Monitor::start(&bus, &["--op", "sendmsg"]);
    wait_subscribers(&daemon, 2);
    // SIGSTOP: it never reads its socket again.
    unsafe { libc::kill(stalled.child.id() as i32, libc::SIGSTOP) };

    // Paced, so that what is measured is the stopped client's effect, not
    // whether this debug-built healthy client keeps up with a burst.
    let facts = cg.run_json(
        &load_bin(),
        &[
            "loop",
            "udp",
            "--iterations",
            &SENDS.to_string(),
            "--rate",
            "20000",
        ],
    );
    let status = Command::new(workspace_bin("netev"))
        .args(["--bus", bus.address(), "status", "--json"])
        .output_bounded();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let rss_kb = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid()))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap();
    let _ = daemon.stop();
    unsafe { libc::kill(stalled.child.id() as i32, libc::SIGCONT) };

    let got = healthy
        .events()
        .into_iter()
        .filter(|e| e["pid"] == facts["pid"])
        .count() as u64;
    assert_eq!(got, SENDS, "the healthy subscriber got every event");
    assert_eq!(status["counters"]["bus_dropped"], 0, "{status}");
    // docs/dbus.md states the bound: the queue and batches, far below this.
    assert!(rss_kb < 200 * 1024, "netevd peak RSS {rss_kb} KiB");
}

#[test]
fn clear_errors_when_the_daemon_is_not_on_the_bus() {
    if !root_or_skip("clear_errors_when_the_daemon_is_not_on_the_bus") {
        return;
    }
    let bus = PrivateBus::system_like();
    for cmd in [&["status"][..], &["monitor"][..]] {
        let out = Command::new(workspace_bin("netev"))
            .args(["--bus", bus.address()])
            .args(cmd)
            .output_bounded();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{cmd:?}: {err}");
        assert!(err.contains("netevd is not running"), "{err}");
    }
    let out = Command::new(workspace_bin("netev"))
        .args(["--bus", "unix:path=/nonexistent/bus", "status"])
        .output_bounded();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to the bus at"));
}
