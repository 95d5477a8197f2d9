//! polkit for changes: a netev group member changes rules only when the real polkitd (on the test's bus) authorizes it, through an agent answering for that very process; reading stays a group right; root never asks polkit; no polkitd refuses.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use netev_tests::{
    ensure_group, ensure_user, root_or_skip, wait_bounded, wait_until, workspace_bin, Daemon,
    OutputBounded, PrivateBus, PublicBin, TestCgroup,
};
use netev_testsupport::polkit::{self, Answer, Polkitd, TestAgent};
use serde_json::Value;

const MEMBER: &str = "netev-t-pkmember";
const CHANGE: &str = "org.netev.change-rules";
const ANSWER: &str = "org.netev.answer-prompts";
const DEST: [&str; 4] = [
    "--dest",
    "org.netev.Daemon1",
    "--object-path",
    "/org/netev/Daemon1",
];

/// A netevd on a system-like bus, with polkitd on it unless `polkitd` is
/// false, and the member user.
struct Setup {
    _actions: polkit::ActionsLock,
    bus: PrivateBus,
    _cg: TestCgroup,
    _daemon: Daemon,
    _polkitd: Option<Polkitd>,
    netev: PublicBin,
}

impl Setup {
    fn new(name: &str, with_polkitd: bool) -> Setup {
        assert!(
            polkit::installed(),
            "{} (package polkitd) is needed: run scripts/setup.sh",
            polkit::POLKITD
        );
        let actions = polkit::ActionsLock::take(false);
        if let Err(e) =
            polkit::check_actions_installed(&repo().join("dist/polkit-1/actions/org.netev.policy"))
        {
            panic!("{e}");
        }
        ensure_group("netev");
        ensure_user(MEMBER, &["netev"]);
        let bus = PrivateBus::system_like_with(&polkit::bus_policy_include());
        let polkitd = with_polkitd.then(|| Polkitd::start(bus.address()));
        let cg = TestCgroup::new(name);
        let daemon = Daemon::start(&cg, &["--bus", bus.address()]);
        Setup {
            _actions: actions,
            bus,
            _cg: cg,
            _daemon: daemon,
            _polkitd: polkitd,
            netev: PublicBin::copy("netev"),
        }
    }

    fn addr(&self) -> &str {
        self.bus.address()
    }

