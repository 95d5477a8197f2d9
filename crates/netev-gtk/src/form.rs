//! The "Create a rule" dialog's content, without GTK: the choices a person
//! makes, pre-filled from an event, checked with the same rule crate the
//! daemon uses, and what to send when they press Create.

use std::collections::HashMap;

use chrono::Utc;
use netev_dbus::WireEvent;
use netev_rules::{fields, Rule, RuleError};

/// How far the rule reaches, as offered by the dialog. The first four are
/// the scopes `AnswerPrompt` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This program, any destination.
    Exe,
    /// This program, this address.
    ExeDest,
    /// This program, this port.
    ExePort,
    /// This program, this address and port.
    ExeDestPort,
    /// Any program, this address and port.
    AnyProgramDestPort,
    /// Whatever the fields say (the person edited them).
    Custom,
}

impl Scope {
    /// Every scope, in the order the dialog lists them.
    pub const ALL: [Scope; 6] = [
        Scope::Exe,
        Scope::ExeDest,
        Scope::ExePort,
        Scope::ExeDestPort,
        Scope::AnyProgramDestPort,
        Scope::Custom,
    ];

    /// The label shown in the dialog.
    pub fn label(self) -> &'static str {
        match self {
            Scope::Exe => "This program, any destination",
            Scope::ExeDest => "This program, this address",
            Scope::ExePort => "This program, this port",
            Scope::ExeDestPort => "This program, this address and port",
            Scope::AnyProgramDestPort => "Any program, this address and port",
            Scope::Custom => "Custom (as the fields say)",
        }
    }

    /// The `scope` argument of `AnswerPrompt`, for the scopes it knows.
    pub fn answer_scope(self) -> Option<&'static str> {
        match self {
            Scope::Exe => Some("exe"),
            Scope::ExeDest => Some("exe+dest"),
            Scope::ExePort => Some("exe+port"),
            Scope::ExeDestPort => Some("exe+dest+port"),
            _ => None,
        }
    }
}

/// The durations the dialog offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationChoice {
    /// Decides one operation, then is removed.
    Once,
    /// Five minutes from now.
    FiveMinutes,
    /// One hour from now.
    OneHour,
    /// Until netevd stops.
    UntilRestart,
    /// Until removed.
    Always,
}

impl DurationChoice {
    /// Every choice, in the order the dialog lists them.
    pub const ALL: [DurationChoice; 5] = [
        DurationChoice::Once,
        DurationChoice::FiveMinutes,
        DurationChoice::OneHour,
        DurationChoice::UntilRestart,
        DurationChoice::Always,
    ];

    /// The rule field value.
    pub fn value(self) -> &'static str {
        match self {
            DurationChoice::Once => "once",
            DurationChoice::FiveMinutes => "5m",
            DurationChoice::OneHour => "1h",
            DurationChoice::UntilRestart => "until-restart",
            DurationChoice::Always => "always",
        }
    }

    /// The label shown in the dialog.
    pub fn label(self) -> &'static str {
        match self {
            DurationChoice::Once => "Once",
            DurationChoice::FiveMinutes => "5 minutes",
            DurationChoice::OneHour => "1 hour",
            DurationChoice::UntilRestart => "Until netevd restarts",
            DurationChoice::Always => "Always",
        }
    }

    /// The choice for a duration value (`5m` → five minutes), if offered.
    pub fn from_value(v: &str) -> Option<DurationChoice> {
        Self::ALL.into_iter().find(|d| d.value() == v)
    }
}

/// Where the dialog's content came from, which decides what Create sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// Nothing: a new rule from scratch.
    New,
    /// An event seen in the console.
    Event(WireEvent),
    /// A prompt from netevd (its id and event); `asker_priority` is the
    /// priority of the rule that asked (0 for the default policy), so that
    /// the new rule is checked before it.
    Prompt {
        /// Prompt id.
        id: u64,
        /// The operation that asked.
        event: WireEvent,
        /// Priority of the rule that asked.
        asker_priority: i32,
        /// Asked by a supervisor through `Ask`: only an answer can be
        /// given (it goes back to the asker), never a rule of netevd's.
        asked: bool,
    },
    /// An existing rule being edited.
    Rule(u32),
}

/// What Create sends to netevd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// `AddRule(fields)`.
    Add(Vec<(String, String)>),
    /// `UpdateRule(id, fields)`; fields with an empty value unset a condition.
    Update(u32, Vec<(String, String)>),
    /// `AnswerPrompt(id, action, duration, scope)`.
    Answer {
        /// Prompt id.
        id: u64,
        /// allow or deny.
        action: String,
        /// Rule duration.
        duration: String,
        /// exe, exe+dest, exe+port or exe+dest+port.
        scope: String,
    },
    /// Nothing may be sent, for this reason (a supervisor's question
    /// whose form asks for more than an answer).
    Refused(String),
}

