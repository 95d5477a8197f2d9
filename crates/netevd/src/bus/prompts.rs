//! Prompts raised and not yet answered: by the kernel path (an `ask` rule
//! decided, the fallback applied) and by `Ask` callers (netev run), each
//! deduplicated by what it is about, and each source bounded (docs/dbus.md,
//! "Limits"). Owned by the bus thread.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use netev_event::Event;
use netev_host::proc_status::ProcId;
use tokio::sync::oneshot;
use zbus::names::OwnedUniqueName;

/// Where a prompt came from, and so how much of it netevd vouches for. On
/// the bus as the Prompt signal's `origin` (docs/dbus.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The kernel decided `ask` on a call netevd saw: all of it is true.
    Kernel,
    /// Asked through `Ask`: netevd read the process (pid, uid, user, exe,
    /// command line) from /proc itself; the call (op, addresses) is the
    /// asker's word.
    Ask,
    /// Asked through `Ask` by root or a member of the access group about a
    /// process netevd cannot read (gone, or in another pid namespace):
    /// everything in it is the asker's word.
    AskUnverified,
}

impl Origin {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Origin::Kernel => netev_dbus::origin::KERNEL,
            Origin::Ask => netev_dbus::origin::ASK,
            Origin::AskUnverified => netev_dbus::origin::ASK_UNVERIFIED,
        }
    }
}

/// Prompts raised and not yet answered, deduplicated by what they are about.
#[derive(Default)]
pub(crate) struct Prompts {
    next_id: u64,
    pub(crate) pending: HashMap<u64, Pending>,
    by_key: HashMap<String, u64>,
    /// Callers of WatchPrompts still on the bus.
    pub(crate) watchers: HashSet<OwnedUniqueName>,
    /// Prompts raised by `Ask`: the callers waiting for the answer. Their
    /// answer makes no rule here (the asker decides with it).
    pub(crate) asks: HashMap<u64, Vec<Waiter>>,
    /// New `Ask` questions per unprivileged uid: a token bucket each.
    rates: HashMap<u32, Bucket>,
    /// Kernel-path prompts not raised because [`MAX_KERNEL_PROMPTS`] were
    /// pending (the fallback applied to them as to every ask).
    pub(crate) kernel_refused: u64,
}

/// A prompt waiting for its answer.
pub(crate) struct Pending {
    pub(crate) ev: Event,
    pub(crate) expires: Instant,
    pub(crate) origin: Origin,
    /// The processes whose trees may not answer it: every `Ask` caller
    /// that waits for it (netev run's supervisor: its whole supervised
    /// program). Empty for the kernel's prompts, which polkit guards: the
    /// process a kernel prompt is about may be sshd, a terminal or pid 1,
    /// below which every prompter runs.
    pub(crate) askers: Vec<ProcId>,
}

/// A caller of `Ask` waiting for the answer to a prompt.
pub(crate) struct Waiter {
    pub(crate) caller: OwnedUniqueName,
    pub(crate) uid: u32,
    /// The caller's process.
    pub(crate) process: ProcId,
    /// Whether the caller is root or in the access group (not counted
    /// against the per-user limits).
    pub(crate) privileged: bool,
    pub(crate) answer: oneshot::Sender<(String, String, String)>,
}

/// Most questions one unprivileged user may have pending through `Ask`.
pub(crate) const MAX_ASKS_PER_USER: usize = 32;
/// Most questions all unprivileged users together may have pending.
pub(crate) const MAX_ASKS_UNPRIVILEGED: usize = 256;
/// Most prompts pending in all (kernel and Ask, privileged askers too).
pub(crate) const MAX_PENDING: usize = 1024;
/// Most prompts the kernel path may have pending; beyond, an `ask` decided
/// in the kernel raises no prompt (its fallback applied anyway) and is
/// counted.
pub(crate) const MAX_KERNEL_PROMPTS: usize = 512;
/// New questions an unprivileged user may ask at once, and then per second.
pub(crate) const ASK_BURST: f64 = 32.0;
pub(crate) const ASK_PER_SECOND: f64 = 2.0;
/// Longest an `Ask` waits.
pub(crate) const MAX_ASK_WAIT: Duration = Duration::from_secs(600);
/// Shortest an `Ask` waits: a question nobody can answer in time only
/// costs the prompters a Prompt and a PromptClosed signal.
pub(crate) const MIN_ASK_WAIT: Duration = Duration::from_millis(500);
/// Most bytes of any one text field of an `Ask`'s event (a path is at
/// most 4096 bytes on Linux).
pub(crate) const MAX_ASK_FIELD: usize = 4096;
/// Most prompts in WatchPrompts' reply; the rest follow as Prompt signals
/// to the new prompter, so the reply stays far below any bus's message
/// limit.
pub(crate) const MAX_WATCH_REPLY: usize = 64;

