//! The daemon's attack surface: answers scoped to the user who asked, limits on what a caller may send, hostile names escaped wherever shown, private files, passwords never shown, stored rules that no longer parse.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use netev_tests::OutputBounded;
use netev_tests::{
    ensure_user, log_count, root_or_skip, wait_until, workspace_bin, Daemon, PrivateBus, TestCgroup,
};
use serde_json::{json, Value};

use crate::rules::{connect, free_port, start, Setup, PYTHON};

impl Setup {
    /// Starts `netev prompt` (answers on its stdin); returns it and its
    /// output's reader.
    fn prompter(&self) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
        let mut p = Command::new(workspace_bin("netev"))
            .args(["--bus", self.bus.address(), "prompt", "--scope", "exe+port"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = BufReader::new(p.stdout.take().unwrap());
        (p, out)
    }
}

fn uid_of(user: &str) -> u32 {
    netev_host::users::uid_of(user).expect("the test user exists")
}

#[test]
fn an_answer_to_alices_prompt_does_not_let_mallory_through() {
    if !root_or_skip("an_answer_to_alices_prompt_does_not_let_mallory_through") {
        return;
    }
    ensure_user("netev-t-alice", &[]);
    ensure_user("netev-t-mallory", &[]);
    let s = start("surface-answer-scope", &[]);
    let port = free_port();
    let p = port.to_string();
    // mallory is denied first; everyone else is asked
    s.ok(&["rules", "add", "deny", "--user", "netev-t-mallory"]);
    s.ok(&["rules", "add", "ask", "--op", "connect", "--port", &p]);
    let (mut prompter, mut out) = s.prompter();
    assert_eq!(
        s.probe_with(
            PYTHON,
            Some("netev-t-alice"),
            json!([connect("127.0.0.1", port)])
        ),
        ["EPERM"],
        "asked: the fallback applies meanwhile"
    );
    wait_until("alice's prompt", || log_count(&s.daemon, "asking") >= 1);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("netev-t-alice"), "{line}");
    prompter.stdin.as_mut().unwrap().write_all(b"a").unwrap();
    let mut answer = String::new();
    out.read_line(&mut answer).unwrap();
    assert!(answer.contains("allow always (rule"), "{answer:?}");
    let rules: Vec<Value> = s
        .ok(&["rules", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let made = rules.iter().find(|r| r["action"] == "allow").unwrap();
    let alice = uid_of("netev-t-alice").to_string();
    assert!(
        made["user"] == alice.as_str() || made["user"] == "netev-t-alice",
        "the answer names the user who asked: {made}"
    );
    assert_eq!(
        s.probe_with(
            PYTHON,
            Some("netev-t-alice"),
            json!([connect("127.0.0.1", port)])
        ),
        ["ECONNREFUSED"],
        "alice is let through"
    );
    assert_eq!(
        s.probe_with(
            PYTHON,
            Some("netev-t-mallory"),
            json!([connect("127.0.0.1", port)])
        ),
        ["EPERM"],
        "mallory's deny still decides for mallory"
    );
    let _ = prompter.kill();
    let _ = prompter.wait();
}

/// A path made of what a hostile program would put in its name: an escape
/// sequence, a right-to-left override, a line separator, a newline.
const HOSTILE: &str = "ev\u{1b}[31mil\u{202e}gpj.exe\u{2028}FAKE\nconnect";

fn assert_escaped(what: &str, shown: &str) {
    for c in ['\u{1b}', '\u{202e}', '\u{2028}'] {
        assert!(!shown.contains(c), "{what} shows {c:?} raw: {shown:?}");
    }
    assert!(
        shown.contains("ev\\u{1b}[31mil\\u{202e}gpj.exe\\u{2028}FAKE\\nconnect"),
        "{what} shows the name escaped, all of it: {shown:?}"
    );
}

#[test]
fn a_hostile_program_name_is_shown_escaped_in_the_prompt_and_the_log() {
    if !root_or_skip("a_hostile_program_name_is_shown_escaped_in_the_prompt_and_the_log") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join(HOSTILE);
    std::fs::copy(PYTHON, &program).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().to_str().unwrap();
    let s = start("surface-hostile", &["--state-dir", state_arg]);
    let port = free_port();
    s.ok(&[
        "rules",
        "add",
        "ask",
        "--op",
        "connect",
        "--port",
        &port.to_string(),
    ]);
    let (mut prompter, mut out) = s.prompter();
    assert_eq!(
        s.probe_with(
            program.to_str().unwrap(),
            None,
            json!([connect("127.0.0.1", port)])
        ),
        ["EPERM"]
    );
    wait_until("the prompt", || log_count(&s.daemon, "asking") >= 1);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_escaped("netev prompt", &line);
    let _ = prompter.kill();
    let _ = prompter.wait();
    let stopped = s.daemon.stop();
    // netevd's own JSON lines: the same string, the dangerous characters
    // as \u escapes
    let printed = serde_json::to_string(&stopped.events).unwrap();
    assert!(printed.contains("gpj.exe"), "the event was printed");
    // the log, from the store
    let db = state.path().join("netev.db");
    let log = Command::new(workspace_bin("netev"))
        .args(["log", "--db", db.to_str().unwrap(), "--op", "connect"])
        .output_bounded();
    let text = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.status.success(),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    assert_escaped("netev log", &text);
    assert_eq!(text.lines().count(), 1, "one event, one line: {text:?}");
    let json = Command::new(workspace_bin("netev"))
        .args([
            "log",
            "--db",
            db.to_str().unwrap(),
            "--op",
            "connect",
            "--json",
        ])
        .output_bounded();
    let json = String::from_utf8(json.stdout).unwrap();
    for c in ['\u{1b}', '\u{202e}', '\u{2028}', '\n'] {
        assert!(
            !json.trim_end().contains(c),
            "netev log --json shows {c:?} raw"
        );
    }
    let row: Value = serde_json::from_str(json.trim_end()).unwrap();
    assert_eq!(
        row["exe"],
        program.to_str().unwrap(),
        "nothing of the name is lost"
    );
    // the database file holds every user's command lines: root's alone
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "netev.db is private");
    let mode = std::fs::metadata(state.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "the state directory is private");
}

fn sample_wire() -> netev_dbus::WireEvent {
    let mut ev = netev_event::Event::new(netev_event::Op::Connect);
    ev.raddr = Some("192.0.2.1".parse().unwrap());
    ev.rport = Some(443);
    ev.proto = Some(netev_event::Proto::TCP);
    netev_dbus::WireEvent::from(ev)
}

/// Calls netevd's `Ask` on the bus at `bus` as root with `event`.
fn ask(bus: &str, event: netev_dbus::WireEvent) -> Result<(String, String, String), String> {
    block_on(async {
        let conn = zbus::connection::Builder::address(bus)
            .build()
            .await
            .unwrap();
        let d = netev_dbus::Daemon1Proxy::new(&conn).await.unwrap();
        d.ask(&event, 1000).await.map_err(|e| e.to_string())
    })
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_20_mib_ask_is_refused_and_prompters_still_start() {
    if !root_or_skip("a_20_mib_ask_is_refused_and_prompters_still_start") {
        return;
    }
    let s = start("surface-ask-size", &[]);
    let mut ev = sample_wire();
    ev.pid = std::process::id();
    ev.exe = "x".repeat(20 << 20);
    let err = ask(s.bus.address(), ev).unwrap_err();
    assert!(
        err.contains("LimitsExceeded") && err.contains("field exe") && err.contains("4096"),
        "{err}"
    );
    // the daemon serves on: a prompter starts, and a true question reaches it
    let (mut prompter, mut out) = s.prompter();
    let mut ev = sample_wire();
    ev.pid = std::process::id();
    ev.comm = "a lie".into();
    ev.exe = "/usr/bin/not-me".into();
    let asker = {
        let bus = s.bus.address().to_string();
        std::thread::spawn(move || ask(&bus, ev))
    };
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let me = std::fs::read_link("/proc/self/exe").unwrap();
    assert!(
        line.contains(me.to_str().unwrap()) && !line.contains("/usr/bin/not-me"),
        "the prompt names the process as netevd read it, not as the asker said: {line}"
    );
    assert!(line.contains("the call is the asker's word"), "{line}");
    let answer = asker.join().unwrap();
    assert_eq!(answer, Ok(Default::default()), "nobody answered in time");
    let _ = prompter.kill();
    let _ = prompter.wait();
}

#[test]
fn no_form_of_a_database_password_is_shown() {
    if !root_or_skip("no_form_of_a_database_password_is_shown") {
        return;
    }
    // nothing listens on port 1: the store stays away, capture goes on
    for url in [
        "postgres://netev:s3cret@127.0.0.1:1/netev",
        "postgresql://netev@127.0.0.1:1/netev?password=s3cret",
        "host=127.0.0.1 port=1 user=netev password='s3cret with spaces' dbname=netev",
    ] {
        let cg = TestCgroup::new("surface-password");
        let bus = PrivateBus::system_like();
        let daemon = Daemon::start(&cg, &["--bus", bus.address(), "--store", url]);
        let status = Command::new(workspace_bin("netev"))
            .args(["--bus", bus.address(), "status", "--json"])
            .output_bounded();
        let status = String::from_utf8_lossy(&status.stdout).into_owned();
        assert!(status.contains("127.0.0.1"), "the store is named: {status}");
        let file = std::fs::read_to_string(daemon.status_path()).unwrap();
        let stopped = daemon.stop();
        for (what, text) in [
            ("GetStatus", &status),
            ("status.json", &file),
            ("netevd's log", &stopped.log),
        ] {
            assert!(
                !text.contains("s3cret"),
                "{what} shows the password of {url}: {text}"
            );
        }
    }
}

#[test]
fn a_stored_rule_that_cannot_be_parsed_stops_netevd_with_its_id() {
    if !root_or_skip("a_stored_rule_that_cannot_be_parsed_stops_netevd_with_its_id") {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().to_str().unwrap().to_string();
    let s = start("surface-bad-rule", &["--state-dir", &state_arg]);
    s.ok(&["rules", "add", "deny", "--port", "22"]);
    s.ok(&["rules", "add", "deny", "--port", "23"]);
    s.daemon.stop();
    // what a downgrade, a bug or a hand edit can leave
    let db = state.path().join("rules.db");
    let edit = Command::new(PYTHON)
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             c.execute(\"UPDATE rules SET ports = '99999' WHERE id = 2\"); c.commit()",
            db.to_str().unwrap(),
        ])
        .output_bounded();
    assert!(
        edit.status.success(),
        "{}",
        String::from_utf8_lossy(&edit.stderr)
    );
    let cg = TestCgroup::new("surface-bad-rule2");
    let mut child = Command::new(workspace_bin("netevd"))
        .args(["--foreground", "--bus", "none", "--cgroup"])
        .arg(cg.path())
        .args(["--state-dir", &state_arg, "--run-dir"])
        .arg(state.path().join("run"))
        .args(netev_tests::backend_args())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = netev_tests::wait_bounded(&mut child, "netevd refusing its rules");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        !status.success(),
        "netevd started with a rule missing: {err}"
    );
    assert!(
        err.contains("rule 2:") && err.contains("none of the rules was applied"),
        "the refusal names the rule: {err}"
    );
    assert!(!Path::new(&state.path().join("run/status.json")).exists());
}
