//! Start-up errors, status (file and `netev status`), SIGUSR1, exact counters at exit.

use std::path::Path;
use std::process::Command;

use netev_tests::OutputBounded;
use netev_tests::{root_or_skip, wait_until, workspace_bin, Daemon, TestCgroup};

use crate::load_bin;

#[test]
fn status_shows_backend_hooks_and_counters() {
    if !root_or_skip("status_shows_backend_hooks_and_counters") {
        return;
    }
    let cg = TestCgroup::new("status");
    let daemon = Daemon::start(&cg, &[]);
    cg.run_json(&load_bin(), &["tcp4"]);

    let out = Command::new(workspace_bin("netev"))
        .args(["status", "--json", "--run-dir"])
        .arg(daemon.run_dir())
        .output_bounded();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lsm = crate::on_lsm();
    assert_eq!(
        status["backend"],
        if lsm { "bpf-lsm" } else { "cgroup+tracepoints" }
    );
    assert_eq!(status["pid"], daemon.pid());
    assert_eq!(status["cgroup"], cg.path().display().to_string());
    let mode = |attach: &str| {
        status["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["attach"] == attach)
            .unwrap_or_else(|| panic!("no hook {attach} in {status}"))["mode"]
            .clone()
    };
    if lsm {
        assert_eq!(mode("lsm/socket_connect"), "enforce");
        assert_eq!(mode("lsm/socket_listen"), "enforce");
        assert_eq!(mode("lsm/inet_conn_request"), "enforce");
        assert_eq!(mode("cgroup/recvmsg4"), "observe");
    } else {
        assert_eq!(mode("cgroup/connect4"), "enforce");
        assert_eq!(mode("cgroup/bind6"), "enforce");
        assert_eq!(mode("syscalls/sys_exit_listen"), "observe");
        assert_eq!(mode("syscalls/sys_exit_accept4"), "observe");
    }
    assert!(
        status["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("backend: ")),
        "which backend and why: {status}"
    );
    assert!(status["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().starts_with("bpf-lsm:")));

    let text = Command::new(workspace_bin("netev"))
        .args(["status", "--run-dir"])
        .arg(daemon.run_dir())
        .output_bounded();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(if lsm {
            "backend:   bpf-lsm"
        } else {
            "backend:   cgroup+tracepoints"
        }),
        "{text}"
    );
    assert!(text.contains("dropped"), "{text}");

    daemon.signal(libc::SIGUSR1);
    let got = {
        // SIGUSR1's report shows up in the log before we stop the daemon.
        wait_until("counters after SIGUSR1", || {
            daemon
                .log()
                .lines()
                .any(|l| l.contains(" counters ") || l.ends_with(" counters"))
        });
        daemon.stop()
    };
    assert!(got.success, "clean exit");
    let (seen, delivered, dropped) = got.final_counters();
    assert_eq!(dropped, 0);
    assert_eq!(
        seen, delivered,
        "after the final drain every record is accounted for"
    );
    assert!(seen >= 6);
}

#[test]
fn status_when_not_running_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(workspace_bin("netev"))
        .args(["status", "--run-dir"])
        .arg(dir.path())
        .output_bounded();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("netevd is not running"));
}

#[test]
fn a_directory_that_is_not_a_cgroup_is_refused_clearly() {
    if !root_or_skip("a_directory_that_is_not_a_cgroup_is_refused_clearly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let out = Command::new(workspace_bin("netevd"))
        .args(["--foreground", "--bus", "none", "--cgroup"])
        .arg(dir.path())
        .arg("--run-dir")
        .arg(run.path())
        .output_bounded();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a cgroup v2 directory"), "{err}");
}

#[test]
fn text_output_is_one_line_per_event() {
    if !root_or_skip("text_output_is_one_line_per_event") {
        return;
    }
    let cg = TestCgroup::new("text");
    let run = tempfile::tempdir().unwrap();
    let child = Command::new(workspace_bin("netevd"))
        .args([
            "--foreground",
            "--bus",
            "none",
            "--print",
            "text",
            "--cgroup",
        ])
        .arg(cg.path())
        .args(netev_tests::backend_args())
        .arg("--run-dir")
        .arg(run.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("netevd to start", || {
        run.path().join("status.json").exists()
    });
    let facts = cg.run_json(&load_bin(), &["tcp4"]);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    let port = facts["server_port"].as_u64().unwrap();
    assert!(
        lines[4].contains(" connect allow ") && lines[4].contains(&format!("-> 127.0.0.1:{port}")),
        "{}",
        lines[4]
    );
    let listen = if crate::on_lsm() {
        " listen  allow "
    } else {
        " listen  observe "
    };
    assert!(
        lines[2].contains(listen) && lines[2].contains("ret=0"),
        "{}",
        lines[2]
    );
}

/// Without --foreground netevd forks once attached: the parent exits 0 and
/// says the pid, or exits 1 with the child's reason.
#[test]
fn daemonizes_once_attached_and_reports_start_failures() {
    if !root_or_skip("daemonizes_once_attached_and_reports_start_failures") {
        return;
    }
    let cg = TestCgroup::new("daemonize");
    let run = tempfile::tempdir().unwrap();
    let out = Command::new(workspace_bin("netevd"))
        .args(["--bus", "none", "--cgroup"])
        .arg(cg.path())
        .args(netev_tests::backend_args())
        .arg("--run-dir")
        .arg(run.path())
        .stderr(std::process::Stdio::null())
        .output_bounded();
    assert!(out.status.success(), "parent exit: {}", out.status);
    let said = String::from_utf8_lossy(&out.stdout);
    let pid: i32 = said
        .trim()
        .strip_prefix("netevd running as pid ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {said:?}"));
    // Attached before the parent returned: the status file follows within a poll.
    wait_until("the daemon's status file", || {
        run.path().join("status.json").exists()
    });
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_until("the daemon to stop", || unsafe { libc::kill(pid, 0) } != 0);
    assert!(
        !run.path().join("status.json").exists(),
        "status file removed at exit"
    );

    // A start that fails in the child is reported by the parent.
    let not_cgroup = tempfile::tempdir().unwrap();
    let out = Command::new(workspace_bin("netevd"))
        .args(["--bus", "none", "--cgroup"])
        .arg(not_cgroup.path())
        .arg("--run-dir")
        .arg(run.path())
        .output_bounded();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a cgroup v2 directory"));
}

/// The programs attached to the test cgroup's connect4 hook, by id.
/// Our programs on one of the cgroup's hooks: connect4 on the cgroup
/// backend; on LSM (whose own hooks are machine-wide, scoped by a map) the
/// recvmsg4 hook it attaches there too. Pinned and taken over as one set with
/// the rest, it tells a replaced set from a doubled one.
fn connect4_programs(cg: &TestCgroup) -> Vec<u32> {
    let hook = if crate::on_lsm() {
        "cgroup/recvmsg4"
    } else {
        "cgroup/connect4"
    };
    netev_bpf::cgroup::attached_programs(cg.path(), hook).expect("querying")
}

#[test]
fn a_killed_daemon_keeps_enforcing_and_its_successor_replaces_it_leaving_one_set() {
    if !root_or_skip(
        "a_killed_daemon_keeps_enforcing_and_its_successor_replaces_it_leaving_one_set",
    ) {
        return;
    }
    use crate::rules::{connect, free_port};
    let cg = TestCgroup::new("crash-restart");
    let dir = tempfile::tempdir().unwrap();
    let (port, state) = (free_port(), dir.path().join("state"));
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!("[[rule]]\naction = \"deny\"\nops = \"connect\"\naddr = \"127.0.0.1\"\nports = {port}\n"),
    )
    .unwrap();
    let probe = || -> Vec<String> {
        crate::rules::probe_in(&cg, &serde_json::json!([connect("127.0.0.1", port)]))
    };
    // a pin dir of its own: `netev status` reports every cgroup's pins in
    // it, and other tests' daemons pin under the default one meanwhile
    let pins = PinDir(std::path::PathBuf::from(format!(
        "/sys/fs/bpf/netev-test-crash-{}",
        std::process::id()
    )));
    let pin_dir = pins.0.to_str().unwrap();
    let args = [
        "--state-dir",
        state.to_str().unwrap(),
        "--rules-file",
        rules.to_str().unwrap(),
        "--pin-dir",
        pin_dir,
    ];
    let mut first = Daemon::start(&cg, &args);
    let first_ids = connect4_programs(&cg);
    assert_eq!(first_ids.len(), 1, "one netevd, one program per hook");
    assert_eq!(probe(), ["EPERM"]);

    first.crash();
    let run_dir = first.run_dir().to_path_buf();
    assert_eq!(connect4_programs(&cg), first_ids, "still attached, pinned");
    assert_eq!(probe(), ["EPERM"], "the rules are still enforced");
    let out = Command::new(workspace_bin("netev"))
        .args(["status", "--pin-dir", pin_dir, "--run-dir"])
        .arg(&run_dir)
        .output_bounded();
    assert_eq!(out.status.code(), Some(3), "not running");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("enforcement: active without netevd"),
        "{said}"
    );
    let out = Command::new(workspace_bin("netev"))
        .args(["status", "--json", "--pin-dir", pin_dir, "--run-dir"])
        .arg(&run_dir)
        .output_bounded();
    assert_eq!(out.status.code(), Some(3), "not running");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["running"], false);
    assert_eq!(json["enforcement"]["state"], "active", "{json}");
    let pinned = json["enforcement"]["pinned"].as_array().unwrap();
    assert_eq!(pinned.len(), 1, "{json}");
    assert!(pinned[0]["programs"].as_u64().unwrap() > 0, "{json}");

    let second = Daemon::start(&cg, &args);
    let second_ids = connect4_programs(&cg);
    assert_eq!(second_ids.len(), 1, "the old set was replaced, not doubled");
    assert_ne!(second_ids, first_ids);
    assert!(second
        .log()
        .contains("took over from a netevd that did not stop cleanly"));
    assert_eq!(probe(), ["EPERM"]);

    // a clean stop detaches everything and leaves no pins
    let run_dir = second.run_dir().to_path_buf();
    assert!(second.stop().success);
    drop(first);
    assert_eq!(connect4_programs(&cg), Vec::<u32>::new());
    assert_eq!(probe(), ["ECONNREFUSED"]);
    let out = Command::new(workspace_bin("netev"))
        .args(["status", "--pin-dir", pin_dir, "--run-dir"])
        .arg(&run_dir)
        .output_bounded();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("enforcement: none"), "{said}");
    let out = Command::new(workspace_bin("netev"))
        .args(["status", "--json", "--pin-dir", pin_dir, "--run-dir"])
        .arg(&run_dir)
        .output_bounded();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["enforcement"]["state"], "none", "{json}");
    assert_eq!(json["enforcement"]["pinned"], serde_json::json!([]));
}

