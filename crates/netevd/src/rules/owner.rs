//! The rules owner: one thread that owns the rule engine, the rules
//! database and the kernel's rule tables, and takes commands with replies.
//!
//! Nothing else holds any of them. The bus sends a change and awaits the
//! reply, which comes once the kernel decides with the new tables ("AddRule
//! returned" means "the next syscall is decided by it"); readers (ListRules,
//! the policy, the export) take the last [`Snapshot`] without waiting for
//! anyone. The capture loop only sends hit counts and never waits: compiling
//! (glob expansion included), SQLite and the kernel table writes (with their
//! membarrier) all happen here, off the capture and bus paths.
//!
//! Each change is compiled once: the compile that checks it against the
//! kernel's capacity gives the tables that are installed.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use netev_bpf::RuleTables;
use netev_rules::{Policy, Rule};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use super::engine::{ChangeError, Engine};
use crate::config::FileSettings;

/// How often timed rules are expired, used-up once rules removed and hit
/// counts written.
const TICK: Duration = Duration::from_secs(1);

/// The rules and the policy as the last change left them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Bumped by every change of the rules or the policy; hit counts alone
    /// do not bump it.
    pub generation: u64,
    /// Every rule, in id order, with its hit count.
    pub rules: Vec<Rule>,
    /// The default policy.
    pub policy: Policy,
}

type Reply<T> = oneshot::Sender<Result<T, ChangeError>>;

/// What the owner can be asked to do.
enum Command {
    Add(Rule, Reply<u32>),
    AddAnswer(Rule, Option<u32>, Reply<u32>),
    Import(Vec<Rule>, bool, Reply<usize>),
    Update(u32, Vec<(String, String)>, Reply<()>),
    SetEnabled(u32, bool, Reply<()>),
    Remove(u32, Reply<()>),
    SetDefault(String, String, Reply<()>),
    /// SIGHUP: the configuration's policy and rules file (None: read the
    /// database again, someone may have changed it with other tools).
    Reload(Box<FileSettings>, Option<Vec<Rule>>, Reply<()>),
    /// Operations decided per rule id since the last batch.
    Hits(HashMap<u32, u64>),
    Stop,
}

/// A handle on the rules owner: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct RulesHandle {
    tx: mpsc::Sender<Command>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
}

/// The owner's thread, to stop at exit.
pub struct RulesOwner {
    tx: mpsc::Sender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RulesOwner {
    /// Installs the engine's rules in the kernel, then starts the owner's
    /// thread. When this returns Ok, the kernel decides with the stored rules.
    pub fn start(
        mut engine: Engine,
        mut tables: Box<dyn RuleTables>,
    ) -> anyhow::Result<(RulesOwner, RulesHandle)> {
        use anyhow::Context;
        let first = engine.tables_now().context("compiling the stored rules")?;
        tables
            .install(&first)
            .context("installing the rules in the kernel")?;
        let (snap_tx, snap_rx) = watch::channel(Arc::new(snapshot(&engine)));
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("netevd-rules".into())
            .spawn(move || {
                Owner {
                    engine,
                    tables,
                    snapshot: snap_tx,
                }
                .run(rx)
            })
            .context("starting the rules thread")?;
        let handle = RulesHandle {
            tx: tx.clone(),
            snapshot: snap_rx,
        };
        Ok((
            RulesOwner {
                tx,
                thread: Some(thread),
            },
            handle,
        ))
    }

    /// Writes the last hit counts and stops the thread (also on drop, so
    /// that every way out of the daemon, an error included, writes them).
    pub fn stop(self) {}
}

impl Drop for RulesOwner {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl RulesHandle {
    async fn call<T>(&self, cmd: impl FnOnce(Reply<T>) -> Command) -> Result<T, ChangeError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(cmd(reply)).map_err(|_| ChangeError::Stopped)?;
        answer.await.map_err(|_| ChangeError::Stopped)?
    }

    /// Adds a rule; returns its id once the kernel decides with it.
    pub async fn add(&self, rule: Rule) -> Result<u32, ChangeError> {
        self.call(|r| Command::Add(rule, r)).await
    }

    /// Adds the rule an answer made, ranked ahead of the rule that asked.
    pub async fn add_answer(&self, rule: Rule, asking: Option<u32>) -> Result<u32, ChangeError> {
        self.call(|r| Command::AddAnswer(rule, asking, r)).await
    }

    /// Adds rules (all or none), replacing every rule if `replace`.
    pub async fn import(&self, rules: Vec<Rule>, replace: bool) -> Result<usize, ChangeError> {
        self.call(|r| Command::Import(rules, replace, r)).await
    }

    /// Changes the named fields of a rule.
    pub async fn update(&self, id: u32, fields: Vec<(String, String)>) -> Result<(), ChangeError> {
        self.call(|r| Command::Update(id, fields, r)).await
    }

    /// Enables or disables a rule.
    pub async fn set_enabled(&self, id: u32, enabled: bool) -> Result<(), ChangeError> {
        self.call(|r| Command::SetEnabled(id, enabled, r)).await
    }

    /// Removes a rule.
    pub async fn remove(&self, id: u32) -> Result<(), ChangeError> {
        self.call(|r| Command::Remove(id, r)).await
    }