/// The dialog's fields as text, as a person edits them.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleForm {
    /// allow, deny or ask.
    pub action: String,
    /// The scope chosen; editing a field it sets makes it `Custom`.
    pub scope: Scope,
    /// Comma-separated ops ("" = every op).
    pub ops: String,
    /// Program path or glob ("" = any program).
    pub exe: String,
    /// tcp, udp, icmp, icmpv6 or "" (any).
    pub proto: String,
    /// Address or CIDR ("" = any).
    pub addr: String,
    /// Port or range ("" = any).
    pub ports: String,
    /// User name or uid ("" = any user).
    pub user: String,
    /// once, 5m, 1h, until-restart, always (or another rule duration).
    pub duration: String,
    /// Whole number; higher is checked first.
    pub priority: String,
    /// Free text.
    pub comment: String,
    /// Whether the rule is enabled.
    pub enabled: bool,
    origin: Origin,
}

/// The address and port on the side of the op the rules look at.
pub fn event_place(ev: &WireEvent) -> (String, Option<u16>) {
    let remote = ev
        .op
        .parse()
        .map(netev_rules::op_uses_remote)
        .unwrap_or(true);
    let (addr, port) = if remote {
        (&ev.raddr, ev.rport)
    } else {
        (&ev.laddr, ev.lport)
    };
    if addr.is_empty() {
        (String::new(), None)
    } else {
        (addr.clone(), Some(port))
    }
}

impl RuleForm {
    fn blank(origin: Origin) -> RuleForm {
        RuleForm {
            action: "allow".into(),
            scope: Scope::Custom,
            ops: String::new(),
            exe: String::new(),
            proto: String::new(),
            addr: String::new(),
            ports: String::new(),
            user: String::new(),
            duration: "always".into(),
            priority: "0".into(),
            comment: String::new(),
            enabled: true,
            origin,
        }
    }

    /// An empty form for a new rule.
    pub fn new_rule() -> RuleForm {
        RuleForm::blank(Origin::New)
    }

    /// A form pre-filled from an event of the console: its op and program,
    /// and its address and port when it has them.
    pub fn from_event(ev: &WireEvent) -> RuleForm {
        Self::prefill(ev, Origin::Event(ev.clone()), 0)
    }

    /// A form pre-filled from a prompt; Create answers the prompt when the
    /// form says what an answer can (see [`RuleForm::submission`]).
    pub fn from_prompt(id: u64, ev: &WireEvent, asker_priority: i32, asked: bool) -> RuleForm {
        Self::prefill(
            ev,
            Origin::Prompt {
                id,
                event: ev.clone(),
                asker_priority,
                asked,
            },
            asker_priority.saturating_add(1),
        )
    }

    fn prefill(ev: &WireEvent, origin: Origin, priority: i32) -> RuleForm {
        let mut f = RuleForm::blank(origin);
        f.ops = ev.op.clone();
        f.exe = ev.exe.clone();
        f.priority = priority.to_string();
        let scope = if event_place(ev).1.is_some() {
            Scope::ExeDestPort
        } else {
            Scope::Exe
        };
        f.set_scope(scope);
        f
    }

    /// A form holding an existing rule (as `ListRules` gives it) for editing.
    pub fn from_rule(fields: &HashMap<String, String>) -> RuleForm {
        let id = fields.get("id").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut f = RuleForm::blank(Origin::Rule(id));
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        f.action = get("action");
        f.ops = get("ops");
        f.exe = get("exe");
        f.proto = get("proto");
        f.addr = get("addr");
        f.ports = get("ports");
        f.user = fields
            .get("user_name")
            .cloned()
            .unwrap_or_else(|| get("user"));
        f.duration = fields
            .get("duration")
            .cloned()
            .unwrap_or_else(|| "always".into());
        f.priority = fields
            .get("priority")
            .cloned()
            .unwrap_or_else(|| "0".into());
        f.comment = get("comment");
        f.enabled = fields.get("enabled").map(String::as_str) != Some("false");
        f
    }

    /// Where the form came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The event the form was made from, if any.
    pub fn event(&self) -> Option<&WireEvent> {
        match &self.origin {
            Origin::Event(ev) | Origin::Prompt { event: ev, .. } => Some(ev),
            _ => None,
        }
    }

