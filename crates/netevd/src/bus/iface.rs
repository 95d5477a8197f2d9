//! `org.netev.Daemon1` as the bus sees it: each method checks who calls,
//! then hands the work to whoever owns it (the rules owner, the prompts,
//! the subscribers, the event store).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use netev_dbus::{Filter, WireEvent, WireHook, WireStatus};
use netev_event::Event;
use tokio::sync::oneshot;
use tracing::info;
use zbus::message::Header;
use zbus::names::{BusName, OwnedUniqueName};
use zbus::object_server::SignalEmitter;
use zbus::{fdo, Connection, OwnedVariant};

use super::access::Action::{AnswerPrompts, ChangeRules};
use super::access::{
    authorize, authorize_change, caller_process, not_the_askers, own_process, Action,
};
use super::prompts::{Origin, Waiter, MAX_ASK_FIELD, MAX_ASK_WAIT, MAX_WATCH_REPLY, MIN_ASK_WAIT};
use super::subscribers::{forget, Subscriber};
use super::{Control, State, MAX_SUBSCRIBERS};
use netev_host::users::{uid_of, user_name};

use crate::rules::{rule_for_answer, ChangeError};

pub(crate) struct DaemonIface {
    pub(crate) state: Arc<State>,
}

impl DaemonIface {
    /// Refuses the call unless its sender is root or in the access group.
    async fn authorize(&self, conn: &Connection, hdr: &Header<'_>, what: &str) -> fdo::Result<()> {
        authorize(&self.state.access_group, conn, hdr, what).await
    }

    /// Refuses a change unless its sender is root, or in the access group
    /// and authorized by polkit for `action`.
    async fn change(
        &self,
        c: &Connection,
        h: &Header<'_>,
        what: &str,
        a: Action,
    ) -> fdo::Result<()> {
        authorize_change(&self.state.access_group, c, h, what, a).await
    }
}

impl DaemonIface {
    /// The processes whose trees may not answer prompt `id`, if pending.
    fn askers(&self, id: u64) -> Option<Vec<netev_host::proc_status::ProcId>> {
        let prompts = self.state.prompts.lock().expect("prompts lock");
        prompts.pending.get(&id).map(|p| p.askers.clone())
    }

    /// Runs a query on a read connection of its own, off the bus thread.
    async fn with_store<T: Send + 'static>(
        &self,
        q: impl FnOnce(&mut dyn netev_store::Store) -> netev_store::Result<T> + Send + 'static,
    ) -> fdo::Result<T> {
        let Some(target) = self.state.store.clone() else {
            return Err(fdo::Error::NotSupported(
                "netevd stores no events (started with --store none)".into(),
            ));
        };
        // A thread of its own, outside any runtime: the PostgreSQL engine
        // blocks on a runtime of its own.
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || {
            let res = netev_store::open_for_queries(&target).and_then(|mut s| q(s.as_mut()));
            let _ = tx.send(res);
        });
        rx.await
            .map_err(|_| fdo::Error::Failed("the query thread died".into()))?
            .map_err(|e| fdo::Error::Failed(format!("the event store: {e}")))
    }
}

#[zbus::interface(name = "org.netev.Daemon1")]
impl DaemonIface {
    /// Backend, hooks, counters, uptime, version. Allowed to everyone.
    async fn get_status(&self) -> WireStatus {
        let mut status = WireStatus::from(&*self.state.status.borrow());
        let prompts = self.state.prompts.lock().expect("prompts lock");
        status
            .counters
            .insert("prompts_pending".into(), prompts.pending.len() as u64);
        status
            .counters
            .insert("prompts_refused".into(), prompts.kernel_refused);
        status
    }