/// A test's own pin directory, removed with whatever is left in it.
struct PinDir(std::path::PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The capabilities the shipped unit gives netevd
/// (`CapabilityBoundingSet=` in dist/systemd/netevd.service), as setpriv's
/// `--bounding-set` argument.
/// kernel.perf_event_paranoid (Debian's kernels: 3, which restricts
/// tracepoints to CAP_SYS_ADMIN).
fn perf_event_paranoid() -> i32 {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(2)
}

/// How the test confines netevd as dist/systemd/netevd.service does, where
/// no systemd runs: setpriv for the unit's capability bounding set and
/// NoNewPrivileges=, then tests/e2e/unit_sandbox.py for its
/// SystemCallFilter=, SystemCallErrorNumber=, RestrictAddressFamilies= and
/// UMask= (read from the unit). The command to run follows.
fn unit_confinement() -> Vec<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    vec![
        "setpriv".into(),
        "--bounding-set".into(),
        unit_capabilities(),
        "--inh-caps".into(),
        "-all".into(),
        "--no-new-privs".into(),
        repo.join("tests/e2e/unit_sandbox.py").display().to_string(),
        repo.join("dist/systemd/netevd.service")
            .display()
            .to_string(),
        "--".into(),
    ]
}

fn unit_capabilities() -> String {
    let unit = include_str!("../../dist/systemd/netevd.service");
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    format!("-all,{}", caps.join(","))
}

