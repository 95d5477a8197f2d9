//! The notification loop: gather what a call is about, decide, answer.
//!
//! Every call whose decision depends on memory (an address) or on what a
//! descriptor refers to is *performed by the supervisor* on its own
//! duplicate of the caller's socket (`pidfd_getfd`) with its own copy of
//! the arguments, and the result is returned to the caller: what was
//! checked is what is used. `SECCOMP_USER_NOTIF_FLAG_CONTINUE` is kept for
//! the cases listed in docs/run.md, each with its reason.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use netev_event::{Event, Family, Op, Proto, SockType, Verdict};
use netev_rules::{Action, Decision, Duration as RuleDuration, Policy, Query, Rule, RuleSet};

use crate::callers::Callers;
use crate::proc::{Caller, Context};
use crate::sys::{self, Message, Reply};
use crate::{addr, Answer, Asker, EventSink, Reach, RuleSink};

/// Most data copied for one send. Datagrams cannot be longer (64 KiB,
/// plus headroom for GSO); a stream send above it is sent in part (a short
/// count, which stream callers must handle anyway).
const MAX_DATA: usize = 256 * 1024;
/// Most control data copied (the kernel's optmem limit is ~20 KiB).
const MAX_CONTROL: usize = 64 * 1024;
/// UIO_MAXIOV.
const MAX_IOV: usize = 1024;

type Run = Box<dyn FnOnce() -> Result<i64, i32> + Send>;

enum How {
    /// Let the kernel run the call as made (see docs/run.md for when).
    Continue,
    /// Run it ourselves; `may_block`: on its own thread.
    Perform { may_block: bool, run: Run },
}

/// A call ready to be decided.
struct Job {
    id: u64,
    ev: Event,
    /// Whether this call is an operation rules decide and events record
    /// (a send without an address is neither).
    decide: bool,
    /// Whether `ev.exe` was read for this call (else it is the process's
    /// cached one, which no decision may use: see `dispatch`).
    exe_fresh: bool,
    how: How,
}

enum Gathered {
    /// The caller went away: nothing to answer.
    Gone,
    /// Answer at once, without a decision (bad fd, bad pointer…).
    Answer(Reply),
    Job(Box<Job>),
}

pub struct Supervisor {
    listener: OwnedFd,
    rules: Mutex<Rules>,
    policy: Policy,
    asker: Option<Arc<dyn Asker>>,
    ask_timeout: Duration,
    sink: EventSink,
    on_always: Option<RuleSink>,
    users: Mutex<HashMap<u32, Option<String>>>,
    callers: Mutex<Callers>,
    pool: Arc<Pool>,
    /// The supervisor's own credentials and labels, which a call it
    /// performs is checked against; `None` if they could not be read
    /// (then nothing is performed).
    own: Option<Context>,
}

/// The rules of this run: the ones given, and those answers added.
struct Rules {
    set: Arc<RuleSet>,
    /// Every rule (given and added), to rebuild `set` from.
    all: Vec<Rule>,
    /// Rules whose duration needs looking at when they match: `once` ones
    /// (used up by their first decision) and timed ones (which expire).
    special: HashMap<u32, RuleDuration>,
    consumed: HashSet<u32>,
    next_id: u32,
    /// Whether a rule names an executable: then every call's executable
    /// is read for it, never taken from the cache.
    exe_matters: bool,
}

fn names_exe(set: &RuleSet) -> bool {
    set.rules().iter().any(|r| r.cond.exe.is_some())
}

impl Rules {
    fn new(set: RuleSet) -> Rules {
        let all = set.rules().to_vec();
        let special = all
            .iter()
            .filter(|r| netev_rules::lifecycle::is_transient(&r.duration))
            .map(|r| (r.id, r.duration))
            .collect();
        // Answers number after the user's rules, below the built-ins' ids.
        let next_id = all
            .iter()
            .map(|r| r.id)
            .filter(|&id| id < crate::defaults::BUILTIN_ID_BASE)
            .max()
            .unwrap_or(0)
            + 1;
        let exe_matters = names_exe(&set);
        Rules {
            exe_matters,
            set: Arc::new(set),
            all,
            special,
            consumed: HashSet::new(),
            next_id,
        }
    }

    fn rebuild(&mut self) {
        let policy = *self.set.policy();
        self.set = Arc::new(RuleSet::new(self.all.clone(), policy));
        self.exe_matters = names_exe(&self.set);
    }

    fn decide(&mut self, q: &Query<'_>) -> Decision {
        loop {
            let consumed = &self.consumed;
            let d = self.set.first_match(q, |r| !consumed.contains(&r.id));
            match d
                .rule
                .and_then(|id| self.special.get(&id).map(|t| (id, *t)))
            {
                Some((id, RuleDuration::Once)) => {
                    self.consumed.insert(id);
                }
                Some((id, t)) if t.expired(Utc::now()) => {
                    self.all.retain(|r| r.id != id);
                    self.special.remove(&id);
                    self.rebuild();
                    continue;
                }
                _ => {}
            }
            return d;
        }
    }