    /// Chooses a scope: sets the program, address and port fields from the
    /// event accordingly (`Custom` leaves them as they are).
    pub fn set_scope(&mut self, scope: Scope) {
        self.scope = scope;
        let Some(ev) = self.event().cloned() else {
            return;
        };
        let (addr, port) = event_place(&ev);
        let port = port.map(|p| p.to_string()).unwrap_or_default();
        let (exe, addr, ports) = match scope {
            Scope::Exe => (ev.exe.clone(), String::new(), String::new()),
            Scope::ExeDest => (ev.exe.clone(), addr, String::new()),
            Scope::ExePort => (ev.exe.clone(), String::new(), port),
            Scope::ExeDestPort => (ev.exe.clone(), addr, port),
            Scope::AnyProgramDestPort => (String::new(), addr, port),
            Scope::Custom => return,
        };
        self.exe = exe;
        self.addr = addr;
        self.ports = ports;
    }

    /// The scope the program, address and port fields amount to now:
    /// editing a field by hand can turn a scope into `Custom` or another one.
    pub fn effective_scope(&self) -> Scope {
        let Some(ev) = self.event() else {
            return Scope::Custom;
        };
        let (addr, port) = event_place(ev);
        let port = port.map(|p| p.to_string()).unwrap_or_default();
        let exe = self.exe == ev.exe && !ev.exe.is_empty();
        let a = !addr.is_empty() && self.addr == addr;
        let p = !port.is_empty() && self.ports == port;
        let no_a = self.addr.is_empty();
        let no_p = self.ports.is_empty();
        match (exe, self.exe.is_empty()) {
            (true, _) if no_a && no_p => Scope::Exe,
            (true, _) if a && no_p => Scope::ExeDest,
            (true, _) if no_a && p => Scope::ExePort,
            (true, _) if a && p => Scope::ExeDestPort,
            (false, true) if a && p => Scope::AnyProgramDestPort,
            _ => Scope::Custom,
        }
    }

