//! The dialog and the console as widgets, in a real GTK under Xvfb
//! (`xvfb-run -a cargo test -p netev-gtk`): what a person types and clicks,
//! and what they would read or what would be sent.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use gtk::prelude::*;
use netev_dbus::{WireHook, WireStatus};
use netev_gtk::console::{Console, ConsoleAction};
use netev_gtk::dialog::RuleDialog;
use netev_gtk::events_model::EventFilter;
use netev_gtk::form::{RuleForm, Scope, Submission};
use netev_gtk::rules_model::RuleColumn;
use netev_gtk::state::DaemonState;
use netev_gtk::testing::connect_event;

fn has(fields: &[(String, String)], k: &str, v: &str) -> bool {
    fields.iter().any(|(a, b)| a == k && b == v)
}

#[gtk::test]
fn the_dialog_validates_as_you_type_and_builds_the_rule_shown() {
    let d = RuleDialog::new(None, RuleForm::from_event(&connect_event()));
    let w = d.widgets();
    assert_eq!(w.exe.text(), "/usr/bin/curl");
    assert_eq!(w.addr.text(), "192.0.2.7");
    assert_eq!(w.ports.text(), "8080");
    assert!(d.can_create(), "{}", d.message());
    assert!(
        d.message().contains("allow connect exe=/usr/bin/curl"),
        "{}",
        d.message()
    );

    w.ports.set_text("70000");
    assert!(!d.can_create());
    assert!(!w.create.is_sensitive());
    assert_eq!(
        d.message(),
        "ports = \"70000\": expected a port (0-65535) or a range such as 8000-8080"
    );
    w.ports.set_text("8000-8080");
    assert!(d.can_create());
    assert_eq!(d.form().scope, Scope::Custom, "edited by hand");

    w.user.set_text("no-such-user-here");
    assert!(d.message().contains("no such user"), "{}", d.message());
    w.user.set_text("root");
    assert!(d.can_create());

    // choosing a scope rewrites program, address and port
    w.scope.set_selected(
        Scope::ALL
            .iter()
            .position(|s| *s == Scope::ExePort)
            .unwrap() as u32,
    );
    assert_eq!(w.addr.text(), "");
    assert_eq!(w.ports.text(), "8080");
    w.action.set_selected(1); // Deny
    w.duration.set_selected(1); // 5 minutes
    let Some(Submission::Add(fields)) = d.submission() else {
        panic!("expected AddRule, got {:?}", d.submission())
    };
    assert!(has(&fields, "action", "deny"));
    assert!(has(&fields, "ops", "connect"));
    assert!(has(&fields, "exe", "/usr/bin/curl"));
    assert!(has(&fields, "ports", "8080"));
    assert!(has(&fields, "user", "root"));
    assert!(has(&fields, "duration", "5m"));
    assert!(!fields.iter().any(|(k, _)| k == "addr"));
}

#[gtk::test]
fn from_a_prompt_create_answers_it_unless_the_rule_says_more() {
    let d = RuleDialog::new(None, RuleForm::from_prompt(9, &connect_event(), 4, false));
    let w = d.widgets();
    assert_eq!(w.priority.text(), "5");
    w.action.set_selected(1);
    w.duration.set_selected(0); // once
    let sent: Rc<RefCell<Vec<Submission>>> = Rc::default();
    let s = sent.clone();
    d.connect_create(move |_, sub| s.borrow_mut().push(sub));
    w.create.emit_clicked();
    assert_eq!(
        sent.borrow().as_slice(),
        [Submission::Answer {
            id: 9,
            action: "deny".into(),
            duration: "once".into(),
            scope: "exe+dest+port".into()
        }]
    );
    w.comment.set_text("the build server");
    assert!(matches!(d.submission(), Some(Submission::Add(_))));
    w.ops.set_text("conect");
    assert!(d.submission().is_none());
    assert!(
        d.message().contains("expected socket, bind"),
        "{}",
        d.message()
    );
}

#[gtk::test]
fn a_supervisors_question_gets_an_answer_never_a_rule() {
    // asked through Ask (netev run): the call is the asker's word
    let d = RuleDialog::new(None, RuleForm::from_prompt(9, &connect_event(), 4, true));
    let w = d.widgets();
    w.action.set_selected(0);
    assert!(matches!(
        d.submission(),
        Some(Submission::Answer { id: 9, .. })
    ));
    w.comment.set_text("the build server");
    assert!(d.submission().is_none(), "no AddRule from an Ask");
    assert!(!w.create.is_sensitive());
    assert!(d.message().contains("supervisor"), "{}", d.message());
}