    /// Adds `rule` ahead of the rule that asked (as netevd does with
    /// answers); returns it with its id.
    fn add(&mut self, mut rule: Rule, asking: Option<u32>) -> Rule {
        let asking = asking.and_then(|id| self.all.iter().find(|r| r.id == id));
        netev_rules::lifecycle::rank_answer(&mut rule, asking);
        rule.id = self.next_id;
        self.next_id += 1;
        if netev_rules::lifecycle::is_transient(&rule.duration) {
            self.special.insert(rule.id, rule.duration);
        }
        self.all.push(rule.clone());
        self.rebuild();
        rule
    }
}

/// What came of asking.
enum Asked {
    Answer(Answer),
    /// No answer in time (or none possible): the ask fallback.
    Nothing,
    /// The caller went away: nobody to answer.
    Gone,
}

impl Supervisor {
    pub fn new(listener: OwnedFd, opts: crate::Options) -> Supervisor {
        // Without it every answer costs a cross-CPU wake-up (PLATFORM.md:
        // 15–34 µs instead of ~3 µs). Older kernels lack it: not fatal.
        let _ = sys::notif_set_flags(&listener, sys::SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
        Supervisor {
            listener,
            policy: *opts.rules.policy(),
            rules: Mutex::new(Rules::new(opts.rules)),
            asker: opts.asker,
            ask_timeout: opts.ask_timeout,
            sink: opts.on_event,
            on_always: opts.on_always,
            users: Mutex::new(HashMap::new()),
            callers: Mutex::new(Callers::default()),
            pool: Arc::new(Pool::default()),
            own: Context::own(),
        }
    }

    /// Serves notifications until no process uses the filter any more
    /// (the listener then reports POLLHUP).
    pub fn serve(self: &Arc<Self>) -> io::Result<()> {
        loop {
            let mut pfd = libc::pollfd {
                fd: self.listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            if pfd.revents & libc::POLLIN != 0 {
                match sys::notif_recv(&self.listener) {
                    Ok(n) => self.handle(n),
                    // ENOENT: the caller was interrupted before we read it.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ENOENT)) => {}
                    Err(e) => return Err(e),
                }
            } else if pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                return Ok(());
            }
        }
    }

    fn handle(self: &Arc<Self>, n: libc::seccomp_notif) {
        match self.gather(&n) {
            Gathered::Gone => {}
            Gathered::Answer(r) => self.reply(n.id, r),
            Gathered::Job(job) => self.dispatch(*job),
        }
    }

    fn reply(&self, id: u64, r: Reply) {
        // ENOENT (caller gone) is swallowed by notif_send; anything else
        // means the listener is broken, and the loop will see it too.
        let _ = sys::notif_send(&self.listener, id, r);
    }

    fn valid(&self, id: u64) -> bool {
        sys::notif_id_valid(&self.listener, id)
    }

    /// Whether a call of thread `tid` would be checked by the kernel as it
    /// is if the supervisor made it (same ids, groups, capabilities, user
    /// namespace, security labels). Only then is it performed here: else
    /// performing it would lend the caller the supervisor's rights (a
    /// privileged port after `unshare -r`, network access its own LSM
    /// profile denies). The caller is waiting in the call, so its
    /// credentials cannot change before the answer: another thread cannot
    /// change them for it, and glibc's process-wide `setuid` signals every
    /// thread, which withdraws the notification.
    fn same_context(&self, tid: u32, pidfd: &OwnedFd) -> bool {
        let Some(own) = &self.own else { return false };
        Context::of(tid, pidfd, own).is_some_and(|c| own.differs(&c).is_none())
    }

    fn user_name(&self, uid: u32) -> Option<String> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users
            .entry(uid)
            .or_insert_with(|| crate::proc::user_name(uid))
            .clone()
    }