/// A token bucket: `tokens` left at `at`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Why a prompt was not raised.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The caller has too many questions pending.
    PerUser,
    /// Unprivileged callers together have too many pending.
    Unprivileged,
    /// Too many prompts pending in all.
    Total,
    /// The caller asks too fast.
    Rate,
}

impl Refused {
    /// What the caller is told (org.freedesktop.DBus.Error.LimitsExceeded).
    pub(crate) fn message(&self, uid: u32) -> String {
        match self {
            Refused::PerUser => format!(
                "uid {uid} already has {MAX_ASKS_PER_USER} questions pending: wait for their answers"
            ),
            Refused::Unprivileged => format!(
                "{MAX_ASKS_UNPRIVILEGED} questions from unprivileged users are pending: try again later"
            ),
            Refused::Total => {
                format!("{MAX_PENDING} prompts are pending: try again once some are answered")
            }
            Refused::Rate => format!(
                "uid {uid} asks faster than {ASK_PER_SECOND} questions a second (after a burst of \
                 {ASK_BURST}): slow down"
            ),
        }
    }
}

impl Prompts {
    /// Records a prompt for `ev` unless one about the same thing is pending;
    /// returns its id if it is new.
    /// Beyond [`MAX_KERNEL_PROMPTS`] (or [`MAX_PENDING`]) pending, nothing is
    /// raised and the refusal is counted in `kernel_refused`.
    pub fn raise(&mut self, ev: &Event, expires: Instant) -> Option<u64> {
        let key = prompt_key(ev);
        if self.by_key.contains_key(&key) {
            return None;
        }
        let kernel = self.pending.len().saturating_sub(self.asks.len());
        if kernel >= MAX_KERNEL_PROMPTS || self.pending.len() >= MAX_PENDING {
            self.kernel_refused += 1;
            return None;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.by_key.insert(key, id);
        self.pending.insert(
            id,
            Pending {
                ev: ev.clone(),
                expires,
                origin: Origin::Kernel,
                askers: Vec::new(),
            },
        );
        Some(id)
    }

    /// Whether an `Ask` by `uid` may wait for an answer now: a new question
    /// takes one from the caller's rate; one that `joins` a pending
    /// question raises nothing new, but its waiter still counts against the
    /// caller's pending questions. Root and the access group are bound by
    /// the total alone.
    pub(crate) fn admit_ask(
        &mut self,
        uid: u32,
        privileged: bool,
        joins: bool,
        now: Instant,
    ) -> Result<(), Refused> {
        if !joins && self.pending.len() >= MAX_PENDING {
            return Err(Refused::Total);
        }
        if privileged {
            return Ok(());
        }
        if self.asks_of(uid) >= MAX_ASKS_PER_USER {
            return Err(Refused::PerUser);
        }
        if joins {
            return Ok(());
        }
        let unprivileged = self
            .asks
            .values()
            .flatten()
            .filter(|w| !w.privileged)
            .count();
        if unprivileged >= MAX_ASKS_UNPRIVILEGED {
            return Err(Refused::Unprivileged);
        }
        let b = self.rates.entry(uid).or_insert(Bucket {
            tokens: ASK_BURST,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * ASK_PER_SECOND;
        b.tokens = (b.tokens + refill).min(ASK_BURST);
        b.at = now;
        if b.tokens < 1.0 {
            return Err(Refused::Rate);
        }
        b.tokens -= 1.0;
        // full buckets say nothing: forget them, so the map stays small
        if self.rates.len() > 4096 {
            self.rates.retain(|_, b| b.tokens < ASK_BURST);
        }
        Ok(())
    }

    /// The prompts pending, oldest first, with their origin.
    pub(crate) fn listing(&self) -> Vec<(u64, Event, Origin)> {
        let mut all: Vec<(u64, Event, Origin)> = self
            .pending
            .iter()
            .map(|(id, p)| (*id, p.ev.clone(), p.origin))
            .collect();
        all.sort_by_key(|(id, _, _)| *id);
        all
    }

    pub(crate) fn take(&mut self, id: u64) -> Option<Event> {
        let ev = self.pending.remove(&id)?.ev;
        let key = if self.asks.remove(&id).is_some() {
            ask_key(&ev)
        } else {
            prompt_key(&ev)
        };
        self.by_key.remove(&key);
        Some(ev)
    }

    /// Joins the pending `Ask` prompt about the same thing as `ev`, or
    /// raises one; returns its id and whether it is new.
    pub(crate) fn ask(
        &mut self,
        ev: &Event,
        origin: Origin,
        waiter: Waiter,
        expires: Instant,
    ) -> (u64, bool) {
        let key = ask_key(ev);
        if let Some(id) = self.by_key.get(&key).copied() {
            if let Some(p) = self.pending.get_mut(&id) {
                if !p.askers.contains(&waiter.process) {
                    p.askers.push(waiter.process);
                }
            }
            self.asks.entry(id).or_default().push(waiter);
            return (id, false);
        }
        self.next_id += 1;
        let id = self.next_id;
        self.by_key.insert(key, id);
        self.pending.insert(
            id,
            Pending {
                ev: ev.clone(),
                expires,
                origin,
                askers: vec![waiter.process],
            },
        );
        self.asks.insert(id, vec![waiter]);
        (id, true)
    }

    /// Whether an `Ask` about `ev` would join a question already pending
    /// (no new prompt: not counted against the limits).
    pub(crate) fn joins_pending(&self, ev: &Event) -> bool {
        self.by_key.contains_key(&ask_key(ev))
    }

    /// Questions `uid` has pending through `Ask`.
    pub(crate) fn asks_of(&self, uid: u32) -> usize {
        self.asks
            .values()
            .flatten()
            .filter(|w| w.uid == uid && !w.privileged)
            .count()
    }

    /// Forgets the waiters of a caller that left the bus (or gave up);
    /// returns the prompts nobody waits for any more, now closed.
    pub(crate) fn withdraw(&mut self, gone: impl Fn(&Waiter) -> bool) -> Vec<u64> {
        let mut empty = Vec::new();
        for (id, waiters) in self.asks.iter_mut() {
            waiters.retain(|w| !gone(w) && !w.answer.is_closed());
            if waiters.is_empty() {
                empty.push(*id);
            }
        }
        for id in &empty {
            self.take(*id);
        }
        empty
    }

    /// Removes prompts past their time; returns their ids.
    pub fn expire(&mut self, now: Instant) -> Vec<u64> {
        let gone: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.take(*id);
        }
        gone
    }
}

/// Same program, user, op, protocol and destination: one prompt.
fn prompt_key(ev: &Event) -> String {
    let (addr, port) = if netev_rules::op_uses_remote(ev.op) {
        (ev.raddr, ev.rport)
    } else {
        (ev.laddr, ev.lport)
    };
    format!(
        "{:?}|{}|{}|{:?}|{:?}|{:?}",
        ev.exe,
        ev.uid,
        ev.op.name(),
        ev.proto,
        addr,
        port
    )
}

/// `Ask` prompts are deduplicated among themselves, apart from the
/// kernel's: answering one decides the asking program's calls, not a rule.
fn ask_key(ev: &Event) -> String {
    format!("ask|{}|{}", ev.pid, prompt_key(ev))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_event::Op;

    fn ev(pid: u32, port: u16) -> Event {
        let mut e = Event::new(Op::Connect);
        e.pid = pid;
        e.uid = 1000;
        e.exe = Some("/usr/bin/curl".into());
        e.raddr = Some("192.0.2.1".parse().unwrap());
        e.rport = Some(port);
        e
    }

    fn waiter(uid: u32, privileged: bool) -> Waiter {
        Waiter {
            caller: OwnedUniqueName::try_from(":1.7").unwrap(),
            uid,
            process: ProcId {
                pid: 1,
                start_ticks: 1,
            },
            privileged,
            answer: oneshot::channel().0,
        }
    }

    #[test]
    fn the_asking_processes_are_kept_with_the_prompt() {
        let mut p = Prompts::default();
        let later = Instant::now() + Duration::from_secs(60);
        let id = p.raise(&ev(std::process::id(), 1), later).unwrap();
        assert!(p.pending[&id].askers.is_empty(), "the kernel's: none");
        let by = |pid| Waiter {
            process: ProcId {
                pid,
                start_ticks: 1,
            },
            ..waiter(1000, false)
        };
        let (id, new) = p.ask(&ev(10, 3), Origin::Ask, by(7), later);
        assert!(new);
        let (same, new) = p.ask(&ev(10, 3), Origin::Ask, by(8), later);
        assert_eq!((same, new), (id, false));
        let (same, _) = p.ask(&ev(10, 3), Origin::Ask, by(8), later);
        assert_eq!(same, id);
        let pids: Vec<u32> = p.pending[&id].askers.iter().map(|a| a.pid).collect();
        assert_eq!(pids, [7, 8], "both callers, once each");
    }

    #[test]
    fn kernel_prompts_are_deduplicated_and_capped() {
        let mut p = Prompts::default();
        let later = Instant::now() + Duration::from_secs(60);
        assert!(p.raise(&ev(1, 1), later).is_some());
        assert!(
            p.raise(&ev(1, 1), later).is_none(),
            "the same question once"
        );
        assert_eq!(p.kernel_refused, 0);
        for port in 2..=MAX_KERNEL_PROMPTS as u16 {
            assert!(p.raise(&ev(1, port), later).is_some());
        }
        assert!(p.raise(&ev(1, 60000), later).is_none());
        assert_eq!(p.kernel_refused, 1, "the one beyond the cap is counted");
        assert_eq!(p.pending.len(), MAX_KERNEL_PROMPTS);
    }

    #[test]
    fn an_unprivileged_asker_is_limited_in_number_and_rate() {
        let mut p = Prompts::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        for i in 0..MAX_ASKS_PER_USER as u16 {
            p.admit_ask(1000, false, false, now).unwrap();
            p.ask(&ev(10, i), Origin::Ask, waiter(1000, false), later);
        }
        assert_eq!(p.admit_ask(1000, false, false, now), Err(Refused::PerUser));
        assert_eq!(
            p.admit_ask(1000, false, true, now),
            Err(Refused::PerUser),
            "joining a question still counts"
        );
        // another user: its own bucket, already drained by nobody
        assert_eq!(p.admit_ask(1001, false, false, now), Ok(()));
        // root is bound by the total only
        assert_eq!(p.admit_ask(0, true, false, now), Ok(()));
        // the rate: a burst, then ASK_PER_SECOND
        let mut q = Prompts::default();
        for _ in 0..ASK_BURST as usize {
            q.admit_ask(1002, false, false, now).unwrap();
        }
        assert_eq!(q.admit_ask(1002, false, false, now), Err(Refused::Rate));
        assert_eq!(
            q.admit_ask(1002, false, false, now + Duration::from_secs(1)),
            Ok(()),
            "a second later there is room again"
        );
        assert!(Refused::Rate.message(1002).contains("slow down"));
    }

    #[test]
    fn the_total_bounds_everyone() {
        let mut p = Prompts::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        for i in 0..MAX_PENDING as u32 {
            p.ask(&ev(i + 100, 1), Origin::Ask, waiter(0, true), later);
        }
        assert_eq!(p.admit_ask(0, true, false, now), Err(Refused::Total));
        assert!(p.raise(&ev(1, 1), later).is_none());
        assert_eq!(p.listing().len(), MAX_PENDING);
        assert_eq!(p.listing()[0].0, 1, "oldest first");
    }
}