fn listed(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sample_rules() -> Vec<HashMap<String, String>> {
    vec![
        listed(&[
            ("id", "1"),
            ("action", "deny"),
            ("ops", "connect"),
            ("addr", "10.0.0.0/8"),
            ("hits", "12"),
        ]),
        listed(&[
            ("id", "2"),
            ("action", "allow"),
            ("exe", "/usr/bin/ssh"),
            ("ports", "22"),
            ("priority", "10"),
            ("enabled", "false"),
            ("comment", "ssh anywhere"),
        ]),
        listed(&[
            ("id", "3"),
            ("action", "ask"),
            ("exe", "/opt/*/bin/*"),
            ("hits", "5"),
        ]),
    ]
}

fn recorder() -> (
    Rc<RefCell<Vec<ConsoleAction>>>,
    impl Fn(ConsoleAction) + 'static,
) {
    let got: Rc<RefCell<Vec<ConsoleAction>>> = Rc::default();
    let g = got.clone();
    (got, move |a| g.borrow_mut().push(a))
}

#[gtk::test]
fn the_rules_table_sorts_filters_and_toggles() {
    let (got, rec) = recorder();
    let c = Console::new(None, rec);
    c.set_rules(&sample_rules());
    let ids = |c: &Console| c.visible_rules().iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(&c), [1, 2, 3]);
    c.sort_rules_by(RuleColumn::Hits, false);
    assert_eq!(ids(&c), [1, 3, 2]);
    c.sort_rules_by(RuleColumn::Action, true);
    assert_eq!(ids(&c), [2, 3, 1]);
    c.set_rule_filter("ssh");
    assert_eq!(ids(&c), [2]);
    assert_eq!(c.visible_rules()[0].dest, "port 22");
    c.toggle_rule(0);
    c.select_rules(&[0]);
    assert_eq!(c.selected_rules()[0].id, 2);
    c.set_rule_filter("");
    assert_eq!(ids(&c).len(), 3);
    assert_eq!(
        got.borrow().as_slice(),
        [ConsoleAction::SetEnabled(2, true)]
    );
    // a reload after RulesChanged keeps the sort and the filter
    let mut more = sample_rules();
    more.push(listed(&[
        ("id", "4"),
        ("action", "allow"),
        ("exe", "/usr/bin/ssh"),
        ("comment", "ssh again"),
    ]));
    c.set_rule_filter("ssh");
    c.set_rules(&more);
    assert_eq!(ids(&c), [2, 4]);
}

#[gtk::test]
fn the_live_view_filters_pauses_and_counts_for_the_chart() {
    let (_got, rec) = recorder();
    let c = Console::new(None, rec);
    let mut a = connect_event();
    a.verdict = "allow".into();
    let mut b = connect_event();
    b.exe = "/usr/bin/ssh".into();
    b.op = "sendmsg".into();
    c.push_events(&[a.clone(), b.clone()], 0);
    assert_eq!(c.visible_events().len(), 2);
    c.set_event_filter(EventFilter {
        exe: "ssh".into(),
        ..Default::default()
    });
    assert_eq!(c.visible_events(), [b.clone()]);
    c.set_event_filter(EventFilter {
        verdict: "allow".into(),
        ..Default::default()
    });
    assert_eq!(c.visible_events(), [a.clone()]);
    c.set_event_filter(EventFilter::default());
    c.set_events_paused(true);
    c.push_events(&[a.clone()], 0);
    assert_eq!(c.visible_events().len(), 2, "paused: the view holds still");
    c.set_events_paused(false);
    assert_eq!(c.visible_events().len(), 3);
    let sec = a.ts_ns / 1_000_000_000;
    let last = *c.chart_series(sec).last().unwrap();
    assert_eq!(last, [2, 1, 0], "allow 2, deny 1 in that second");
}

#[gtk::test]
fn the_banner_says_what_is_wrong_and_how_to_fix_it() {
    let (_got, rec) = recorder();
    let c = Console::new(None, rec);
    c.set_state(&DaemonState::AccessDenied {
        message: "watching prompts needs root or membership of the group 'netev'; alice (uid 1000) is not a member".into(),
    });
    let t = c.banner_text();
    assert!(t.starts_with("Access to netevd denied"), "{t}");
    assert!(t.contains("usermod -aG netev"), "{t}");
    c.set_state(&DaemonState::NotRunning {
        bus: "the system bus".into(),
    });
    assert!(c.banner_text().contains("sudo netevd"));
    c.set_state(&DaemonState::Running {
        version: "0.1.0".into(),
        regained: true,
    });
    assert_eq!(
        c.banner_text(),
        "netevd 0.1.0 is running (connection regained)"
    );
}

#[gtk::test]
fn the_status_page_shows_backend_hooks_and_losses() {
    let (_got, rec) = recorder();
    let c = Console::new(None, rec);
    c.set_status(&WireStatus {
        version: "0.1.0".into(),
        pid: 7,
        started: 0,
        uptime_secs: 42,
        backend: "cgroup+tracepoints".into(),
        cgroup: "/sys/fs/cgroup/unified".into(),
        coalesce: true,
        hooks: vec![
            WireHook {
                op: "connect".into(),
                attach: "cgroup/connect4".into(),
                mode: "enforce".into(),
            },
            WireHook {
                op: "accept".into(),
                attach: "syscalls/sys_exit_accept".into(),
                mode: "observe".into(),
            },
        ],
        notes: vec![],
        counters: HashMap::from([
            ("seen".into(), 9),
            ("delivered".into(), 8),
            ("dropped".into(), 1),
        ]),
    });
    let lines = c.status_text();
    let get = |k: &str| {
        lines
            .iter()
            .find(|(l, _)| l == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("Backend"), "cgroup+tracepoints");
    assert_eq!(get("Enforced"), "connect");
    assert_eq!(get("Observed only"), "accept");
    assert_eq!(get("Kernel records"), "9 seen, 8 delivered, 1 dropped");
}