    fn event(&self, op: Op, c: Caller) -> Event {
        let mut ev = Event::new(op);
        ev.ts = Utc::now();
        ev.pid = c.tgid;
        ev.tid = c.tid;
        ev.ppid = c.ppid;
        ev.uid = c.uid;
        ev.gid = c.gid;
        ev.user = self.user_name(c.uid);
        ev.comm = c.comm;
        ev.exe = c.exe;
        ev.cmdline = c.cmdline;
        ev
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn callers(&self) -> std::sync::MutexGuard<'_, Callers> {
        self.callers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gather(self: &Arc<Self>, n: &libc::seccomp_notif) -> Gathered {
        let (id, tid, nr, args) = (n.id, n.pid, i64::from(n.data.nr), n.data.args);
        let want_exe = self.rules().exe_matters;
        let Some(mut who) = self
            .callers()
            .identify(tid, n.data.instruction_pointer, want_exe)
        else {
            return Gathered::Gone;
        };
        let caller = std::mem::take(&mut who.caller);
        let mut exe_fresh = who.exe_fresh;
        if nr == libc::SYS_socket || nr == libc::SYS_socketpair {
            // Scalars only, in the caller's registers: nothing the caller
            // can change between this decision and the kernel's run.
            let family = args[0] as u16;
            let ty = (args[1] as i32 & 0xf) as u16;
            let mut ev = self.event(Op::Socket, caller);
            ev.family = Family(family);
            ev.sock_type = SockType(ty);
            ev.proto = ip_proto(family, ty, args[2] as i32);
            if !self.valid(id) {
                return Gathered::Gone;
            }
            self.callers().commit(&mut who);
            return Gathered::Job(Box::new(Job {
                id,
                ev,
                decide: true,
                exe_fresh,
                how: How::Continue,
            }));
        }

        // `who.pidfd` may name another thread that reused the number if
        // the caller is gone: nothing taken through it is used unless the
        // notification is still valid afterwards (the check at the end).
        let sock = match sys::pidfd_getfd(&who.pidfd, args[0] as i32) {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Gathered::Gone,
            Err(e) => return Gathered::Answer(Reply::Error(sys::errno(&e))),
        };
        let family = match sys::sockopt_int(&sock, libc::SO_DOMAIN) {
            Ok(f) => f as u16,
            Err(e) => return Gathered::Answer(Reply::Error(sys::errno(&e))),
        };
        let ty = sys::sockopt_int(&sock, libc::SO_TYPE).unwrap_or(0) as u16;
        let proto = sys::sockopt_int(&sock, libc::SO_PROTOCOL).unwrap_or(0);
        let ip = Family(family).is_ip();
        let mut ev = self.event(Op::Socket, caller);
        ev.family = Family(family);
        ev.sock_type = SockType(ty);
        ev.proto = ip_proto(family, ty, proto);
        let set_local = |ev: &mut Event, a: Option<(std::net::IpAddr, u16)>| {
            if let Some((ip, port)) = a {
                ev.laddr = Some(ip);
                ev.lport = Some(port);
            }
        };
        let set_remote = |ev: &mut Event, a: Option<(std::net::IpAddr, u16)>| {
            if let Some((ip, port)) = a {
                ev.raddr = Some(ip);
                ev.rport = Some(port);
            }
        };
        let read_sockaddr = |ptr: u64, len: u64| -> Result<Vec<u8>, i32> {
            if len > addr::MAX_SOCKADDR as u64 {
                return Err(libc::EINVAL);
            }
            sys::read_mem(tid, ptr, len as usize).map_err(|e| sys::errno(&e))
        };
        let nonblocking = || sys::is_nonblocking(&sock);
        // An IP call is performed here only for a caller the kernel would
        // check as it checks us; others are decided, then continued
        // (docs/run.md, "Credentials"). accept is continued anyway.
        let perform = ip
            && !matches!(nr, libc::SYS_accept | libc::SYS_accept4)
            && self.same_context(tid, &who.pidfd);
        let mut decide = true;
        let how = match nr {
            libc::SYS_listen => {
                ev.op = Op::Listen;
                set_local(&mut ev, local(&sock, family));
                let backlog = args[1] as i32;
                if perform {
                    How::Perform {
                        may_block: false,
                        run: Box::new(move || sys::listen(&sock, backlog)),
                    }
                } else {
                    How::Continue
                }
            }
            libc::SYS_accept | libc::SYS_accept4 => {
                // Decided before the call, on what is known then: the peer
                // is not (see docs/run.md).
                ev.op = Op::Accept;
                set_local(&mut ev, local(&sock, family));
                How::Continue
            }
            libc::SYS_bind => {
                ev.op = Op::Bind;
                let bytes = match read_sockaddr(args[1], args[2]) {
                    Ok(b) => b,
                    Err(e) => return Gathered::Answer(Reply::Error(e)),
                };
                let parsed = addr::parse(&bytes, family, false);
                set_local(&mut ev, parsed);
                ev.path = unix_name(tid, family, &bytes);
                if perform {
                    // A port below ip_unprivileged_port_start needs
                    // CAP_NET_BIND_SERVICE: the caller's capabilities are
                    // ours here (`perform`), so the kernel's check of ours
                    // is the check of its own.
                    How::Perform {
                        may_block: false,
                        run: Box::new(move || sys::bind(&sock, &bytes)),
                    }
                } else {
                    How::Continue
                }
            }
            libc::SYS_connect => {
                ev.op = Op::Connect;
                let bytes = match read_sockaddr(args[1], args[2]) {
                    Ok(b) => b,
                    Err(e) => return Gathered::Answer(Reply::Error(e)),
                };
                set_remote(&mut ev, addr::parse(&bytes, family, true));
                ev.path = unix_name(tid, family, &bytes);
                if perform {
                    // A datagram connect only sets the peer: it never
                    // waits, and is performed on the loop.
                    let may_block = ty != libc::SOCK_DGRAM as u16 && !nonblocking();
                    How::Perform {
                        may_block,
                        run: Box::new(move || sys::connect(&sock, &bytes)),
                    }
                } else {
                    How::Continue
                }
            }
            libc::SYS_sendto => {
                ev.op = Op::Sendmsg;
                let flags = args[3] as i32;
                let name = if args[4] == 0 {
                    decide = false;
                    None
                } else {
                    match read_sockaddr(args[4], args[5]) {
                        Ok(b) => Some(b),
                        Err(e) => return Gathered::Answer(Reply::Error(e)),
                    }
                };
                if let Some(n) = &name {
                    set_remote(&mut ev, addr::parse(n, family, false));
                    ev.path = unix_name(tid, family, n);
                    if fast_open(ip, ty, flags) {
                        ev.op = Op::Connect;
                    }
                }
                if perform {
                    let len = (args[2] as usize).min(MAX_DATA);
                    if len < args[2] as usize && ty != libc::SOCK_STREAM as u16 {
                        return Gathered::Answer(Reply::Error(libc::EMSGSIZE));
                    }
                    let data = match sys::read_mem(tid, args[1], len) {
                        Ok(d) => d,
                        Err(e) => return Gathered::Answer(Reply::Error(sys::errno(&e))),
                    };
                    let m = Message {
                        name,
                        data,
                        control: Vec::new(),
                    };
                    How::Perform {
                        may_block: !nonblocking() && flags & libc::MSG_DONTWAIT == 0,
                        run: Box::new(move || sys::sendmsg(&sock, &m, flags)),
                    }
                } else {
                    How::Continue
                }
            }
            libc::SYS_sendmsg | libc::SYS_sendmmsg => {
                ev.op = Op::Sendmsg;
                let flags = args[2] as i32;
                if !ip {
                    // A unix socket's destination is its path: each
                    // message may name one. The call is decided on the
                    // first that the rules do not simply allow (so that
                    // one allowed name cannot carry a denied one along),
                    // else on the first. Other families name no address a
                    // rule can match: read only whether there is one.
                    let count = if nr == libc::SYS_sendmmsg {
                        (args[2] as u32 as usize).clamp(1, MAX_IOV)
                    } else {
                        1
                    };
                    let mut names = Vec::new();
                    for i in 0..count {
                        match msghdr_name(tid, args[1] + (i * MMSGHDR_SIZE) as u64) {
                            Ok(Some(n)) => names.push(n),
                            Ok(None) => {}
                            Err(e) if i == 0 => return Gathered::Answer(Reply::Error(e)),
                            Err(_) => break,
                        }
                    }
                    decide = !names.is_empty();
                    if family == libc::AF_UNIX as u16 {
                        let paths: Vec<Option<String>> =
                            names.iter().map(|n| unix_name(tid, family, n)).collect();
                        let allowed = |p: &Option<String>| {
                            let mut q = query(&ev);
                            q.path = p.as_deref();
                            self.peek(&q).action == Action::Allow
                        };
                        ev.path = paths
                            .iter()
                            .find(|p| !allowed(p))
                            .or(paths.first())
                            .cloned()
                            .flatten();
                    }
                    How::Continue
                } else if nr == libc::SYS_sendmsg {
                    let m = match read_msghdr(tid, args[1], ty) {
                        Ok(m) => m,
                        Err(e) => return Gathered::Answer(Reply::Error(e)),
                    };
                    match &m.name {
                        Some(n) => set_remote(&mut ev, addr::parse(n, family, false)),
                        None => decide = false,
                    }
                    if m.name.is_some() && fast_open(ip, ty, flags) {
                        ev.op = Op::Connect;
                    }
                    if perform {
                        How::Perform {
                            may_block: !nonblocking() && flags & libc::MSG_DONTWAIT == 0,
                            run: Box::new(move || sys::sendmsg(&sock, &m, flags)),
                        }
                    } else {
                        How::Continue
                    }
                } else {
                    let vlen = (args[2] as u32 as usize).min(MAX_IOV);
                    let flags = args[3] as i32;
                    let mut msgs = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        match read_msghdr(tid, args[1] + (i * MMSGHDR_SIZE) as u64, ty) {
                            Ok(m) => msgs.push(m),
                            Err(e) if i == 0 => return Gathered::Answer(Reply::Error(e)),
                            Err(_) => break,
                        }
                    }
                    match msgs.first().and_then(|m| m.name.as_ref()) {
                        Some(n) => {
                            set_remote(&mut ev, addr::parse(n, family, false));
                            if fast_open(ip, ty, flags) {
                                ev.op = Op::Connect;
                            }
                        }
                        None => decide = false,
                    }
                    // Later messages are decided when performed, after
                    // `dispatch` (or here, when continued): on an exe read
                    // for this call.
                    if !exe_fresh {
                        ev.exe = crate::proc::exe(tid);
                        exe_fresh = true;
                    }
                    if !perform {
                        // The kernel will send every message: all are
                        // decided now, the call on the first later address
                        // the rules do not simply allow (one allowed
                        // address cannot carry a denied one along), else
                        // on the first message. (Performed, a refused
                        // message ends the batch; continued, it refuses
                        // the whole call.)
                        let refused = msgs.iter().skip(1).find_map(|m| {
                            let a = addr::parse(m.name.as_ref()?, family, false);
                            let mut q = query(&ev);
                            q.op = Op::Sendmsg;
                            q.addr = a.map(|(ip, _)| ip);
                            q.port = a.map(|(_, p)| p);
                            (self.peek(&q).action != Action::Allow).then_some(a)
                        });
                        if let Some(a) = refused {
                            ev.op = Op::Sendmsg;
                            ev.raddr = a.map(|(ip, _)| ip);
                            ev.rport = a.map(|(_, p)| p);
                            decide = true;
                        }
                        return self.job(id, &mut who, ev, decide, exe_fresh, How::Continue);
                    }
                    let (me, exe, uid, proto) =
                        (Arc::clone(self), ev.exe.clone(), ev.uid, ev.proto);
                    let base = args[1];
                    How::Perform {
                        may_block: !nonblocking() && flags & libc::MSG_DONTWAIT == 0,
                        run: Box::new(move || {
                            send_many(&sock, tid, base, &msgs, flags, |i, name| {
                                // The first message was decided by the
                                // caller of this closure; later ones with
                                // an address of their own are decided here
                                // and stop the batch unless allowed.
                                if i == 0 {
                                    return true;
                                }
                                let Some(name) = name else { return true };
                                let a = addr::parse(name, family, false);
                                let q = Query {
                                    op: Op::Sendmsg,
                                    family: Family(family),
                                    proto: proto.unwrap_or(Proto(0)),
                                    exe: crate::proc::verified_exe(exe.as_deref()),
                                    uid,
                                    addr: a.map(|(ip, _)| ip),
                                    port: a.map(|(_, p)| p),
                                    path: None,
                                };
                                // An `ask` here is not asked: it ends
                                // the batch like a deny.
                                me.decide(&q).action == Action::Allow
                            })
                        }),
                    }
                }
            }
            _ => How::Continue,
        };
        self.job(id, &mut who, ev, decide, exe_fresh, how)
    }