    /// Starts or replaces the caller's subscription.
    async fn subscribe(
        &self,
        filter: HashMap<String, OwnedVariant>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        self.authorize(conn, &hdr, "subscribing to events").await?;
        let filter =
            Filter::from_dict(filter).map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        let sender = hdr.sender().expect("authorized callers have a sender");
        let mut subs = self.state.subs.lock().expect("subscribers lock");
        let key = OwnedUniqueName::from(sender.to_owned());
        if !subs.contains_key(&key) && subs.len() >= MAX_SUBSCRIBERS {
            return Err(fdo::Error::LimitsExceeded(format!(
                "netevd serves at most {MAX_SUBSCRIBERS} subscribers"
            )));
        }
        info!(target: "netevd::bus", subscriber = %sender, ?filter, "subscribed");
        subs.insert(key, Subscriber::new(filter, self.state.counters.dropped()));
        self.state
            .counters
            .subscribers
            .store(subs.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Stored events matching `filter` (text pairs: since, until, exe, op,
    /// verdict, dest, port, host, limit), the newest `limit` (default 100),
    /// oldest first, each with the host that captured it.
    async fn query_events(
        &self,
        filter: HashMap<String, String>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<(String, WireEvent)>> {
        self.authorize(conn, &hdr, "querying stored events").await?;
        let filter = netev_store::Filter::from_pairs(
            filter.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            chrono::Utc::now(),
        )
        .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        let rows = self.with_store(move |s| s.query(&filter)).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.host, WireEvent::from(r.event)))
            .collect())
    }

    /// The busiest exes, destinations, ports or users (`by`) since `since`
    /// (an age such as 1h, or a time; empty: all stored), as (key,
    /// operations, events), busiest first, at most `limit` (0: 10).
    async fn top_events(
        &self,
        by: String,
        since: String,
        limit: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<(String, u64, u64)>> {
        self.authorize(conn, &hdr, "querying stored events").await?;
        let invalid = |e: netev_store::Error| fdo::Error::InvalidArgs(e.to_string());
        let by: netev_store::TopBy = by.parse().map_err(invalid)?;
        let since = if since.is_empty() {
            None
        } else {
            Some(netev_store::query::parse_time(&since, chrono::Utc::now()).map_err(invalid)?)
        };
        let limit = if limit == 0 { 10 } else { limit.min(10_000) };
        let rows = self.with_store(move |s| s.top(by, since, limit)).await?;
        Ok(rows.into_iter().map(|r| (r.key, r.ops, r.events)).collect())
    }

    /// Ends the caller's subscription.
    async fn unsubscribe(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        self.authorize(conn, &hdr, "unsubscribing").await?;
        if let Some(sender) = hdr.sender() {
            forget(&self.state, sender);
        }
        Ok(())
    }

    /// Acknowledges `batches` Events signals as handled. A subscriber may
    /// have at most MAX_IN_FLIGHT (8) batches unacknowledged; beyond that its
    /// events are counted in the next batch's `lost` instead of queued.
    /// Only a current subscriber may call it (it was checked at Subscribe).
    async fn ack(&self, batches: u32, #[zbus(header)] hdr: Header<'_>) -> fdo::Result<()> {
        let sender = hdr.sender().ok_or_else(|| {
            fdo::Error::AccessDenied("a call without a sender is not accepted".into())
        })?;
        let mut subs = self.state.subs.lock().expect("subscribers lock");
        match subs.get_mut(&OwnedUniqueName::from(sender.to_owned())) {
            Some(sub) => {
                sub.in_flight = sub.in_flight.saturating_sub(batches);
                Ok(())
            }
            None => Err(fdo::Error::AccessDenied(
                "Ack is for subscribers: call Subscribe first".into(),
            )),
        }
    }

    /// Every rule, in id order, as text fields (docs/rules.md).
    async fn list_rules(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<HashMap<String, String>>> {
        self.authorize(conn, &hdr, "listing rules").await?;
        Ok(self
            .state
            .rules
            .snapshot()
            .rules
            .iter()
            .map(listing)
            .collect())
    }

    /// Adds a rule given as text fields; returns its id once the kernel
    /// decides with it.
    async fn add_rule(
        &self,
        fields: HashMap<String, String>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<u32> {
        self.change(conn, &hdr, "adding rules", ChangeRules).await?;
        let rule = netev_rules::fields::rule_from_fields(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            chrono::Utc::now(),
            &uid_of,
        )
        .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        let id = self.state.rules.add(rule).await.map_err(change_error)?;
        info!(target: "netevd::bus", rule = id, "rule added");
        Ok(id)
    }

    /// Changes the named fields of a rule (an empty value unsets a condition).
    async fn update_rule(
        &self,
        id: u32,
        fields: HashMap<String, String>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        self.change(conn, &hdr, "changing rules", ChangeRules)
            .await?;
        let fields: Vec<(String, String)> = fields.into_iter().collect();
        self.state
            .rules
            .update(id, fields)
            .await
            .map_err(change_error)
    }

    /// Removes a rule.
    async fn remove_rule(
        &self,
        id: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        self.change(conn, &hdr, "removing rules", ChangeRules)
            .await?;
        self.state.rules.remove(id).await.map_err(change_error)
    }

    /// Enables or disables a rule (disabled rules are kept but never match).
    async fn set_enabled(
        &self,
        id: u32,
        enabled: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        self.change(conn, &hdr, "enabling or disabling rules", ChangeRules)
            .await?;
        self.state
            .rules
            .set_enabled(id, enabled)
            .await
            .map_err(change_error)
    }

    /// Sets what happens when no rule matches: op is an op name, "all", or
    /// "ask-fallback" (what the kernel does while a person is asked).
    async fn set_default_policy(
        &self,
        op: String,
        action: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        self.change(conn, &hdr, "changing the default policy", ChangeRules)
            .await?;
        self.state
            .rules
            .set_default(op, action)
            .await
            .map_err(change_error)
    }

    /// The default action per op, and "ask-fallback".
    async fn get_default_policy(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<HashMap<String, String>> {
        self.authorize(conn, &hdr, "reading the default policy")
            .await?;
        let p = self.state.rules.snapshot().policy;
        let mut out: HashMap<String, String> = netev_event::Op::ALL
            .iter()
            .map(|op| (op.name().to_string(), p.for_op(*op).name().to_string()))
            .collect();
        out.insert("ask-fallback".into(), p.ask_fallback.name().into());
        Ok(out)
    }

    /// Adds the rules of a rules file (TOML text; `name` names it in errors),
    /// replacing all rules if `replace`. All or nothing; returns how many.
    async fn import_rules(
        &self,
        name: String,
        text: String,
        replace: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<u32> {
        self.change(conn, &hdr, "importing rules", ChangeRules)
            .await?;
        let rules = netev_rules::file::parse(&name, &text, chrono::Utc::now(), &uid_of)
            .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        let n = self
            .state
            .rules
            .import(rules, replace)
            .await
            .map_err(change_error)?;
        info!(target: "netevd::bus", rules = n, replace, "rules imported from {name}");
        Ok(n as u32)
    }

    /// Every rule as a rules file (TOML).
    async fn export_rules(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.authorize(conn, &hdr, "exporting rules").await?;
        Ok(netev_rules::file::export(
            &self.state.rules.snapshot().rules,
            &user_name,
        ))
    }

    /// Makes the caller a prompter: it gets Prompt and PromptClosed signals
    /// (unicast) until it leaves the bus. Returns the oldest prompts now
    /// pending (at most 64, each with its origin); the others follow as
    /// Prompt signals to the caller.
    async fn watch_prompts(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<(u64, WireEvent, String)>> {
        self.authorize(conn, &hdr, "answering prompts").await?;
        let sender = OwnedUniqueName::from(
            hdr.sender()
                .expect("authorized callers have a sender")
                .to_owned(),
        );
        let mut all = {
            let mut prompts = self.state.prompts.lock().expect("prompts lock");
            prompts.watchers.insert(sender.clone());
            prompts.listing()
        };
        let rest = all.split_off(all.len().min(MAX_WATCH_REPLY));
        for (id, ev, origin) in rest {
            self.state
                .control(Control::PromptTo(sender.clone(), id, ev, origin));
        }
        Ok(all
            .into_iter()
            .map(|(id, ev, origin)| (id, WireEvent::from(ev), origin.name().to_string()))
            .collect())
    }

    /// Answers a prompt: makes a rule (action allow|deny; duration once, 5m,
    /// until-restart, always…; scope exe, exe+dest, exe+port, exe+dest+port,
    /// for the user whose process asked, or ending in +any-user for every
    /// user) and returns its id once the kernel decides with it.
    async fn answer_prompt(
        &self,
        id: u64,
        action: String,
        duration: String,
        scope: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<u32> {
        // Before polkit: a program refused anyway is not shown a password
        // dialog in netevd's name.
        let askers = self.askers(id);
        if let Some(askers) = &askers {
            not_the_askers(conn, &hdr, id, askers).await?;
        }
        self.change(conn, &hdr, "answering prompts", AnswerPrompts)
            .await?;
        let action: netev_rules::Action = action
            .parse()
            .map_err(|e: netev_rules::RuleError| fdo::Error::InvalidArgs(e.to_string()))?;
        if action == netev_rules::Action::Ask {
            return Err(fdo::Error::InvalidArgs("answer allow or deny".into()));
        }
        let (ev, asked) = {
            let prompts = self.state.prompts.lock().expect("prompts lock");
            let ev = prompts.pending.get(&id).map(|p| p.ev.clone());
            (ev, prompts.asks.contains_key(&id))
        };
        let ev = ev.ok_or_else(|| {
            fdo::Error::InvalidArgs(format!("no pending prompt {id} (answered or expired)"))
        })?;
        if asked {
            // Checked as a rule would be, so that a wrong answer is refused
            // here and not in the asker.
            rule_for_answer(&ev, action, &duration, &scope)
                .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
            let waiters = {
                let mut prompts = self.state.prompts.lock().expect("prompts lock");
                // An asker that joined while the caller was checked has
                // not been checked against it: the caller answers again.
                let now = prompts.pending.get(&id).map(|p| p.askers.clone());
                if now != askers {
                    return Err(fdo::Error::Failed(format!(
                        "prompt {id} changed while your answer was checked (another program \
                         joined the question, or it closed): answer it again"
                    )));
                }
                let waiters = prompts.asks.remove(&id).unwrap_or_default();
                prompts.asks.insert(id, Vec::new());
                prompts.take(id);
                waiters
            };
            for w in waiters {
                let _ = w
                    .answer
                    .send((action.name().into(), duration.clone(), scope.clone()));
            }
            self.state.control(Control::PromptClosed(id, "answered"));
            info!(target: "netevd::bus", prompt = id, "ask answered");
            return Ok(0);
        }
        let rule = rule_for_answer(&ev, action, &duration, &scope)
            .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        // the answer goes just before the rule that asked
        let rule_id = self
            .state
            .rules
            .add_answer(rule, ev.rule)
            .await
            .map_err(change_error)?;
        self.state.prompts.lock().expect("prompts lock").take(id);
        self.state.control(Control::PromptClosed(id, "answered"));
        info!(target: "netevd::bus", prompt = id, rule = rule_id, "prompt answered");
        Ok(rule_id)
    }

    /// Raises a prompt about `event` for the prompters (the usual `Prompt`
    /// signal) and returns the answer (action, duration, scope) when one
    /// answers it with `AnswerPrompt`, or ("", "", "") when nobody did
    /// within `timeout_ms`. Used by `netev run`, whose program waits.
    async fn ask(
        &self,
        event: WireEvent,
        timeout_ms: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<(String, String, String)> {
        check_ask_sizes(&event)?;
        let mut ev = Event::try_from(event)
            .map_err(|e| fdo::Error::InvalidArgs(format!("the event: {e}")))?;
        let sender = hdr
            .sender()
            .ok_or_else(|| {
                fdo::Error::AccessDenied("a call without a sender is not accepted".into())
            })?
            .to_owned();
        let uid = fdo::DBusProxy::new(conn)
            .await?
            .get_connection_unix_user(BusName::Unique(sender.clone()))
            .await?;
        let privileged = self.authorize(conn, &hdr, "asking").await.is_ok();
        if !privileged {
            own_process(uid, &ev)?;
        }
        // The answer must not come from the asker's own tree (docs/dbus.md,
        // AnswerPrompt): a caller whose process cannot be read could not be
        // told from its program.
        let caller = caller_process(conn, &sender).await.ok_or_else(|| {
            fdo::Error::AccessDenied(
                "asking: your process cannot be read (gone, or the bus does not say which it \
                 is), so netevd could not keep it from answering its own question"
                    .into(),
            )
        })?;
        // Who asks is read from the process itself, never taken from the
        // caller; only the call (op, addresses) is the caller's word.
        let origin = match netev_host::proc_status::Process::read(ev.pid) {
            Some(p) if privileged || p.uid == uid => {
                ev.uid = p.uid;
                ev.gid = p.gid;
                ev.ppid = p.ppid;
                ev.user = user_name(p.uid);
                ev.comm = p.comm;
                ev.exe = p.exe;
                ev.cmdline = p.cmdline;
                Origin::Ask
            }
            Some(p) => {
                return Err(fdo::Error::AccessDenied(format!(
                    "asking about pid {} needs root or membership of the access group, or the \
                     process must be your own: it runs as uid {}",
                    ev.pid, p.uid
                )))
            }
            None if privileged => Origin::AskUnverified,
            None => {
                return Err(fdo::Error::AccessDenied(format!(
                    "asking about pid {}: no such process (or it was replaced while being read)",
                    ev.pid
                )))
            }
        };
        let wait = Duration::from_millis(timeout_ms.into()).clamp(MIN_ASK_WAIT, MAX_ASK_WAIT);
        let (tx, rx) = oneshot::channel();
        let (id, new) = {
            let mut prompts = self.state.prompts.lock().expect("prompts lock");
            let now = std::time::Instant::now();
            let waiter = Waiter {
                caller: OwnedUniqueName::from(sender),
                uid,
                process: caller,
                privileged,
                answer: tx,
            };
            let joins = prompts.joins_pending(&ev);
            prompts
                .admit_ask(uid, privileged, joins, now)
                .map_err(|r| fdo::Error::LimitsExceeded(r.message(uid)))?;
            prompts.ask(&ev, origin, waiter, now + wait)
        };
        if new {
            info!(target: "netevd::bus", prompt = id, exe = ?ev.exe, op = ev.op.name(), uid, origin = origin.name(), "asked");
            self.state.control(Control::Prompt(id, ev, origin));
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            // expired (by the daemon's clock) or withdrawn
            Ok(Err(_)) => Ok(Default::default()),
            Err(_) => {
                // Our own deadline: stop waiting; if nobody else waits, the
                // prompt is over.
                let closed = {
                    let mut prompts = self.state.prompts.lock().expect("prompts lock");
                    let mine = prompts.asks.get_mut(&id);
                    let empty = mine.is_some_and(|w| {
                        w.retain(|w| !w.answer.is_closed());
                        w.is_empty()
                    });
                    if empty {
                        prompts.take(id);
                    }
                    empty
                };
                if closed {
                    self.state.control(Control::PromptClosed(id, "expired"));
                }
                Ok(Default::default())
            }
        }
    }

    /// Rules or the default policy changed: reload them.
    #[zbus(signal)]
    async fn rules_changed(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    /// A question about this operation: a rule or the default said "ask"
    /// (origin "kernel": the ask fallback was applied), or a program's
    /// supervisor asked (origin "ask": the process is as netevd read it, the
    /// call is the asker's word; "ask-unverified": all of it is the asker's
    /// word). Unicast to prompters (WatchPrompts).
    #[zbus(signal)]
    async fn prompt(
        emitter: &SignalEmitter<'_>,
        id: u64,
        event: WireEvent,
        origin: &str,
    ) -> zbus::Result<()>;

    /// A prompt was answered (by anyone) or expired.
    #[zbus(signal)]
    async fn prompt_closed(
        emitter: &SignalEmitter<'_>,
        id: u64,
        reason: String,
    ) -> zbus::Result<()>;

    /// A batch of events for one subscriber (unicast).
    #[zbus(signal)]
    async fn events(
        emitter: &SignalEmitter<'_>,
        batch: Vec<WireEvent>,
        lost: u64,
    ) -> zbus::Result<()>;

    /// Daemon version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    /// Capture backend.
    #[zbus(property(emits_changed_signal = "const"))]
    fn backend(&self) -> String {
        self.state.status.borrow().backend.clone()
    }

    /// Attached hooks: (op, attach point, enforce|observe).
    #[zbus(property(emits_changed_signal = "const"))]
    fn hooks(&self) -> Vec<WireHook> {
        WireStatus::from(&*self.state.status.borrow()).hooks
    }

    /// Counters by name; read on demand (no change signals: they change all the time).
    #[zbus(property(emits_changed_signal = "false"))]
    fn counters(&self) -> HashMap<String, u64> {
        WireStatus::from(&*self.state.status.borrow()).counters
    }
}

fn change_error(e: ChangeError) -> fdo::Error {
    match e {
        ChangeError::Store(_) | ChangeError::Kernel(_) | ChangeError::Stopped => {
            fdo::Error::Failed(e.to_string())
        }
        _ => fdo::Error::InvalidArgs(e.to_string()),
    }
}

fn listing(rule: &netev_rules::Rule) -> HashMap<String, String> {
    netev_rules::fields::rule_to_fields(rule, &user_name)
        .into_iter()
        .collect()
}

/// Refuses an `Ask` whose text fields are larger than any true event's
/// (docs/dbus.md, "Limits"): it would be held in memory, shown to every
/// prompter and sent in WatchPrompts' reply.
fn check_ask_sizes(ev: &WireEvent) -> fdo::Result<()> {
    let fields = [
        ("user", &ev.user),
        ("comm", &ev.comm),
        ("exe", &ev.exe),
        ("cmdline", &ev.cmdline),
        ("op", &ev.op),
        ("family", &ev.family),
        ("sock_type", &ev.sock_type),
        ("proto", &ev.proto),
        ("laddr", &ev.laddr),
        ("raddr", &ev.raddr),
        ("verdict", &ev.verdict),
    ];
    for (name, value) in fields {
        if value.len() > MAX_ASK_FIELD {
            return Err(fdo::Error::LimitsExceeded(format!(
                "the event's field {name} is {} bytes; an Ask's text fields are at most {MAX_ASK_FIELD}",
                value.len()
            )));
        }
    }
    Ok(())
}
