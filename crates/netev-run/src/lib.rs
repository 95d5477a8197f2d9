//! netev's supervised mode: run a program so that every network syscall of
//! it, its threads and its children waits for a verdict from the rules (or
//! from a person) before it happens.
//!
//! The child installs a seccomp filter that sends socket, socketpair, bind,
//! listen, connect, accept, accept4, sendto (with an address), sendmsg and
//! sendmmsg to this supervisor (`SECCOMP_RET_USER_NOTIF`) and allows every
//! other syscall in the kernel. For each call the supervisor reads who made
//! it (/proc) and what it is about (the caller's memory, the caller's
//! socket through `pidfd_getfd`), asks the same [`RuleSet`] netevd uses,
//! and answers. Calls whose decision depends on an address or a socket are
//! **performed by the supervisor** on its duplicate of the caller's socket,
//! with its own copy of the address, so that a caller rewriting the address
//! after the check gains nothing. docs/run.md has the details and limits.
//!
//! ```no_run
//! use std::process::Command;
//! use netev_rules::{fields, Policy, RuleSet};
//!
//! let deny = fields::rule_from_fields(
//!     [("action", "deny"), ("ops", "connect"), ("ports", "25")],
//!     chrono::Utc::now(),
//!     &|_| None,
//! ).unwrap();
//! let mut opts = netev_run::Options::new(RuleSet::new(vec![deny], Policy::default()));
//! opts.on_event = std::sync::Arc::new(|ev| eprintln!("{}", ev.to_json()));
//! let status = netev_run::run(Command::new("curl").arg("smtp://example.org"), opts).unwrap();
//! println!("exited: {status}");
//! ```
#![deny(missing_docs)]

mod addr;
mod callers;
pub mod defaults;
pub mod filter;
mod proc;
pub use proc::user_name;
mod spawn;
mod supervise;
mod sys;
mod tty;
pub use tty::{Prompt, Running, Terminal};

use std::io;
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netev_event::Event;
use netev_rules::{Action, Rule, RuleSet};

/// Where events go: called once per decided call, before the caller gets
/// its answer. Keep it quick: the caller waits.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// Where `always` answers go: called with the rule an answer made, which
/// already decides the rest of this run; an error is reported and the rule
/// still applies to this run.
pub type RuleSink = Arc<dyn Fn(&Rule) -> Result<(), String> + Send + Sync>;