    /// Sets the default for an op, "all", or the ask fallback.
    pub async fn set_default(&self, op: String, action: String) -> Result<(), ChangeError> {
        self.call(|r| Command::SetDefault(op, action, r)).await
    }

    /// Applies a reloaded configuration's policy and rules. Returns at once;
    /// the outcome arrives on the receiver (the capture loop polls it and
    /// never waits).
    pub fn reload(
        &self,
        file: FileSettings,
        rules: Option<Vec<Rule>>,
    ) -> oneshot::Receiver<Result<(), ChangeError>> {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::SendError(Command::Reload(_, _, reply))) =
            self.tx.send(Command::Reload(Box::new(file), rules, reply))
        {
            let _ = reply.send(Err(ChangeError::Stopped));
        }
        answer
    }

    /// Hands over hit counts; never waits.
    pub fn hits(&self, hits: HashMap<u32, u64>) {
        if !hits.is_empty() {
            let _ = self.tx.send(Command::Hits(hits));
        }
    }

    /// The rules and policy now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// A receiver that sees every new snapshot (the bus announces
    /// RulesChanged when its generation moves).
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }
}

fn snapshot(engine: &Engine) -> Snapshot {
    Snapshot {
        generation: engine.generation(),
        rules: engine.rules().to_vec(),
        policy: *engine.policy(),
    }
}

struct Owner {
    engine: Engine,
    tables: Box<dyn RuleTables>,
    snapshot: watch::Sender<Arc<Snapshot>>,
}

impl Owner {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Command::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(cmd) => self.handle(cmd),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    next_tick = Instant::now() + TICK;
                    self.tick();
                }
            }
        }
        // Hit counts still in hand are written before netevd goes.
        while let Ok(Command::Hits(h)) = rx.try_recv() {
            self.count(h);
        }
        self.engine.flush_hits();
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Add(rule, reply) => {
                let r = self.engine.add(rule);
                self.reply(reply, r);
            }
            Command::AddAnswer(rule, asking, reply) => {
                let r = self.engine.add_answer(rule, asking);
                self.reply(reply, r);
            }
            Command::Import(rules, replace, reply) => {
                let r = self.engine.add_many(rules, replace);
                self.reply(reply, r);
            }
            Command::Update(id, fields, reply) => {
                let r = self.engine.update(id, &fields);
                self.reply(reply, r);
            }
            Command::SetEnabled(id, enabled, reply) => {
                let r = self.engine.set_enabled(id, enabled);
                self.reply(reply, r);
            }
            Command::Remove(id, reply) => {
                let r = self.engine.remove(&[id]);
                self.reply(reply, r);
            }
            Command::SetDefault(op, action, reply) => {
                let r = self.engine.set_default(&op, &action);
                self.reply(reply, r);
            }
            Command::Reload(file, rules, reply) => {
                let r = self.reload(&file, rules);
                self.reply(reply, r);
            }
            Command::Hits(h) => self.count(h),
            Command::Stop => unreachable!("handled by run"),
        }
    }

    /// Everything is checked before anything changes: a rules file that
    /// does not fit leaves the running rules as they are.
    fn reload(&mut self, file: &FileSettings, rules: Option<Vec<Rule>>) -> Result<(), ChangeError> {
        if rules.is_none() {
            self.engine.reread().map_err(ChangeError::Store)?;
        }
        self.engine.apply_config(file, rules)
    }

    /// Installs what a change compiled, then answers: a change is
    /// acknowledged only once the kernel decides with it.
    fn reply<T>(&mut self, reply: Reply<T>, result: Result<T, ChangeError>) {
        let result = result.and_then(|v| self.install().map(|()| v));
        let _ = reply.send(result);
    }

    /// Installs the tables of the last change, if any, and publishes the
    /// rules as they are now.
    fn install(&mut self) -> Result<(), ChangeError> {
        let result = match self.engine.take_tables() {
            Some(t) => match self.tables.install(&t) {
                Ok(()) => {
                    info!(generation = self.engine.generation(), "rules installed");
                    Ok(())
                }
                Err(e) => {
                    warn!("cannot install the new rules (the previous ones stay in force): {e}");
                    Err(ChangeError::Kernel(e.to_string()))
                }
            },
            None => Ok(()),
        };
        self.publish();
        result
    }

    fn publish(&self) {
        self.snapshot.send_replace(Arc::new(snapshot(&self.engine)));
    }

    fn count(&mut self, hits: HashMap<u32, u64>) {
        for (id, n) in hits {
            self.engine.count_hit(id, n);
        }
    }

    /// Once a second: used-up once rules and expired timed rules removed
    /// (also in the kernel), hit counts written.
    fn tick(&mut self) {
        match self.tables.consumed_once() {
            Ok(ids) if !ids.is_empty() => {
                if self.engine.consume(&ids) {
                    info!(?ids, "once rules used up and removed");
                }
            }
            Ok(_) => {}
            Err(e) => warn!("cannot read once-rule state: {e}"),
        }
        if self.engine.expire(Utc::now()) {
            info!("timed rules expired and were removed");
        }
        let had_hits = self.engine.flush_hits();
        if self.engine.has_tables() {
            let _ = self.install();
        } else if had_hits {
            self.publish();
        }
    }
}