    /// The job for a gathered call, if the caller still waits.
    fn job(
        &self,
        id: u64,
        who: &mut crate::callers::Who,
        ev: Event,
        decide: bool,
        exe_fresh: bool,
        how: How,
    ) -> Gathered {
        // The memory we read was the caller's only if it is still waiting.
        if !self.valid(id) {
            return Gathered::Gone;
        }
        self.callers().commit(who);
        Gathered::Job(Box::new(Job {
            id,
            ev,
            decide,
            exe_fresh,
            how,
        }))
    }

    fn decide(&self, q: &Query<'_>) -> Decision {
        self.rules().decide(q)
    }

    /// What the rules would decide, without using up a `once` rule.
    fn peek(&self, q: &Query<'_>) -> Decision {
        let rules = self.rules();
        rules
            .set
            .first_match(q, |r| !rules.consumed.contains(&r.id))
    }

    fn dispatch(self: &Arc<Self>, mut job: Job) {
        if !job.decide {
            return self.finish(job, Action::Allow, None, false);
        }
        let d = loop {
            let mut rules = self.rules();
            // A rule naming an executable may have been added since the
            // call was gathered: the cached exe must not decide.
            if job.exe_fresh || !rules.exe_matters {
                break rules.decide(&query(&job.ev));
            }
            drop(rules);
            job.ev.exe = crate::proc::exe(job.ev.tid);
            if !self.valid(job.id) {
                return;
            }
            job.exe_fresh = true;
        };
        match d.action {
            Action::Ask => {
                let me = Arc::clone(self);
                std::thread::spawn(move || {
                    let mut job = job;
                    // A person decides on what is shown, and an answer
                    // can become a rule naming the exe: read it all now.
                    if let Some(c) = Caller::read(job.ev.tid) {
                        job.ev.exe = c.exe;
                        job.ev.cmdline = c.cmdline;
                        job.ev.comm = c.comm;
                    }
                    if !me.valid(job.id) {
                        return;
                    }
                    // As netevd's prompts show it: the rule that asked and
                    // what applies if nobody answers.
                    job.ev.rule = d.rule;
                    job.ev.verdict = match me.policy.ask_fallback {
                        Action::Allow => Verdict::Allow,
                        _ => Verdict::Deny,
                    };
                    match me.ask(job.id, &job.ev) {
                        Asked::Gone => {}
                        Asked::Nothing => {
                            let fallback = me.policy.ask_fallback;
                            me.finish(job, fallback, d.rule, true)
                        }
                        Asked::Answer(a) => {
                            me.remember(&job.ev, &a, d.rule);
                            me.finish(job, a.action, d.rule, true)
                        }
                    }
                });
            }
            a => self.finish(job, a, d.rule, false),
        }
    }

