//! Prompts raised and not yet answered: by the kernel path (an `ask` rule
//! decided, the fallback applied) and by `Ask` callers (netev run), each
//! deduplicated by what it is about. Owned by the bus thread.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use netev_event::Event;
use tokio::sync::oneshot;
use zbus::names::OwnedUniqueName;

/// Prompts raised and not yet answered, deduplicated by what they are about.
#[derive(Default)]
pub(crate) struct Prompts {
    next_id: u64,
    pub(crate) pending: HashMap<u64, (Event, Instant)>,
    by_key: HashMap<String, u64>,
    /// Callers of WatchPrompts still on the bus.
    pub(crate) watchers: HashSet<OwnedUniqueName>,
    /// Prompts raised by `Ask`: the callers waiting for the answer. Their
    /// answer makes no rule here (the asker decides with it).
    pub(crate) asks: HashMap<u64, Vec<Waiter>>,
}

/// A caller of `Ask` waiting for the answer to a prompt.
pub(crate) struct Waiter {
    pub(crate) caller: OwnedUniqueName,
    pub(crate) uid: u32,
    pub(crate) answer: oneshot::Sender<(String, String, String)>,
}

/// Most questions one unprivileged user may have pending through `Ask`.
pub(crate) const MAX_ASKS_PER_USER: usize = 32;
/// Longest an `Ask` waits.
pub(crate) const MAX_ASK_WAIT: Duration = Duration::from_secs(600);

impl Prompts {
    /// Records a prompt for `ev` unless one about the same thing is pending;
    /// returns its id if it is new.
    pub fn raise(&mut self, ev: &Event, expires: Instant) -> Option<u64> {
        let key = prompt_key(ev);
        if self.by_key.contains_key(&key) {
            return None;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.by_key.insert(key, id);
        self.pending.insert(id, (ev.clone(), expires));
        Some(id)
    }

    pub(crate) fn take(&mut self, id: u64) -> Option<Event> {
        let (ev, _) = self.pending.remove(&id)?;
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
    pub(crate) fn ask(&mut self, ev: &Event, waiter: Waiter, expires: Instant) -> (u64, bool) {
        let key = ask_key(ev);
        if let Some(id) = self.by_key.get(&key).copied() {
            self.asks.entry(id).or_default().push(waiter);
            return (id, false);
        }
        self.next_id += 1;
        let id = self.next_id;
        self.by_key.insert(key, id);
        self.pending.insert(id, (ev.clone(), expires));
        self.asks.insert(id, vec![waiter]);
        (id, true)
    }

    /// Questions `uid` has pending through `Ask`.
    pub(crate) fn asks_of(&self, uid: u32) -> usize {
        self.asks
            .values()
            .flatten()
            .filter(|w| w.uid == uid)
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
            .filter(|(_, (_, t))| *t <= now)
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
