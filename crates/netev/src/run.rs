//! `netev run -- CMD`: supervised mode (crates/netev-run, docs/run.md).
//! This module only reads options, loads and saves rules, logs events and
//! asks (netevd's prompters over D-Bus when netevd is there, else the
//! terminal); the supervisor is the library's, and so is the terminal
//! handling (netev_run::Terminal: the program gets a pty of its own, so
//! that it cannot answer the questions asked on the real terminal).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netev_event::{Event, Verdict};
use netev_rules::{Action, Rule, RuleSet};
use netev_run::{Answer, Question, Reach};

use crate::bus::BusChoice;

/// What `netev run` was asked to do.
pub struct Options {
    pub rules: Option<String>,
    pub default: Option<Action>,
    pub timeout: Duration,
    pub json: bool,
    pub log: Option<String>,
    pub scope: String,
    pub bus: BusChoice,
    pub cmd: Vec<String>,
}

/// `--timeout`: `30s`, `5m`, `500ms` (netev-units' grammar), or seconds.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let length = match netev_units::parse_length(s) {
        Ok(l) => l.duration(),
        Err(netev_units::LengthError::NoUnit(n)) => Some(Duration::from_secs(n)),
        Err(_) => None,
    };
    length
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?}: expected a length such as 30s, 5m or 500ms"))
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("netev run: {msg}");
    ExitCode::from(125)
}

pub fn run(o: Options) -> ExitCode {
    let rules = match &o.rules {
        None => Vec::new(),
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => return fail(format!("{path}: {e}")),
            };
            match netev_rules::file::parse(
                path,
                &text,
                chrono::Utc::now(),
                &netev_host::users::uid_of,
            ) {
                // Ids as in the file, from 1, so that events name the rule.
                Ok(mut rules) => {
                    for (i, r) in rules.iter_mut().enumerate() {
                        r.id = i as u32 + 1;
                    }
                    rules
                }
                Err(e) => return fail(e),
            }
        }
    };
    let mut rules = rules;
    let session_bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").ok();
    match netev_run::defaults::builtin_rules(session_bus.as_deref()) {
        Ok(b) => rules.extend(b),
        Err(e) => return fail(format!("the built-in rules: {e}")),
    }
    // The program gets a pty of its own whenever there is a terminal: the
    // real one stays ours, for questions.
    let terminal = match netev_run::Terminal::open() {
        Ok(t) => t.map(Arc::new),
        Err(e) => return fail(format!("the terminal: {e}")),
    };
    let policy = netev_run::defaults::policy(o.default.unwrap_or(Action::Allow));
    let mut opts = netev_run::Options::new(RuleSet::active_at(&rules, chrono::Utc::now(), policy));
    opts.ask_timeout = o.timeout;
    // This process has no other children; a program that daemonizes stays
    // below it, so netevd still sees it as part of the asker (AnswerPrompt).
    opts.adopt_orphans = true;
    opts.asker = Some(Arc::new(Askers {
        bus: DbusAsker::start(&o.bus),
        tty: TerminalAsker {
            scope: o.scope.clone(),
            terminal: terminal.clone(),
            ..TerminalAsker::default()
        },
    }));
    opts.on_always = Some(match &o.rules {
        Some(path) => {
            let path = path.clone();
            Arc::new(move |r: &Rule| append_rule(&path, r))
        }
        None => Arc::new(|_: &Rule| {
            Err("there is no rules file to write it to (give one with --rules FILE)".into())
        }),
    });
    // The terminal is raw while the program runs (no \n -> \r\n of its
    // own): our lines on it end in \r\n.
    // SAFETY: isatty on fd 2.
    let nl = if terminal.is_some() && unsafe { libc::isatty(2) } == 1 {
        "\r\n"
    } else {
        "\n"
    };
    opts.on_event = match (&o.log, o.json) {
        (Some(path), _) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => {
                let f = Mutex::new(f);
                Arc::new(move |ev: &Event| {
                    let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = writeln!(f, "{}", ev.to_json());
                })
            }
            Err(e) => return fail(format!("{path}: {e}")),
        },
        // stdout belongs to the program: events go to stderr.
        (None, true) => Arc::new(move |ev: &Event| eprint!("{}{nl}", ev.to_json())),
        (None, false) => Arc::new(move |ev: &Event| {
            if ev.verdict == Verdict::Deny {
                eprint!("netev: denied {}{nl}", ev.to_text());
            }
        }),
    };

    let mut cmd = Command::new(&o.cmd[0]);
    cmd.args(&o.cmd[1..]);
    if let Some(t) = &terminal {
        if let Err(e) = t.attach(&mut cmd) {
            return fail(format!("the terminal: {e}"));
        }
    }
    let child = match netev_run::Supervised::spawn(&mut cmd, opts) {
        Ok(c) => c,
        Err(e) => return fail(format!("{}: {e}", o.cmd[0])),
    };
    // Our copies of the pty's slave: the relay ends when the program's
    // side has closed it.
    drop(cmd);
    let _relay = match terminal.as_deref().map(netev_run::Terminal::start) {
        Some(Err(e)) => {
            // The program runs on its pty with nobody relaying: end it.
            // SAFETY: kill(2) on our child's pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
            let _ = child.wait();
            return fail(format!("the terminal: {e}"));
        }
        r => r.map(Result::ok),
    };
    // Like a shell waiting for its job: ^C and ^\ are for the program (we
    // would otherwise die and leave it without answers). Set after the
    // spawn so the program does not inherit them ignored.
    // SAFETY: setting a signal disposition to SIG_IGN.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    match child.wait() {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(c), _) => ExitCode::from(c as u8),
            (None, Some(s)) => ExitCode::from(128u8.wrapping_add(s as u8)),
            _ => ExitCode::FAILURE,
        },
        Err(e) => fail(e),
    }
}