    /// Asks, and waits for the answer until the deadline or until the
    /// caller is gone, whichever comes first.
    fn ask(self: &Arc<Self>, id: u64, ev: &Event) -> Asked {
        let Some(asker) = self.asker.clone() else {
            return Asked::Nothing;
        };
        let deadline = Instant::now() + self.ask_timeout;
        let me = Arc::clone(self);
        let q = crate::Question {
            event: ev.clone(),
            deadline,
            withdrawn: Arc::new(move || !me.valid(id)),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(asker.ask(&q));
        });
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Asked::Nothing;
            }
            match rx.recv_timeout(left.min(GONE_POLL)) {
                Ok(Some(a)) if a.action != Action::Ask => return Asked::Answer(a),
                // An asker gives up on a withdrawn question: no answer to
                // give then, not even the fallback.
                Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) if !self.valid(id) => {
                    return Asked::Gone
                }
                Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => return Asked::Nothing,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if !self.valid(id) {
                        return Asked::Gone;
                    }
                }
            }
        }
    }

    /// Turns an answer that reaches beyond this call into a rule.
    fn remember(&self, ev: &Event, a: &Answer, asking: Option<u32>) {
        let duration = match a.reach {
            Reach::Once => return,
            Reach::Run { until: None } => "until-restart".to_string(),
            Reach::Run { until: Some(t) } => t.to_rfc3339(),
            Reach::Always => "always".to_string(),
        };
        // A rule names the program by its exe; one that is not verified
        // would match nothing (and its `?` reads as a glob): none is made.
        let named = crate::proc::verified_exe(ev.exe.as_deref()).is_some();
        let Some(rule) = rule_fitting(ev, a.action, &duration, &a.scope).filter(|_| named) else {
            // No program to name (it exited before it could be read, or
            // its exe is not verified): the answer decides this call only.
            return;
        };
        let rule = self
            .rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(rule, asking);
        if a.reach == Reach::Always {
            if let Some(sink) = &self.on_always {
                if let Err(e) = sink(&rule) {
                    // \r: the terminal may be raw (netev run relays a pty)
                    eprint!("netev: the answer applies to this run only: {e}\r\n");
                }
            }
        }
    }

    fn finish(self: &Arc<Self>, job: Job, action: Action, rule: Option<u32>, on_thread: bool) {
        let Job {
            id,
            mut ev,
            decide,
            how,
            ..
        } = job;
        ev.rule = rule;
        if action != Action::Allow {
            ev.verdict = Verdict::Deny;
            ev.ret = Some(-libc::EPERM);
            self.log(decide, &ev);
            return self.reply(id, Reply::Error(libc::EPERM));
        }
        ev.verdict = Verdict::Allow;
        match how {
            How::Continue => {
                self.log(decide, &ev);
                self.reply(id, Reply::Continue);
            }
            How::Perform { may_block, run } if may_block && !on_thread => {
                // A blocking connect or send must not stall the loop.
                let me = Arc::clone(self);
                self.pool
                    .run(Box::new(move || me.perform(id, ev, decide, run)));
            }
            How::Perform { run, .. } => self.perform(id, ev, decide, run),
        }
    }

    fn perform(&self, id: u64, mut ev: Event, decide: bool, run: Run) {
        let r = run();
        ev.ret = Some(match r {
            Ok(v) => v as i32,
            Err(e) => -e,
        });
        self.log(decide, &ev);
        self.reply(id, Reply::from_result(r));
    }

    fn log(&self, decide: bool, ev: &Event) {
        if decide {
            (self.sink)(ev);
        }
    }
}