    /// `netev ARGS` as root; must succeed.
    fn root(&self, args: &[&str]) -> String {
        let out = Command::new(workspace_bin("netev"))
            .args(["--bus", self.addr()])
            .args(args)
            .output_bounded();
        assert!(
            out.status.success(),
            "netev {args:?} as root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The rules netevd has, as root lists them.
    fn rules(&self) -> Vec<Value> {
        self.root(&["rules", "list", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn has_rule_commented(&self, comment: &str) -> bool {
        self.rules().iter().any(|r| r["comment"] == comment)
    }

    /// `netev ARGS` as the member, in a process that waits (same pid, same
    /// start time) until [`Held::go`]: an agent can register for it first.
    fn member_netev(&self, args: &[&str]) -> Held {
        let mut all = vec!["--bus", self.addr()];
        all.extend_from_slice(args);
        Held::start(&self.netev.path(), &all)
    }

    /// `gdbus call` of a method as the member (`--interactive` when
    /// `interactive`), held like [`Setup::member_netev`].
    fn member_gdbus(&self, interactive: bool, method: &str, args: &[&str]) -> Held {
        let mut all = vec!["call", "--address", self.addr()];
        all.extend_from_slice(&DEST);
        all.extend_from_slice(&["--method", method]);
        if interactive {
            all.push("--interactive");
        }
        all.extend_from_slice(args);
        Held::start(Path::new("/usr/bin/gdbus"), &all)
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A process of the member that execs its program once told to.
struct Held {
    child: Child,
}

impl Held {
    fn start(program: &Path, args: &[&str]) -> Held {
        let gid = String::from_utf8(
            Command::new("id")
                .args(["-g", MEMBER])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let child = Command::new("setpriv")
            .arg(format!("--reuid={MEMBER}"))
            .arg(format!("--regid={}", gid.trim()))
            .arg("--init-groups")
            .args(["--", "sh", "-c", r#"read _go && exec "$0" "$@""#])
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("setpriv (util-linux)");
        Held { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it run; waits for it and returns what it printed.
    fn go(mut self) -> Output {
        self.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let mut stdout = self.child.stdout.take().unwrap();
        let mut stderr = self.child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = stdout.read_to_end(&mut b);
            b
        });
        let err = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = stderr.read_to_end(&mut b);
            b
        });
        let status = wait_bounded(&mut self.child, "the member's command");
        Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    }

    /// Lets it run without waiting.
    fn release(&mut self) {
        self.child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"go\n")
            .unwrap();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn add_args(comment: &str) -> Vec<String> {
    [
        "rules",
        "add",
        "deny",
        "--op",
        "connect",
        "--port",
        "9",
        "--comment",
        comment,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// AddRule's argument for gdbus.
fn gdbus_rule(comment: &str) -> String {
    format!("{{'action': 'deny', 'ops': 'connect', 'ports': '9', 'comment': '{comment}'}}")
}

#[test]
fn a_member_without_authorization_cannot_add_a_rule() {
    if !root_or_skip("a_member_without_authorization_cannot_add_a_rule") {
        return;
    }
    let s = Setup::new("pk-unauthorized", true);
    // netev allows interaction, but nothing answers for it (no tty, no agent)
    let out = s.member_netev(&strs(&add_args("no-agent"))).go();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(
        err.contains(CHANGE)
            && err.contains("no authentication agent")
            && err.contains("pkttyagent")
            && err.contains("root")
            && err.contains("polkit rule"),
        "the refusal says what is missing and what to do: {err}"
    );
    assert!(!s.has_rule_commented("no-agent"), "{:?}", s.rules());

    // a caller that did not allow interaction is told so
    let out = s
        .member_gdbus(
            false,
            "org.netev.Daemon1.AddRule",
            &[&gdbus_rule("no-flag")],
        )
        .go();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")
            && err.contains("ALLOW_INTERACTIVE_AUTHORIZATION"),
        "{err}"
    );
    assert!(s.rules().is_empty());

    // every change method, and answering prompts, under its action
    let id = s.root(&[
        "rules",
        "add",
        "allow",
        "--op",
        "connect",
        "--port",
        "7",
        "--comment",
        "root's",
    ]);
    let id = id.trim();
    for (method, args, action) in [
        ("UpdateRule", vec![id, "{'comment': 'changed'}"], CHANGE),
        ("RemoveRule", vec![id], CHANGE),
        ("SetEnabled", vec![id, "false"], CHANGE),
        ("SetDefaultPolicy", vec!["connect", "deny"], CHANGE),
        ("ImportRules", vec!["x.toml", "", "true"], CHANGE),
        ("AnswerPrompt", vec!["1", "allow", "always", "exe"], ANSWER),
    ] {
        let out = s
            .member_gdbus(false, &format!("org.netev.Daemon1.{method}"), &args)
            .go();
        let err = stderr(&out);
        assert!(
            err.contains("InteractiveAuthorizationRequired") && err.contains(action),
            "{method}: {err}"
        );
    }
    let rules = s.rules();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["comment"], "root's");
    assert_eq!(rules[0]["enabled"], true);
    let policy: Value = serde_json::from_str(&s.root(&["rules", "default", "--json"])).unwrap();
    assert_ne!(policy["connect"], "deny", "{policy}");
    assert!(policy["connect"].is_string(), "{policy}");
}

#[test]
fn a_member_the_agent_authenticates_changes_rules_and_one_it_refuses_does_not() {
    if !root_or_skip("a_member_the_agent_authenticates_changes_rules") {
        return;
    }
    let s = Setup::new("pk-agent", true);

    let held = s.member_netev(&strs(&add_args("authenticated")));
    let agent = TestAgent::register(s.addr(), held.pid(), Answer::Yes);
    let out = held.go();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(s.has_rule_commented("authenticated"), "{:?}", s.rules());
    let asked = agent.requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].action_id, CHANGE);
    assert!(asked[0].message.contains("netev"), "{:?}", asked[0]);
    drop(agent);

    let held = s.member_netev(&strs(&add_args("refused")));
    let agent = TestAgent::register(s.addr(), held.pid(), Answer::No);
    let out = held.go();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(
        err.contains(CHANGE) && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(agent.requests().len(), 1);
    assert!(!s.has_rule_commented("refused"));

    // answering prompts is its own action: authenticated, the call gets
    // past access control to the prompt lookup
    let held = s.member_gdbus(
        true,
        "org.netev.Daemon1.AnswerPrompt",
        &["4242", "allow", "once", "exe"],
    );
    let agent = TestAgent::register(s.addr(), held.pid(), Answer::Yes);
    let out = held.go();
    let err = stderr(&out);
    assert!(err.contains("no pending prompt 4242"), "{err}");
    assert_eq!(agent.requests()[0].action_id, ANSWER);
}

#[test]
fn an_authorization_is_for_the_process_the_agent_answered_for_only() {
    if !root_or_skip("an_authorization_is_for_the_process_the_agent_answered_for_only") {
        return;
    }
    let s = Setup::new("pk-other-process", true);
    // An agent answering yes for one process of the member …
    let bystander = s.member_netev(&["status"]);
    let agent = TestAgent::register(s.addr(), bystander.pid(), Answer::Yes);
    // … does nothing for another process of the same member
    let out = s.member_netev(&strs(&add_args("other process"))).go();
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert!(agent.requests().is_empty(), "{:?}", agent.requests());
    assert!(!s.has_rule_commented("other process"));

    // auth_admin_keep keeps it for the process that authenticated: the
    // next process of the member asks again
    let held = s.member_gdbus(true, "org.netev.Daemon1.AddRule", &[&gdbus_rule("kept")]);
    let agent2 = TestAgent::register(s.addr(), held.pid(), Answer::Yes);
    assert!(held.go().status.success());
    assert!(s.has_rule_commented("kept"));
    assert_eq!(agent2.requests().len(), 1);
    let out = s
        .member_gdbus(
            false,
            "org.netev.Daemon1.AddRule",
            &[&gdbus_rule("riding along")],
        )
        .go();
    assert!(
        stderr(&out).contains("InteractiveAuthorizationRequired"),
        "{}",
        stderr(&out)
    );
    assert!(!s.has_rule_commented("riding along"));
    drop(bystander);
}

#[test]
fn the_interactive_flag_without_an_agent_gains_nothing() {
    if !root_or_skip("the_interactive_flag_without_an_agent_gains_nothing") {
        return;
    }
    let s = Setup::new("pk-flag", true);
    let out = s
        .member_gdbus(
            true,
            "org.netev.Daemon1.AddRule",
            &[&gdbus_rule("flag only")],
        )
        .go();
    let err = stderr(&out);
    assert!(
        err.contains("org.freedesktop.DBus.Error.AccessDenied")
            && err.contains("no authentication agent"),
        "{err}"
    );
    assert!(!s.has_rule_commented("flag only"));
}

#[test]
fn a_caller_that_leaves_while_being_authenticated_changes_nothing() {
    if !root_or_skip("a_caller_that_leaves_while_being_authenticated_changes_nothing") {
        return;
    }
    let s = Setup::new("pk-leaves", true);
    let mut held = s.member_gdbus(true, "org.netev.Daemon1.AddRule", &[&gdbus_rule("left")]);
    let agent = TestAgent::register(s.addr(), held.pid(), Answer::Hold);
    held.release();
    wait_until("the agent asked", || !agent.requests().is_empty());
    drop(held); // killed: its connection and unique name are gone
    agent.release();
    // whichever of polkitd and netevd notices first, nothing is added
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(!s.has_rule_commented("left"), "{:?}", s.rules());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_polkitd_members_are_refused_changes_and_root_and_reading_need_no_polkit() {
    if !root_or_skip("without_polkitd_members_are_refused_changes") {
        return;
    }
    let s = Setup::new("pk-absent", false);
    let out = s.member_netev(&strs(&add_args("no polkitd"))).go();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(
        err.contains("polkitd is not running") && err.contains("polkitd") && err.contains("root"),
        "{err}"
    );
    assert!(!s.has_rule_commented("no polkitd"));

    // root: no polkit at all
    s.root(&strs(&add_args("by root")));
    assert!(s.has_rule_commented("by root"));
    s.root(&["rules", "default", "connect", "allow"]);

    // reading stays a group right without polkit
    for args in [
        &["rules", "list", "--json"][..],
        &["rules", "default"][..],
        &["rules", "export"][..],
    ] {
        let out = s.member_netev(args).go();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        if args[1] == "list" {
            assert!(String::from_utf8_lossy(&out.stdout).contains("by root"));
        }
    }
    for method in [
        "GetDefaultPolicy",
        "WatchPrompts",
        "ExportRules",
        "ListRules",
    ] {
        let out = s
            .member_gdbus(false, &format!("org.netev.Daemon1.{method}"), &[])
            .go();
        assert!(out.status.success(), "{method}: {}", stderr(&out));
    }
    let out = s
        .member_gdbus(false, "org.netev.Daemon1.Subscribe", &["{}"])
        .go();
    assert!(out.status.success(), "Subscribe: {}", stderr(&out));
}

#[test]
fn in_a_terminal_netev_starts_pkttyagent_for_itself_on_netevds_bus() {
    if !root_or_skip("in_a_terminal_netev_starts_pkttyagent_for_itself") {
        return;
    }
    let s = Setup::new("pk-tty", true);
    // `script` gives the member's netev a terminal; pkttyagent asks for an
    // administrator's password there (the wrong one: nothing changes)
    let cmd = format!(
        "{} --bus '{}' rules add deny --op connect --port 9 --comment in-a-terminal",
        s.netev.path().display(),
        s.addr()
    );
    let mut child = Command::new("setpriv")
        .arg(format!("--reuid={MEMBER}"))
        .arg("--init-groups")
        .args(["--", "script", "-q", "-e", "-c", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    // wrong passwords, slowly enough for each prompt
    std::thread::spawn(move || {
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(700));
            if stdin.write_all(b"not-the-password\n").is_err() {
                break;
            }
        }
    });
    let status = wait_bounded(&mut child, "netev in a terminal");
    let out = String::from_utf8_lossy(&out.join().unwrap()).into_owned();
    assert!(
        out.contains("AUTHENTICATING FOR org.netev.change-rules"),
        "pkttyagent asked on netev's terminal: {out}"
    );
    assert_eq!(status.code(), Some(77), "{out}");
    assert!(!s.has_rule_commented("in-a-terminal"));
}