/// A call waiting for a person's decision.
pub struct Question {
    /// The call (its verdict and rule are not set yet).
    pub event: Event,
    /// When the ask fallback applies if nobody has answered.
    pub deadline: Instant,
    withdrawn: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl Question {
    /// Whether the question is moot: the calling thread is gone (killed,
    /// exited, or its call was interrupted). Askers should stop asking.
    pub fn withdrawn(&self) -> bool {
        (self.withdrawn)()
    }

    /// The call as one line of text, `ask` in the verdict's place.
    pub fn to_text(&self) -> String {
        self.event.to_text_asking()
    }

    /// Time left before the deadline.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// How far an answer reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// This call only.
    Once,
    /// Every matching call for the rest of this run (or until `until`).
    Run {
        /// A time limit, for timed answers (`5m`).
        until: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Every matching call from now on: the rule is added to this run and
    /// handed to [`Options::on_always`] (`netev run` appends it to its
    /// rules file).
    Always,
}

/// A person's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Allow or deny (an `ask` answer counts as no answer).
    pub action: Action,
    /// How far it reaches.
    pub reach: Reach,
    /// For answers that become rules: `exe`, `exe+dest`, `exe+port` or
    /// `exe+dest+port` (as netevd's `AnswerPrompt`); parts the call does
    /// not have (a socket() has no address) are left out.
    pub scope: String,
}

impl Answer {
    /// Reads netevd's answer spelling: `action` allow|deny; `duration`
    /// once, until-restart (this run), always, or a length such as `5m`.
    pub fn from_words(action: &str, duration: &str, scope: &str) -> Option<Answer> {
        let action: Action = action.parse().ok()?;
        if action == Action::Ask {
            return None;
        }
        let reach = match duration {
            "once" => Reach::Once,
            "until-restart" => Reach::Run { until: None },
            "always" => Reach::Always,
            d => match netev_rules::Duration::parse(d, chrono::Utc::now()).ok()? {
                netev_rules::Duration::Until(t) => Reach::Run { until: Some(t) },
                _ => return None,
            },
        };
        Some(Answer {
            action,
            reach,
            scope: scope.to_string(),
        })
    }
}

/// Someone who answers `ask` decisions.
pub trait Asker: Send + Sync {
    /// Answers `q`, or `None` (no answer: the rule set's ask fallback
    /// applies). Called on a thread of its own; calls may overlap. The
    /// supervisor stops waiting at the deadline or when the question is
    /// withdrawn, whether or not this returns.
    fn ask(&self, q: &Question) -> Option<Answer>;
}

/// How to supervise.
#[derive(Clone)]
pub struct Options {
    /// The rules and the default policy; `ask` waits for [`Options::asker`],
    /// and without one (or on timeout) the policy's ask fallback applies.
    pub rules: RuleSet,
    /// Who answers `ask`.
    pub asker: Option<Arc<dyn Asker>>,
    /// How long to wait for an answer.
    pub ask_timeout: Duration,
    /// Every decided call, as an event with `verdict`, `rule` and, for
    /// calls the supervisor performed, `ret`.
    pub on_event: EventSink,
    /// Rules made by `always` answers.
    pub on_always: Option<RuleSink>,
    /// Keep the program's whole tree below this process: make it the
    /// subreaper of its descendants (`PR_SET_CHILD_SUBREAPER`), so a
    /// process that daemonizes (double fork, `setsid`) is reparented here
    /// and not to pid 1, and reap every child this process has. netevd
    /// refuses answers to a question from the asker's tree by walking
    /// parents (docs/run.md): without it, a daemonized descendant would
    /// be outside. **Only for a process with no other children** (the
    /// `netev` CLI): they would be reaped too.
    pub adopt_orphans: bool,
}

impl Options {
    /// These rules, nobody to ask, a 30 s ask timeout, events dropped.
    pub fn new(rules: RuleSet) -> Options {
        Options {
            rules,
            asker: None,
            ask_timeout: Duration::from_secs(30),
            on_event: Arc::new(|_| {}),
            on_always: None,
            adopt_orphans: false,
        }
    }
}

/// A child running under supervision.
pub struct Supervised {
    pid: u32,
    supervisor: Arc<supervise::Supervisor>,
    /// The child's exit status, once reaped.
    exited: std::sync::mpsc::Receiver<io::Result<ExitStatus>>,
    /// The child, for a kill that must not reach a process that took its
    /// pid once it was reaped (by the reaper, which may already have).
    pidfd: Option<std::os::fd::OwnedFd>,
}

impl Supervised {
    /// Starts `cmd` (its program, arguments, environment and stdio as set)
    /// under the filter. Nothing is decided until [`Supervised::wait`]
    /// serves: the child's first network call waits for it.
    ///
    /// Makes **this whole process** non-dumpable first
    /// (`PR_SET_DUMPABLE 0`, kept afterwards): the program runs as the same
    /// user, and a dumpable supervisor of its own uid is one it could
    /// ptrace, read (`process_vm_readv`, `/proc/<pid>/mem`) or take the
    /// listener from (`pidfd_getfd`) and answer its own calls with.
    pub fn spawn(cmd: &mut Command, opts: Options) -> io::Result<Supervised> {
        sys::set_non_dumpable()?;
        let adopt = opts.adopt_orphans;
        if adopt {
            sys::set_child_subreaper()?;
        }
        let (child, listener) = spawn::spawn(cmd)?;
        let pid = child.id();
        // Not reaped yet (the waiter starts below): this names the child.
        let pidfd = sys::pidfd_open_process(pid).ok();
        let (tx, exited) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut child: Child = child;
            if adopt {
                sys::reap_children(child.id(), tx)
            } else {
                let _ = tx.send(child.wait());
            }
        });
        Ok(Supervised {
            pid,
            supervisor: Arc::new(supervise::Supervisor::new(listener, opts)),
            exited,
            pidfd,
        })
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Serves the child's calls until no supervised process is left (the
    /// child and every descendant have exited), then returns the child's
    /// exit status. Descendants that outlive the child keep being served.
    pub fn wait(self) -> io::Result<ExitStatus> {
        let served = self.supervisor.serve();
        if served.is_err() {
            match &self.pidfd {
                // ESRCH: it has exited already
                Some(fd) => {
                    let _ = sys::pidfd_kill(fd);
                }
                // SAFETY: kill(2) on our child's pid. Not reached where
                // the listener was taken: pidfd_getfd (5.6) came after
                // pidfd_open (5.3).
                None => unsafe {
                    libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
                },
            }
        }
        let status = self
            .exited
            .recv()
            .map_err(|_| io::Error::other("the waiter thread ended without the child's status"))?;
        served?;
        status
    }
}

/// Runs `cmd` under supervision to the end: [`Supervised::spawn`] then
/// [`Supervised::wait`].
pub fn run(cmd: &mut Command, opts: Options) -> io::Result<ExitStatus> {
    Supervised::spawn(cmd, opts)?.wait()
}