#[test]
fn netevd_confined_as_the_unit_confines_it_captures_names_and_enforces() {
    if !root_or_skip("netevd_confined_as_the_unit_confines_it_captures_names_and_enforces") {
        return;
    }
    use crate::rules::{connect, free_port, PROBE};
    use std::os::unix::fs::PermissionsExt;
    if !crate::on_lsm() && perf_event_paranoid() >= 3 {
        // Debian's kernels: syscall tracepoints need CAP_SYS_ADMIN, which
        // the unit does not grant; the cgroup backend must say so (the LSM
        // backend, which auto picks there, needs none)
        let cg = TestCgroup::new("unit-caps-paranoid");
        let dir = tempfile::tempdir().unwrap();
        let confine = unit_confinement();
        let out = Command::new(&confine[0])
            .args(&confine[1..])
            .arg(workspace_bin("netevd"))
            .args([
                "--foreground",
                "--bus",
                "none",
                "--backend",
                "cgroup",
                "--cgroup",
            ])
            .arg(cg.path())
            .arg("--run-dir")
            .arg(dir.path())
            .arg("--state-dir")
            .arg(dir.path())
            .output_bounded();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("kernel.perf_event_paranoid is 3")
                && err.contains("--backend auto or lsm"),
            "{err}"
        );
        return;
    }
    netev_tests::ensure_user("netev-capuser", &[]);
    // a program in a directory only its owner may enter: naming it in a
    // rule takes CAP_DAC_READ_SEARCH, naming its process CAP_SYS_PTRACE
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let private = home.path().join("private");
    std::fs::create_dir(&private).unwrap();
    let python = private.join("python");
    let early_python = private.join("python-early");
    for copy in [&python, &early_python] {
        std::fs::copy(std::fs::canonicalize("/usr/bin/python3").unwrap(), copy).unwrap();
    }
    let chown = Command::new("chown")
        .args(["-R", "netev-capuser"])
        .arg(&private)
        .status()
        .unwrap();
    assert!(chown.success());
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();

    let port = free_port();
    let rules = home.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[rule]]\naction = \"deny\"\nops = \"connect\"\nexe = \"{}\"\nports = {port}\n",
            python.display()
        ),
    )
    .unwrap();
    let cg = TestCgroup::new("unit-caps");
    // a process of that user that was running before netevd started, from
    // an executable no exec record names: only /proc/PID/exe names it,
    // which takes CAP_SYS_PTRACE for another user's process
    let go = private.join("go");
    let early = format!(
        "import os, socket, time\nwhile not os.path.exists({go:?}): time.sleep(0.02)\n\
         s = socket.socket()\ntry: s.connect(('127.0.0.1', {}))\nexcept OSError: pass\n\
         open({go:?} + '.done', 'w').close()\ntime.sleep(3600)\n",
        port + 2,
        go = go.display().to_string()
    );
    let mut early = cg
        .command("runuser")
        .args(["-u", "netev-capuser", "--"])
        .arg(&early_python)
        .args(["-c", &early])
        .spawn()
        .unwrap();
    let confine = unit_confinement();
    let confine: Vec<&str> = confine.iter().map(String::as_str).collect();
    let daemon = Daemon::start_wrapped(&cg, &["--rules-file", rules.to_str().unwrap()], &confine);
    let state = daemon.run_dir().join("state");
    let ops = serde_json::json!([connect("127.0.0.1", port), connect("127.0.0.1", port + 1)]);
    let out = cg
        .command("runuser")
        .args(["-u", "netev-capuser", "--"])
        .arg(&python)
        .args(["-c", PROBE, &ops.to_string()])
        .output_bounded();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, ["EPERM", "ECONNREFUSED"], "the exe rule is enforced");
    std::fs::write(&go, "").unwrap();
    let done = private.join("go.done");
    wait_until("the early process's connect", || done.exists());
    // netevd's files, under the unit's umask (the run directory goes with
    // the daemon)
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700, "the state directory is root's alone");
    assert_eq!(mode(&state.join("rules.db")), 0o600);
    assert_eq!(mode(&state.join("netev.db")), 0o600);
    // it stays (until killed) so that netevd finds /proc/PID/exe
    let stopped = daemon.stop();
    let _ = early.kill();
    let _ = early.wait();
    assert!(stopped.success, "{}", stopped.log);
    assert!(
        stopped.log.contains("syscalls allowed"),
        "netevd ran under the unit's syscall filter: {}",
        stopped.log
    );

    let connects = |exe: &Path| -> Vec<&serde_json::Value> {
        stopped
            .events
            .iter()
            .filter(|e| e["op"] == "connect" && e["exe"] == exe.display().to_string())
            .collect()
    };
    assert_eq!(connects(&early_python).len(), 1, "{:?}", stopped.events);
    let connects = connects(&python);
    assert_eq!(connects.len(), 2, "{:?}", stopped.events);
    assert_eq!(connects[0]["verdict"], "deny");
    assert_eq!(connects[0]["user"], "netev-capuser");
}