/// Appends an `always` answer's rule to the rules file (docs/rules.md
/// format), so that the next run decides with it too.
fn append_rule(path: &str, rule: &Rule) -> Result<(), String> {
    let text = netev_rules::file::export(std::slice::from_ref(rule), &netev_host::users::user_name);
    // export() writes a whole file: keep its [[rule]] table only.
    let table = text.find("[[rule]]").map(|i| &text[i..]).unwrap_or(&text);
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    writeln!(f, "\n{table}").map_err(|e| format!("{path}: {e}"))
}

/// netevd's prompters when the daemon answers, else the terminal.
struct Askers {
    bus: Option<DbusAsker>,
    tty: TerminalAsker,
}

impl netev_run::Asker for Askers {
    fn ask(&self, q: &Question) -> Option<Answer> {
        if let Some(bus) = &self.bus {
            match bus.ask(q) {
                Ok(answer) => return answer,
                // not there (any more), or not allowed: the terminal
                Err(e) => eprintln!("\r\nnetev: asking netevd failed ({e}); asking here"),
            }
        }
        self.tty.ask(q)
    }
}

type BusReply = std::sync::mpsc::Sender<Result<(String, String, String), String>>;

/// Asks through netevd's `Ask` (its prompters — `netev prompt`, netev-gtk
/// — answer). One thread runs the bus connection; questions are sent to it.
struct DbusAsker {
    queue: tokio::sync::mpsc::UnboundedSender<(netev_dbus::WireEvent, u32, BusReply)>,
}

