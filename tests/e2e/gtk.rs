//! netev-gtk end to end: an `ask` becomes a desktop notification (dunst on Xvfb, a private session bus), Deny chosen in dunst makes the next attempt fail with EPERM, and the rule shows in the console.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netev_tests::{
    root_or_skip, wait_until, workspace_bin, Daemon, OutputBounded, PrivateBus, TestCgroup,
};
use serde_json::Value;

/// A spawned helper, stopped (SIGTERM, then SIGKILL) when dropped, on every
/// exit path of the test.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e} (run scripts/setup.sh)"));
        Proc { name, child }
    }

    /// The first line the process prints (its display or bus address).
    fn first_line(&mut self) -> String {
        let out = self.child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{} printed nothing within 30 s", self.name));
        assert!(
            !line.trim().is_empty(),
            "{} printed an empty line",
            self.name
        );
        line.trim().to_string()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A desktop of our own: Xvfb, a session bus, dunst.
struct Desktop {
    dir: tempfile::TempDir,
    display: String,
    session: String,
    // dropped in reverse order of start
    _dunst: Proc,
    _bus: Proc,
    _x: Proc,
}

impl Desktop {
    fn start() -> Desktop {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        // other users' programs reach the session bus and write their state here
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let mut x = Proc::spawn(
            "Xvfb",
            Command::new("Xvfb")
                .args([
                    "-displayfd",
                    "1",
                    "-screen",
                    "0",
                    "1280x860x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let display = format!(":{}", x.first_line());
        let conf = dir.path().join("session.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>"#,
                dir.path().join("session").display()
            ),
        )
        .unwrap();
        let mut bus = Proc::spawn(
            "the session bus",
            Command::new("dbus-daemon")
                .arg(format!("--config-file={}", conf.display()))
                .args(["--nofork", "--print-address=1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let session = bus.first_line();
        // dunst's context menu runs "dmenu": this one records what it was
        // offered and picks the line named in the file `pick`
        let dmenu = dir.path().join("dmenu");
        std::fs::write(
            &dmenu,
            format!(
                "#!/bin/sh\ncat > {d}/offered.tmp && mv {d}/offered.tmp {d}/offered\ngrep -m1 -- \"$(cat {d}/pick)\" {d}/offered\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&dmenu, std::fs::Permissions::from_mode(0o755)).unwrap();
        let rc = dir.path().join("dunstrc");
        std::fs::write(
            &rc,
            format!(
                "[global]\n    dmenu = {}\n    markup = full\n[urgency_critical]\n    timeout = 0\n",
                dmenu.display()
            ),
        )
        .unwrap();
        let dunst = Proc::spawn(
            "dunst",
            Command::new("dunst")
                .arg("-config")
                .arg(&rc)
                .env("DISPLAY", &display)
                .env("DBUS_SESSION_BUS_ADDRESS", &session)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let d = Desktop {
            dir,
            display,
            session,
            _dunst: dunst,
            _bus: bus,
            _x: x,
        };
        wait_until("dunst on the session bus", || d.dunstctl(&["is-paused"]).0);
        d
    }

    fn dunstctl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("dunstctl")
            .args(args)
            .env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.session)
            .output_bounded();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    }

    fn displayed(&self) -> u32 {
        self.dunstctl(&["count", "displayed"])
            .1
            .parse()
            .unwrap_or(0)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts netev-gtk on this desktop (without a tray: the console
    /// opens), for netevd on `bus`, writing what it shows to `state`.
    fn netev_gtk(&self, mut cmd: Command, bus: &str, state: &Path) -> Proc {
        Proc::spawn(
            "netev-gtk",
            cmd.args(["--bus", bus, "--no-tray", "--state-file"])
                .arg(state)
                .env("DISPLAY", &self.display)
                .env("DBUS_SESSION_BUS_ADDRESS", &self.session)
                .env("GSK_RENDERER", "cairo")
                .env("NO_AT_BRIDGE", "1")
                .env("GTK_A11Y", "none")
                .stdout(Stdio::null()),
        )
    }
}

/// What netev-gtk shows, from its --state-file.
fn shown(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// Connects from the test cgroup; "ok", or the errno name.
fn attempt(cg: &TestCgroup, port: u16) -> String {
    let out = cg
        .command("/usr/bin/python3")
        .args([
            "-c",
            "import errno, socket, sys\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', int(sys.argv[1]))); print('ok')\nexcept OSError as e:\n    print(errno.errorcode.get(e.errno, str(e.errno)))",
            &port.to_string(),
        ])
        .output_bounded();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// True if Xvfb, dunst and dbus-daemon are installed; otherwise skipped
/// with a printed reason (a failure under `CI=true`).
fn desktop_tools_or_skip(name: &str) -> bool {
    let missing: Vec<&str> = ["Xvfb", "dunst", "dunstctl", "dbus-daemon"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{name} needs {} (run scripts/setup.sh)", missing.join(", "));
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{why}; under CI=true a skip is a failure"
    );
    eprintln!("SKIP {why}");
    false
}

#[test]
fn deny_chosen_in_a_notification_refuses_the_next_attempt_and_the_console_shows_the_rule() {
    let name =
        "deny_chosen_in_a_notification_refuses_the_next_attempt_and_the_console_shows_the_rule";
    if !root_or_skip(name) {
        return;
    }
    if !desktop_tools_or_skip(name) {
        return;
    }
    let desk = Desktop::start();
    let sys = PrivateBus::system_like();
    let cg = TestCgroup::new("gtk");
    let daemon = Daemon::start(&cg, &["--bus", sys.address()]);
    let netev = |args: &[&str]| netev_on(sys.address(), args);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // asking lets the call through meanwhile: then only the answer can refuse it
    netev(&["rules", "default", "ask-fallback", "allow"]);
    netev(&[
        "rules",
        "add",
        "ask",
        "--op",
        "connect",
        "--port",
        &port.to_string(),
    ]);

    let state = desk.path("gtk.json");
    let _gtk = desk.netev_gtk(
        Command::new(workspace_bin("netev-gtk")),
        sys.address(),
        &state,
    );
    wait_until("netev-gtk to reach netevd", || {
        shown(&state)["running"] == true
    });

    assert_eq!(attempt(&cg, port), "ECONNREFUSED", "allowed while asking");
    wait_until("the prompt's notification", || {
        desk.displayed() >= 1 && shown(&state)["prompts"][0]["notification"].is_u64()
    });
    let s = shown(&state);
    let text = s["prompts"][0]["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("python3") && text.contains(&format!("connect tcp 127.0.0.1:{port}")),
        "{text}"
    );
    assert_eq!(s["console_open"], true, "without a tray the console opens");

    // Deny, picked in dunst's context menu
    std::fs::write(desk.path("pick"), "Deny").unwrap();
    assert!(desk.dunstctl(&["context"]).0);
    // dunst runs its menu after answering dunstctl
    wait_until("dunst's context menu", || desk.path("offered").exists());
    let offered = std::fs::read_to_string(desk.path("offered")).unwrap_or_default();
    for action in ["Allow", "Deny", "Process"] {
        assert!(offered.contains(action), "dunst offered {offered:?}");
    }
    wait_until("the answer's rule in netevd", || {
        netev(&["rules", "list", "--json"]).lines().count() == 2
    });
    let rules: Vec<Value> = netev(&["rules", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rules[1]["action"], "deny");
    assert_eq!(rules[1]["ops"], serde_json::json!(["connect"]));
    assert_eq!(rules[1]["ports"], port.to_string());
    assert!(
        rules[1]["exe"]
            .as_str()
            .unwrap()
            .starts_with("/usr/bin/python3"),
        "{}",
        rules[1]
    );

    assert_eq!(
        attempt(&cg, port),
        "EPERM",
        "the answer decides the next attempt"
    );

    let id = rules[1]["id"].as_u64().unwrap();
    let in_console = |s: &Value| {
        s["rules"].as_array().is_some_and(|r| {
            r.iter().any(|r| {
                r["id"] == id
                    && r["action"] == "deny"
                    && r["exe"]
                        .as_str()
                        .is_some_and(|e| e.starts_with("/usr/bin/python3"))
                    && r["dest"] == format!("127.0.0.1/32:{port}")
            })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = shown(&state);
        if in_console(&s) && s["prompts"].as_array().is_some_and(|p| p.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "waited 60 s in vain for rule {id} in the console and the prompt gone; netev-gtk shows {s:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_until("the notification closed", || desk.displayed() == 0);
    daemon.stop();
}

/// Waits until netev-gtk's banner says `headline`; returns what it shows.
fn wait_headline(state: &Path, what: &str, pred: impl Fn(&str) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = shown(state);
        if s["state"].as_str().is_some_and(&pred) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "waited 60 s in vain for netev-gtk to say {what}; it shows {s:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn netev_gtk_says_access_denied_with_the_fix_and_follows_netevd_stopping_and_coming_back() {
    let name =
        "netev_gtk_says_access_denied_with_the_fix_and_follows_netevd_stopping_and_coming_back";
    if !root_or_skip(name) || !desktop_tools_or_skip(name) {
        return;
    }
    let desk = Desktop::start();
    let sys = PrivateBus::system_like();
    let cg = TestCgroup::new("gtk-states");
    let daemon = Daemon::start(&cg, &["--bus", sys.address()]);

    // a user outside the netev group
    netev_tests::ensure_user("netev-t-outsider", &[]);
    let bin = netev_tests::PublicBin::copy("netev-gtk");
    let state = desk.path("outsider.json");
    let outsider = desk.netev_gtk(bin.as_user("netev-t-outsider"), sys.address(), &state);
    let s = wait_headline(&state, "access denied", |h| h == "Access to netevd denied");
    let advice = s["advice"].as_str().unwrap_or_default();
    assert!(
        advice.contains("netev-t-outsider"),
        "the message names the user: {advice}"
    );
    assert!(
        advice.contains("usermod -aG netev"),
        "says how to fix it: {advice}"
    );
    assert_eq!(s["icon"], "network-error");
    drop(outsider);

    // root: running, then netevd stops, then a new netevd comes up
    let state = desk.path("root.json");
    let _gtk = desk.netev_gtk(
        Command::new(workspace_bin("netev-gtk")),
        sys.address(),
        &state,
    );
    let s = wait_headline(&state, "running", |h| h.ends_with("is running"));
    assert_eq!(s["icon"], "security-high");
    daemon.stop();
    let s = wait_headline(&state, "not running", |h| h == "netevd is not running");
    assert!(s["advice"].as_str().unwrap().contains("sudo netevd"), "{s}");
    let daemon = Daemon::start(&cg, &["--bus", sys.address()]);
    wait_headline(&state, "running again", |h| {
        h.ends_with("(connection regained)")
    });
    daemon.stop();
}

/// Another process of the user reaches netev-gtk's exported actions on the
/// session bus; those that change something are not among them (they would
/// let it change rules in netev-gtk's name, on an authorization polkit
/// keeps for netev-gtk).
#[test]
fn another_process_cannot_activate_netev_gtks_change_actions() {
    let name = "another_process_cannot_activate_netev_gtks_change_actions";
    if !root_or_skip(name) || !desktop_tools_or_skip(name) {
        return;
    }
    let desk = Desktop::start();
    let sys = PrivateBus::system_like();
    let cg = TestCgroup::new("gtk-actions");
    let daemon = Daemon::start(&cg, &["--bus", sys.address()]);
    let state = desk.path("gtk.json");
    let _gtk = desk.netev_gtk(
        Command::new(workspace_bin("netev-gtk")),
        sys.address(),
        &state,
    );
    wait_shown(&state, "netevd running", |s| s["running"] == true);
    let listed = desk.list_actions();
    assert!(listed.contains(&"export-rules".to_string()), "{listed:?}");
    let rule = netev_on(
        sys.address(),
        &["rules", "add", "deny", "--op", "connect", "--port", "9"],
    );
    let id: u32 = rule.trim().parse().unwrap();
    for (action, param) in [
        ("import-rules", zbus::Variant::from("/dev/null")),
        ("delete-rules", zbus::Variant::from(vec![id])),
        ("set-rule-enabled", zbus::Variant::from((id, false))),
        ("pause-prompts", zbus::Variant::from(true)),
    ] {
        assert!(
            !listed.iter().any(|a| a == action),
            "{action} is exported: {listed:?}"
        );
        let err = desk
            .try_activate(action, param)
            .expect_err("activating an unexported action");
        assert!(err.contains(action), "{action}: {err}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let rules = netev_on(sys.address(), &["rules", "list", "--json"]);
    assert!(
        rules.contains(r#""enabled":true"#),
        "the rule is untouched: {rules}"
    );
    assert_ne!(shown(&state)["prompts_paused"], true);
    daemon.stop();
}

impl Desktop {
    /// The application actions netev-gtk exports (`org.gtk.Actions.List`).
    fn list_actions(&self) -> Vec<String> {
        let session = self.session.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let conn = zbus::connection::Builder::address(session.as_str())
                    .build()
                    .await
                    .unwrap();
                conn.call_method(
                    Some("org.netev.Gtk"),
                    "/org/netev/Gtk",
                    Some("org.gtk.Actions"),
                    "List",
                    &(),
                )
                .await
                .unwrap()
                .body()
                .deserialize::<Vec<String>>()
                .unwrap()
            })
    }

    /// Activates an application action; the error's text if refused.
    fn try_activate(&self, action: &str, param: zbus::Variant<'_>) -> Result<(), String> {
        let session = self.session.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let conn = zbus::connection::Builder::address(session.as_str())
                    .build()
                    .await
                    .unwrap();
                let platform: std::collections::HashMap<&str, zbus::Variant<'_>> =
                    std::collections::HashMap::new();
                conn.call_method(
                    Some("org.netev.Gtk"),
                    "/org/netev/Gtk",
                    Some("org.gtk.Actions"),
                    "Activate",
                    &(action, vec![param], platform),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            })
    }

    /// Runs one of netev-gtk's application actions over the session bus,
    /// as a script would (`org.gtk.Actions.Activate`).
    fn activate(&self, action: &str, param: zbus::Variant<'_>) {
        let session = self.session.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let conn = zbus::connection::Builder::address(session.as_str())
                    .build()
                    .await
                    .unwrap();
                let platform: std::collections::HashMap<&str, zbus::Variant<'_>> =
                    std::collections::HashMap::new();
                conn.call_method(
                    Some("org.netev.Gtk"),
                    "/org/netev/Gtk",
                    Some("org.gtk.Actions"),
                    "Activate",
                    &(action, vec![param], platform),
                )
                .await
                .unwrap_or_else(|e| panic!("activating {action}: {e}"));
            });
    }
}

/// `netev` against the daemon on `bus`; its stdout (a failure panics).
fn netev_on(bus: &str, args: &[&str]) -> String {
    let out = Command::new(workspace_bin("netev"))
        .args(["--bus", bus])
        .args(args)
        .output_bounded();
    assert!(
        out.status.success(),
        "netev {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Waits until what netev-gtk shows passes `pred`.
fn wait_shown(state: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = shown(state);
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "waited 60 s in vain for netev-gtk to show {what}; it shows {s:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The console's import, enable toggle, export and delete, run as the
/// console runs them (its application actions, over the session bus),
/// change netevd's rules — and so what the kernel lets through — and the
/// console's table follows.
#[test]
fn the_consoles_import_toggle_export_and_delete_reach_netevd_and_the_kernel() {
    let name = "the_consoles_import_toggle_export_and_delete_reach_netevd_and_the_kernel";
    if !root_or_skip(name) || !desktop_tools_or_skip(name) {
        return;
    }
    let desk = Desktop::start();
    let sys = PrivateBus::system_like();
    let cg = TestCgroup::new("gtk-console");
    let daemon = Daemon::start(&cg, &["--bus", sys.address()]);
    let rules = || -> Vec<Value> {
        netev_on(sys.address(), &["rules", "list", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = desk.path("gtk.json");
    let mut gtk = Command::new(workspace_bin("netev-gtk"));
    gtk.arg("--export-change-actions");
    let _gtk = desk.netev_gtk(gtk, sys.address(), &state);
    wait_shown(&state, "netevd running", |s| s["running"] == true);
    assert_eq!(attempt(&cg, port), "ECONNREFUSED", "nothing denies it yet");

    // import
    let file = desk.path("rules.toml");
    std::fs::write(
        &file,
        format!(
            "[[rule]]\naction = \"deny\"\nops = [\"connect\"]\nports = {port}\ncomment = \"from the console\"\n"
        ),
    )
    .unwrap();
    desk.activate("import-rules", file.to_str().unwrap().into());
    wait_until("the imported rule in netevd", || rules().len() == 1);
    let rule = rules().remove(0);
    assert_eq!(rule["action"], "deny");
    assert_eq!(rule["comment"], "from the console");
    let id = rule["id"].as_u64().unwrap() as u32;
    assert_eq!(attempt(&cg, port), "EPERM", "the imported rule is enforced");
    let in_console = |s: &Value, id: u32, enabled: bool| {
        s["rules"].as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["id"] == id && r["action"] == "deny" && r["enabled"] == enabled)
        })
    };
    wait_shown(&state, "the imported rule and the count", |s| {
        in_console(s, id, true) && s["message"] == "1 rule(s) imported"
    });

    // disable
    desk.activate("set-rule-enabled", (id, false).into());
    wait_until("the rule disabled in netevd", || {
        rules()[0]["enabled"] == false
    });
    assert_eq!(
        attempt(&cg, port),
        "ECONNREFUSED",
        "a disabled rule denies nothing"
    );
    wait_shown(&state, "the rule disabled", |s| in_console(s, id, false));

    // export
    let exported = desk.path("exported.toml");
    desk.activate("export-rules", exported.to_str().unwrap().into());
    wait_shown(&state, "the export done", |s| {
        s["message"] == format!("rules exported to {}", exported.display())
    });
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        text.contains("from the console") && text.contains(&port.to_string()),
        "{text}"
    );
    // what was exported imports again as the same rule (a new id)
    netev_on(
        sys.address(),
        &["rules", "import", "--replace", exported.to_str().unwrap()],
    );
    let again = rules();
    assert_eq!(again.len(), 1, "{again:?}");
    for field in ["action", "ops", "ports", "comment", "enabled"] {
        assert_eq!(again[0][field], rule_after_toggle(&rule)[field], "{field}");
    }
    let id = again[0]["id"].as_u64().unwrap() as u32;
    wait_shown(&state, "the re-imported rule", |s| in_console(s, id, false));

    // delete
    desk.activate("delete-rules", vec![id].into());
    wait_until("the rule gone from netevd", || rules().is_empty());
    wait_shown(&state, "the rule gone", |s| {
        s["rules"].as_array().is_some_and(|r| r.is_empty()) && s["message"] == "1 rule(s) deleted"
    });
    assert_eq!(attempt(&cg, port), "ECONNREFUSED");

    // a file that is not there: said in the console, nothing changes
    desk.activate(
        "import-rules",
        desk.path("missing.toml").to_str().unwrap().into(),
    );
    wait_shown(&state, "the error", |s| {
        s["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("cannot read") && m.contains("missing.toml"))
    });
    assert!(rules().is_empty());

    // Pause prompts, as the tray's menu item does
    desk.activate("pause-prompts", true.into());
    wait_shown(&state, "prompts paused", |s| s["prompts_paused"] == true);
    daemon.stop();
}

/// A rule as `netev rules list --json` shows it once disabled.
fn rule_after_toggle(rule: &Value) -> Value {
    let mut r = rule.clone();
    r["enabled"] = Value::Bool(false);
    r
}