/// Threads for calls that may block (a connect or send on a blocking
/// socket): a thread that performed one waits a while for the next instead
/// of a new thread per call, and more are started when all are busy, so a
/// slow peer never holds up another call.
#[derive(Default)]
struct Pool {
    state: Mutex<PoolState>,
    ready: Condvar,
}

type Work = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Work>,
    /// Waiting threads not yet promised a queued job.
    idle: usize,
}

/// How long a pool thread waits for work before it ends.
const POOL_IDLE: Duration = Duration::from_secs(5);

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(self: &Arc<Self>, w: Work) {
        let mut st = self.lock();
        if st.idle > 0 {
            st.idle -= 1;
            st.queue.push_back(w);
            drop(st);
            self.ready.notify_one();
        } else {
            drop(st);
            let me = Arc::clone(self);
            std::thread::spawn(move || me.work(w));
        }
    }

    fn work(&self, first: Work) {
        let mut w = first;
        loop {
            w();
            let mut st = self.lock();
            st.idle += 1;
            w = loop {
                if let Some(next) = st.queue.pop_front() {
                    break next;
                }
                let (s, t) = self
                    .ready
                    .wait_timeout(st, POOL_IDLE)
                    .unwrap_or_else(|p| p.into_inner());
                st = s;
                if t.timed_out() && st.queue.is_empty() {
                    st.idle -= 1;
                    return;
                }
            };
        }
    }
}

/// How often a pending question checks that its caller is still there.
const GONE_POLL: Duration = Duration::from_millis(100);