impl DbusAsker {
    /// Connects if netevd is on `bus`; `None` when it is not.
    fn start(bus: &BusChoice) -> Option<DbusAsker> {
        let (queue, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(netev_dbus::WireEvent, u32, BusReply)>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let bus = bus.clone();
        std::thread::spawn(move || {
            let rt = crate::bus::runtime();
            rt.block_on(async move {
                let up = tokio::time::timeout(Duration::from_secs(2), async {
                    let (conn, proxy) = crate::bus::connect(&bus).await.ok()?;
                    let dbus = zbus::fdo::DBusProxy::new(&conn).await.ok()?;
                    let name = zbus::names::BusName::try_from(netev_dbus::BUS_NAME).ok()?;
                    dbus.name_has_owner(name)
                        .await
                        .ok()?
                        .then_some((conn, proxy))
                })
                .await
                .ok()
                .flatten();
                let Some((_conn, proxy)) = up else {
                    let _ = ready_tx.send(false);
                    return;
                };
                let _ = ready_tx.send(true);
                while let Some((ev, timeout_ms, reply)) = rx.recv().await {
                    let proxy = proxy.clone();
                    tokio::spawn(async move {
                        let r = proxy.ask(&ev, timeout_ms).await.map_err(|e| e.to_string());
                        let _ = reply.send(r);
                    });
                }
            });
        });
        ready
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or(false)
            .then_some(DbusAsker { queue })
    }

    /// `Ok(None)`: asked, and nobody answered (or the question was
    /// withdrawn); `Err`: could not ask.
    fn ask(&self, q: &Question) -> Result<Option<Answer>, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let ms = q.left().as_millis().min(u32::MAX as u128) as u32;
        self.queue
            .send((netev_dbus::WireEvent::from(&q.event), ms, tx))
            .map_err(|_| "the bus thread stopped".to_string())?;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok((action, duration, scope))) => {
                    return Ok(Answer::from_words(&action, &duration, &scope))
                }
                Ok(Err(e)) => return Err(e),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    // The daemon ends the prompt at the deadline; a caller
                    // that is gone needs no answer.
                    if q.withdrawn() || q.left().is_zero() && rx.try_recv().is_err() {
                        return Ok(None);
                    }
                }
                Err(_) => return Err("the bus thread stopped".into()),
            }
        }
    }
}

/// Asks on the controlling terminal, one question at a time: `y`/`n`
/// allow/deny this destination (--scope) for the rest of the run, `o`/`x`
/// this call only, `a`/`d` always (written to the rules file). No answer
/// before the timeout applies the ask fallback. Without a terminal, nobody
/// is asked. The program is on a pty of its own (netev_run::Terminal):
/// while the question is shown its output waits, keys it could have
/// queued are flushed, and terminal reports are not read as keys.
#[derive(Default)]
struct TerminalAsker {
    one_at_a_time: Mutex<()>,
    /// How far a rule made by an answer reaches (docs/run.md).
    scope: String,
    terminal: Option<Arc<netev_run::Terminal>>,
}

impl TerminalAsker {
    fn ask(&self, q: &Question) -> Option<Answer> {
        let _turn = self.one_at_a_time.lock().unwrap_or_else(|p| p.into_inner());
        let terminal = self.terminal.as_ref()?;
        if q.withdrawn() {
            return None;
        }
        let mut prompt = terminal.prompt();
        prompt.write(&format!(
            "netev: {}\r\n  allow: y this run, o once, a always | deny: n this run, x once, d always ({}s) ",
            q.to_text(),
            q.left().as_secs()
        ));
        let mut said = "no answer";
        let answer = loop {
            let left = q.left().min(Duration::from_millis(200));
            if left.is_zero() {
                break None;
            }
            if q.withdrawn() {
                said = "withdrawn: the caller is gone";
                break None;
            }
            let key = match prompt.read_key(left) {
                Ok(Some(k)) => k,
                Ok(None) => continue,
                Err(_) => break None,
            };
            let (action, reach) = match key {
                // The plain answer covers this destination for the rest of
                // the run (--scope): one question per destination, not per
                // call.
                b'y' | b'Y' => (Action::Allow, Reach::Run { until: None }),
                b'n' | b'N' => (Action::Deny, Reach::Run { until: None }),
                b'o' | b'O' => (Action::Allow, Reach::Once),
                b'x' | b'X' => (Action::Deny, Reach::Once),
                b'a' => (Action::Allow, Reach::Always),
                b'd' => (Action::Deny, Reach::Always),
                _ => continue,
            };
            said = match (action, reach) {
                (Action::Allow, Reach::Once) => "allowed once",
                (Action::Allow, Reach::Always) => "allowed always",
                (Action::Allow, _) => "allowed for this run",
                (_, Reach::Once) => "denied once",
                (_, Reach::Always) => "denied always",
                _ => "denied for this run",
            };
            break Some(Answer {
                action,
                reach,
                scope: self.scope.clone(),
            });
        };
        prompt.write(&format!("{said}\r\n"));
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_timeout("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_timeout("7"), Ok(Duration::from_secs(7)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