    /// The rule's text fields (docs/rules.md), leaving out empty ones.
    pub fn fields(&self) -> Vec<(String, String)> {
        self.all_fields()
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// Every field, empty ones included (an update unsets those).
    fn all_fields(&self) -> Vec<(String, String)> {
        let pairs = [
            ("action", self.action.trim().to_string()),
            ("ops", self.ops.trim().to_string()),
            ("exe", self.exe.trim().to_string()),
            ("user", self.user.trim().to_string()),
            ("proto", self.proto.trim().to_string()),
            ("addr", self.addr.trim().to_string()),
            ("ports", self.ports.trim().to_string()),
            ("duration", self.duration.trim().to_string()),
            ("priority", self.priority.trim().to_string()),
            ("enabled", self.enabled.to_string()),
            ("comment", self.comment.clone()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Checks the form as the daemon will: the rule it makes, or the first
    /// problem, worded as `netev rules add` and rules files word it.
    pub fn validate(&self, lookup_user: &dyn Fn(&str) -> Option<u32>) -> Result<Rule, RuleError> {
        let f = self.fields();
        fields::rule_from_fields(
            f.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            Utc::now(),
            lookup_user,
        )
    }

    /// What Create sends. From a prompt, an answer when the form says no
    /// more than an answer can (allow/deny, the prompt's op and program, a
    /// scope AnswerPrompt knows, no other condition, the priority just above
    /// the rule that asked, no comment); otherwise a new rule.
    pub fn submission(&self) -> Submission {
        match &self.origin {
            Origin::Rule(id) => Submission::Update(*id, self.all_fields()),
            Origin::Prompt {
                id,
                event,
                asker_priority,
                asked,
            } => {
                let plain = matches!(self.action.trim(), "allow" | "deny")
                    && self.ops.trim() == event.op
                    && self.proto.trim().is_empty()
                    && self.user.trim().is_empty()
                    && self.comment.is_empty()
                    && self.enabled
                    && self.priority.trim() == asker_priority.saturating_add(1).to_string();
                match self.effective_scope().answer_scope() {
                    Some(scope) if plain => Submission::Answer {
                        id: *id,
                        action: self.action.trim().to_string(),
                        duration: self.duration.trim().to_string(),
                        scope: scope.to_string(),
                    },
                    // A supervisor's question is its word about a call
                    // netevd never saw: it gets an answer, never a rule.
                    _ if *asked => Submission::Refused(
                        "This question comes from a program's supervisor (netev run): only an \
                         answer can be given (allow or deny, a scope, the priority and fields \
                         as filled in), and it goes back to the asker, making no rule here."
                            .into(),
                    ),
                    _ => Submission::Add(self.fields()),
                }
            }
            Origin::New | Origin::Event(_) => Submission::Add(self.fields()),
        }
    }

    /// A one-line description of the event, for the dialog's head.
    pub fn headline(&self) -> String {
        match &self.origin {
            Origin::New => "A new rule".into(),
            Origin::Rule(id) => format!("Rule {id}"),
            Origin::Event(ev) | Origin::Prompt { event: ev, .. } => crate::prompts::describe(ev),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::connect_event;

    fn no_users(_: &str) -> Option<u32> {
        None
    }

    #[test]
    fn an_event_prefills_its_program_op_and_destination() {
        let f = RuleForm::from_event(&connect_event());
        assert_eq!(f.scope, Scope::ExeDestPort);
        let rule = f.validate(&no_users).unwrap();
        assert_eq!(
            rule.summary(),
            "allow connect exe=/usr/bin/curl addr=192.0.2.7/32 ports=8080"
        );
        assert_eq!(f.submission(), Submission::Add(f.fields()));
    }

    #[test]
    fn scopes_set_the_program_address_and_port() {
        let mut f = RuleForm::from_event(&connect_event());
        f.set_scope(Scope::ExePort);
        assert_eq!((f.addr.as_str(), f.ports.as_str()), ("", "8080"));
        f.set_scope(Scope::AnyProgramDestPort);
        assert_eq!(f.exe, "");
        assert_eq!(
            f.validate(&no_users).unwrap().summary(),
            "allow connect addr=192.0.2.7/32 ports=8080"
        );
        f.set_scope(Scope::Exe);
        assert_eq!(f.effective_scope(), Scope::Exe);
        f.addr = "192.0.2.0/24".into();
        assert_eq!(f.effective_scope(), Scope::Custom);
    }

    #[test]
    fn a_plain_answer_to_a_prompt_is_sent_as_an_answer() {
        let mut f = RuleForm::from_prompt(9, &connect_event(), 4, false);
        assert_eq!(f.priority, "5", "checked before the rule that asked");
        f.action = "deny".into();
        f.duration = "5m".into();
        assert_eq!(
            f.submission(),
            Submission::Answer {
                id: 9,
                action: "deny".into(),
                duration: "5m".into(),
                scope: "exe+dest+port".into()
            }
        );
        // a condition an answer cannot carry makes it a rule of its own
        f.addr = "192.0.2.0/24".into();
        let Submission::Add(fields) = f.submission() else {
            panic!("expected AddRule")
        };
        assert!(fields.contains(&("addr".into(), "192.0.2.0/24".into())));
        assert!(fields.contains(&("priority".into(), "5".into())));
    }

    #[test]
    fn mistakes_are_reported_as_the_daemon_reports_them() {
        let mut f = RuleForm::from_event(&connect_event());
        f.ports = "70000".into();
        let err = f.validate(&no_users).unwrap_err().to_string();
        assert_eq!(
            err,
            "ports = \"70000\": expected a port (0-65535) or a range such as 8000-8080"
        );
        f.ports = "80".into();
        f.user = "nosuchuser".into();
        assert!(f
            .validate(&no_users)
            .unwrap_err()
            .to_string()
            .contains("no such user"));
        f.user = String::new();
        f.ops = "socket".into();
        assert!(f
            .validate(&no_users)
            .unwrap_err()
            .to_string()
            .contains("could never match"));
    }

    #[test]
    fn an_edited_rule_updates_every_field() {
        let listed: HashMap<String, String> = [
            ("id", "7"),
            ("action", "deny"),
            ("ops", "connect"),
            ("ports", "53"),
            ("duration", "always"),
            ("priority", "2"),
            ("enabled", "false"),
            ("hits", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut f = RuleForm::from_rule(&listed);
        assert!(!f.enabled);
        f.ports = String::new();
        let Submission::Update(7, fields) = f.submission() else {
            panic!("expected UpdateRule(7)")
        };
        assert!(fields.contains(&("ports".into(), String::new())), "cleared");
        assert!(fields.contains(&("enabled".into(), "false".into())));
    }

    #[test]
    fn a_socket_event_has_no_place_and_scopes_to_the_program() {
        let mut ev = connect_event();
        ev.op = "socket".into();
        ev.raddr.clear();
        ev.rport = 0;
        let f = RuleForm::from_event(&ev);
        assert_eq!(f.scope, Scope::Exe);
        assert_eq!(
            f.validate(&no_users).unwrap().summary(),
            "allow socket exe=/usr/bin/curl"
        );
    }
}