/// The rule for an answer, with the parts of `scope` the call has (a
/// socket() has no address or port: its rule names the program only).
fn rule_fitting(ev: &Event, action: Action, duration: &str, scope: &str) -> Option<Rule> {
    let narrower: &[&str] = match scope {
        "exe+dest+port" => &["exe+dest+port", "exe+dest", "exe+port", "exe"],
        "exe+dest" => &["exe+dest", "exe"],
        "exe+port" => &["exe+port", "exe"],
        _ => &["exe"],
    };
    narrower.iter().find_map(|s| {
        netev_rules::fields::rule_for_answer(ev, action, duration, s, Utc::now()).ok()
    })
}

/// The query the rules are asked about an event.
fn query(ev: &Event) -> Query<'_> {
    let (addr, port) = if netev_rules::op_uses_remote(ev.op) {
        (ev.raddr, ev.rport)
    } else {
        (ev.laddr, ev.lport)
    };
    Query {
        op: ev.op,
        family: ev.family,
        proto: ev.proto.unwrap_or(Proto(0)),
        // An exe that is not verified matches no exe rule, allow or deny:
        // the rules' other conditions and the default decide.
        exe: crate::proc::verified_exe(ev.exe.as_deref()),
        uid: ev.uid,
        addr,
        port,
        path: ev.path.as_deref(),
    }
}

/// The IP protocol as the kernel resolves it (0 → tcp/udp by type).
fn ip_proto(family: u16, ty: u16, proto: i32) -> Option<Proto> {
    if !Family(family).is_ip() {
        return None;
    }
    Some(match (proto, i32::from(ty)) {
        (0, libc::SOCK_STREAM) => Proto::TCP,
        (0, libc::SOCK_DGRAM) => Proto::UDP,
        (p, _) => Proto(p as u16),
    })
}

fn local(sock: &OwnedFd, family: u16) -> Option<(std::net::IpAddr, u16)> {
    sys::sockname(sock)
        .ok()
        .and_then(|b| addr::parse(&b, family, false))
}

/// sizeof(struct mmsghdr) on x86_64: msghdr (56) + msg_len + padding.
/// (src/filter.rs stops a build for another architecture.)
const MMSGHDR_SIZE: usize = 64;
const MSG_LEN_OFFSET: u64 = 56;

/// The address the `struct msghdr` at `ptr` names, if any.
fn msghdr_name(tid: u32, ptr: u64) -> Result<Option<Vec<u8>>, i32> {
    let raw = sys::read_mem(tid, ptr, 12).map_err(|e| sys::errno(&e))?;
    let name_ptr = u64::from_ne_bytes(raw[0..8].try_into().expect("8 bytes"));
    let name_len = u32::from_ne_bytes(raw[8..12].try_into().expect("4 bytes")) as usize;
    if name_ptr == 0 || name_len == 0 {
        return Ok(None);
    }
    if name_len > addr::MAX_SOCKADDR {
        return Err(libc::EINVAL);
    }
    sys::read_mem(tid, name_ptr, name_len)
        .map(Some)
        .map_err(|e| sys::errno(&e))
}

/// A unix socket address's name as rules match it ([`addr::unix_path`]),
/// relative names joined to the calling thread's working directory.
fn unix_name(tid: u32, family: u16, bytes: &[u8]) -> Option<String> {
    if family != libc::AF_UNIX as u16 {
        return None;
    }
    let cwd = || {
        std::fs::read_link(format!("/proc/{tid}/cwd"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    };
    let name = addr::unix_path(bytes, cwd)?;
    if !name.starts_with('/') {
        return Some(name);
    }
    // The kernel follows symlinks in the directories (`/var/run` is
    // `/run`): the name rules see is the one they lead to, or a deny on
    // `/run/user/*/bus` would not hold for `/var/run/user/1000/bus`. Only
    // where the caller sees the files as we do (same root, same mounts);
    // elsewhere the name is marked `?` and no path rule matches it.
    let same_view = std::fs::read_link(format!("/proc/{tid}/root"))
        .is_ok_and(|r| r == std::path::Path::new("/"))
        && crate::proc::same_ns(tid, "mnt");
    if !same_view {
        return Some(format!("?{name}"));
    }
    let raw = std::path::Path::new(std::ffi::OsStr::from_bytes(addr::unix_file_name(bytes)?));
    let full = match (raw.is_absolute(), cwd()) {
        (true, _) => raw.to_path_buf(),
        (false, Some(c)) => std::path::Path::new(&c).join(raw),
        (false, None) => return Some(name),
    };
    match (full.parent().map(std::fs::canonicalize), full.file_name()) {
        (Some(Ok(dir)), Some(file)) if !name.contains('\\') => {
            Some(dir.join(file).to_string_lossy().into_owned())
        }
        // A directory that does not exist (the call will fail) or a name
        // that is not text: as written, folded.
        _ => Some(name),
    }
}

/// Whether a send naming an address is TCP Fast Open: on a stream socket
/// (TCP, MPTCP) with `MSG_FASTOPEN` it connects to that address (the SYN
/// carries the data), so it is decided as `connect`, as netevd decides it,
/// and a `deny ops=connect` holds. Without the flag a stream socket ignores
/// the address. (`TCP_FASTOPEN_CONNECT` defers the SYN of a `connect()`,
/// which is decided as one; a later send's address is ignored.)
fn fast_open(ip: bool, ty: u16, flags: i32) -> bool {
    ip && ty == libc::SOCK_STREAM as u16 && flags & libc::MSG_FASTOPEN != 0
}

/// Copies a `struct msghdr` at `ptr` in the caller and what it points to.
fn read_msghdr(tid: u32, ptr: u64, ty: u16) -> Result<Message, i32> {
    let raw = sys::read_mem(tid, ptr, 56).map_err(|e| sys::errno(&e))?;
    let u64_at = |o: usize| u64::from_ne_bytes(raw[o..o + 8].try_into().expect("8 bytes"));
    let name_ptr = u64_at(0);
    let name_len = u32::from_ne_bytes(raw[8..12].try_into().expect("4 bytes")) as usize;
    let (iov_ptr, iov_len) = (u64_at(16), u64_at(24) as usize);
    let (ctl_ptr, ctl_len) = (u64_at(32), u64_at(40) as usize);
    if iov_len > MAX_IOV {
        return Err(libc::EMSGSIZE);
    }
    if name_len > addr::MAX_SOCKADDR {
        return Err(libc::EINVAL);
    }
    if ctl_len > MAX_CONTROL {
        return Err(libc::ENOBUFS);
    }
    let name = if name_ptr == 0 || name_len == 0 {
        None
    } else {
        Some(sys::read_mem(tid, name_ptr, name_len).map_err(|e| sys::errno(&e))?)
    };
    let iov_raw = sys::read_mem(tid, iov_ptr, iov_len * 16).map_err(|e| sys::errno(&e))?;
    let mut iovs = Vec::with_capacity(iov_len);
    let mut total = 0usize;
    for c in iov_raw.chunks_exact(16) {
        let base = u64::from_ne_bytes(c[0..8].try_into().expect("8 bytes"));
        let len = u64::from_ne_bytes(c[8..16].try_into().expect("8 bytes")) as usize;
        let take = len.min(MAX_DATA - total);
        if take < len && ty != libc::SOCK_STREAM as u16 {
            return Err(libc::EMSGSIZE);
        }
        iovs.push((base, take));
        total += take;
    }
    let data = sys::read_iovs(tid, &iovs).map_err(|e| sys::errno(&e))?;
    let control = if ctl_ptr == 0 || ctl_len == 0 {
        Vec::new()
    } else {
        sys::read_mem(tid, ctl_ptr, ctl_len).map_err(|e| sys::errno(&e))?
    };
    Ok(Message {
        name,
        data,
        control,
    })
}

/// sendmmsg(2) done message by message on our copies; each sent
/// message's length is written back to its `msg_len`, as the kernel does.
fn send_many(
    sock: &OwnedFd,
    tid: u32,
    base: u64,
    msgs: &[Message],
    flags: i32,
    allowed: impl Fn(usize, Option<&Vec<u8>>) -> bool,
) -> Result<i64, i32> {
    let mut sent = 0usize;
    for (i, m) in msgs.iter().enumerate() {
        if !allowed(i, m.name.as_ref()) {
            return if i == 0 {
                Err(libc::EPERM)
            } else {
                Ok(i as i64)
            };
        }
        match sys::sendmsg(sock, m, flags) {
            Ok(n) => {
                let at = base + (i * MMSGHDR_SIZE) as u64 + MSG_LEN_OFFSET;
                let _ = sys::write_mem(tid, at, &(n as u32).to_ne_bytes());
                sent += 1;
            }
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_open_is_a_flag_on_an_ip_stream_socket() {
        let stream = libc::SOCK_STREAM as u16;
        assert!(fast_open(true, stream, libc::MSG_FASTOPEN));
        assert!(fast_open(
            true,
            stream,
            libc::MSG_FASTOPEN | libc::MSG_DONTWAIT
        ));
        assert!(
            !fast_open(true, stream, 0),
            "a stream socket ignores the address"
        );
        assert!(!fast_open(
            true,
            libc::SOCK_DGRAM as u16,
            libc::MSG_FASTOPEN
        ));
        assert!(
            !fast_open(false, stream, libc::MSG_FASTOPEN),
            "unix: no Fast Open"
        );
    }

    #[test]
    fn an_unverified_exe_matches_no_exe_rule() {
        let mut ev = Event::new(Op::Connect);
        ev.exe = Some("?/usr/bin/curl".into());
        assert_eq!(query(&ev).exe, None);
        ev.exe = Some("/usr/bin/curl".into());
        assert_eq!(query(&ev).exe, Some("/usr/bin/curl"));
    }
}
