//! The daemon's life: load and attach, drain and report, detach on the way out.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{SecondsFormat, Utc};
use netev_bpf::{open_capture, Capture, CaptureConfig, Record};
use netev_event::status::{Counters, Hook, Status};
use tracing::{info, warn};

use crate::bus::{Bus, BusConfig};
use crate::enrich::{is_well_formed, Enricher};
use crate::export::{ExportCounters, Exports};
use crate::rules::{ChangeError, Engine, RulesHandle, RulesOwner};
use crate::store::{self, EventStore};
use crate::{Args, PrintFormat};

/// Upper bound on one ring-buffer wait: with batched wake-ups this is the
/// worst-case delay before a lone event is read.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long to wait at exit for the kernel to flush coalesced counts.
const DRAIN_GRACE: Duration = Duration::from_secs(3);
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

pub fn run(args: Args) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "netevd must run as root: it loads BPF programs and attaches them to a cgroup \
             (try: sudo netevd --foreground --print text)"
        );
    }
    let cgroup = match &args.cgroup {
        Some(p) => p.clone(),
        None => netev_bpf::cgroup::cgroup2_root()?,
    };

    let mut ready = if args.foreground {
        None
    } else {
        Some(daemonize(args.print.is_some())?)
    };

    let setup = Setup::new(&args, cgroup);
    let mut setup = match setup {
        Ok(s) => s,
        Err(e) => {
            if let Some(r) = ready.take() {
                r.fail(&format!("{e:#}"));
                std::process::exit(1);
            }
            return Err(e);
        }
    };
    if let Some(r) = ready.take() {
        r.ok();
    }
    setup.serve()
}

struct Setup {
    capture: Box<dyn Capture>,
    cgroup: PathBuf,
    coalesce: bool,
    print: Option<PrintFormat>,
    run_dir: PathBuf,
    _lock: File,
    stop: Arc<AtomicBool>,
    report: Arc<AtomicBool>,
    bus: Option<Bus>,
    /// `--metrics`: the endpoint, fed the same status as the bus.
    metrics: Option<crate::metrics::Metrics>,
    store: Option<Arc<EventStore>>,
    /// `--export`: started here, handed to the sink by `serve`.
    exports: Option<Exports>,
    export_counters: ExportCounters,
    /// The store's (written, lost) when it stopped.
    store_final: std::cell::Cell<(u64, u64)>,
    started: chrono::DateTime<Utc>,
    t0: Instant,
    /// The rules owner's thread; `rules` is the handle on it.
    rules_owner: Option<RulesOwner>,
    rules: RulesHandle,
    prompt_timeout: Duration,
    /// SIGHUP: read the configuration file and the rules again.
    reload: Arc<AtomicBool>,
    /// A reload whose rules the owner is applying: the settings to take
    /// once it says they are in.
    pending_reload: Option<(Args, ReloadReply)>,
    /// The settings netevd started with, and the last ones read.
    started_with: Args,
    args: Args,
}

impl Setup {
    fn new(args: &Args, cgroup: PathBuf) -> Result<Setup> {
        let lock = lock_run_dir(&args.run_dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, report.clone())?;
        let reload = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())?;

        let mut config = CaptureConfig::new(cgroup.clone());
        config.coalesce = !args.no_coalesce;
        config.backend = args.backend.0;
        config.ringbuf_bytes = args.ringbuf_size;
        config.pin_dir = args.pin_dir.0.clone();
        let db = args.state_dir.join("rules.db");
        let mut engine = Engine::open(&db)?;
        let file_rules = match &args.rules_file {
            Some(f) => Some(crate::rules::read_rules_file(f)?),
            None => None,
        };
        engine
            .apply_config(&args.file, file_rules)
            .context("applying the configuration's policy and rules file")?;
        info!(rules = engine.rules().len(), db = %db.display(), "rules loaded");
        let mut capture = open_capture(&config)
            .with_context(|| format!("cannot capture in cgroup {}", cgroup.display()))?;
        // Rules are in force before anyone is told the daemon is up: the
        // owner installs them before it starts.
        let tables = capture.rule_tables()?;
        let (rules_owner, rules) = RulesOwner::start(engine, tables)?;
        info!(
            backend = capture.kind().name(),
            cgroup = %cgroup.display(),
            hooks = capture.hooks().len(),
            "capturing"
        );
        for note in capture.notes() {
            info!("{note}");
        }
        let mut setup = Setup {
            capture,
            cgroup,
            coalesce: config.coalesce,
            print: args.print,
            run_dir: args.run_dir.clone(),
            _lock: lock,
            stop,
            report,
            bus: None,
            metrics: None,
            store: None,
            exports: None,
            export_counters: ExportCounters::default(),
            store_final: std::cell::Cell::new((0, 0)),
            started: Utc::now(),
            t0: Instant::now(),
            rules_owner: Some(rules_owner),
            rules,
            prompt_timeout: Duration::from_secs(args.prompt_timeout),
            reload,
            pending_reload: None,
            started_with: args.clone(),
            args: args.clone(),
        };
        let retention = netev_store::Retention {
            max_age: args.store_max_age.0,
            max_rows: (args.store_max_rows > 0).then_some(args.store_max_rows),
        };
        let host = args.host_name.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into())
        });
        let (exports, export_counters) = Exports::start(&args.export, &args.state_dir, &host)?;
        (setup.exports, setup.export_counters) = (Some(exports), export_counters);
        setup.store = store::start(&args.store, &args.state_dir, host, retention);
        if let Some(target) = &args.bus.0 {
            let bus = Bus::start(
                target.clone(),
                BusConfig {
                    access_group: args.access_group.clone(),
                    rules: setup.rules.clone(),
                    store: setup.store.as_ref().map(|s| s.target.clone()),
                    status: setup.status(&Counters::default()),
                },
            )?;
            setup.bus = Some(bus);
        }
        if let Some(addr) = args.metrics.0 {
            let status = setup.status(&Counters::default());
            setup.metrics = Some(crate::metrics::Metrics::start(addr, status)?);
        }
        Ok(setup)
    }

    fn serve(&mut self) -> Result<()> {
        let mut sink = Sink::new(
            self.print,
            self.bus.take(),
            self.store.clone(),
            self.exports.take().unwrap_or_default(),
            self.prompt_timeout,
        );
        let mut last_status = Instant::now() - STATUS_INTERVAL;
        let mut last_dropped = 0;

        while !self.stop.load(Ordering::Relaxed) {
            self.capture
                .poll(POLL_INTERVAL, &mut |rec| sink.handle(rec))?;
            sink.flush();
            if self.reload.swap(false, Ordering::Relaxed) {
                self.reload_config();
            }
            self.finish_reload(&mut sink);
            if self.report.swap(false, Ordering::Relaxed) {
                self.log_counters(&sink, "counters");
            }
            if last_status.elapsed() >= STATUS_INTERVAL {
                last_status = Instant::now();
                self.rules.hits(std::mem::take(&mut sink.hits));
                let status = self.status(&self.counters(&sink));
                let dropped = status.counters.dropped;
                if let Err(e) = self.write_status(&status) {
                    warn!("cannot write status file: {e:#}");
                }
                if let Some(m) = &self.metrics {
                    m.set_status(status.clone());
                }
                if let Some(bus) = &sink.bus {
                    bus.set_status(status);
                }
                if dropped > last_dropped {
                    warn!(
                        lost = dropped - last_dropped,
                        total = dropped,
                        "ring buffer full: events lost; raise --ringbuf-size"
                    );
                    last_dropped = dropped;
                }
            }
        }

        info!("stopping: detaching hooks and draining");
        self.capture
            .detach_and_drain(DRAIN_GRACE, &mut |rec| sink.handle(rec))?;
        sink.flush();
        if let Some(bus) = sink.bus.take() {
            bus.set_status(self.status(&self.counters(&sink)));
            sink.bus_dropped = bus.dropped();
            bus.shutdown();
        }
        // the last hit counts are written before we go
        self.rules.hits(std::mem::take(&mut sink.hits));
        if let Some(owner) = self.rules_owner.take() {
            owner.stop();
        }
        // what is queued for the exports and the store is sent, spooled
        // or written before we go
        sink.exports.stop();
        sink.store = None;
        self.store_stats();
        if let Some(store) = self.store.take() {
            match Arc::try_unwrap(store) {
                Ok(store) => {
                    let st = store.writer.stop();
                    self.store_final.set((
                        st.written.load(Ordering::Relaxed),
                        st.lost.load(Ordering::Relaxed),
                    ));
                }
                Err(_) => warn!("the event store is still in use; its queue may not be written"),
            }
        }
        self.log_counters(&sink, "final counters");
        let _ = std::fs::remove_file(self.run_dir.join("status.json"));
        Ok(())
    }

    /// SIGHUP: the configuration file and the rules, read again.
    /// Everything is checked before anything changes; a bad file leaves the
    /// running configuration as it is and says why. The rules go first, to
    /// the rules owner (the one step that can still fail: the rules
    /// database); the rest is taken once it says they are in
    /// ([`Setup::finish_reload`]), so capture never waits for the reload.
    fn reload_config(&mut self) {
        let next = match self.args.reloaded() {
            Ok(n) => n,
            Err(e) => {
                warn!("configuration not reloaded, the running one stays: {e}");
                return;
            }
        };
        let file_rules = match &next.rules_file {
            Some(f) => match crate::rules::read_rules_file(f) {
                Ok(r) => Some(r),
                Err(e) => {
                    warn!("configuration not reloaded, the running one stays: {e:#}");
                    return;
                }
            },
            None => None,
        };
        let reply = self.rules.reload(next.file.clone(), file_rules);
        // A SIGHUP during a reload: the newer file wins, the older reload's
        // rules are still applied in order by the owner.
        self.pending_reload = Some((next, reply));
    }

    /// Takes the rest of a reloaded configuration once its rules are in.
    fn finish_reload(&mut self, sink: &mut Sink) {
        let Some((_, reply)) = &mut self.pending_reload else {
            return;
        };
        let outcome = match reply.try_recv() {
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return,
            Ok(r) => r,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Err(ChangeError::Stopped),
        };
        let (next, _) = self.pending_reload.take().expect("checked above");
        if let Err(e) = outcome {
            warn!("configuration not reloaded, the running one stays: rules: {e}");
            return;
        }
        let file = next.config_path();
        // The log level was checked when the file was read.
        if let Err(e) = crate::set_log_level(&next.log_level) {
            warn!("log_level not changed: {e}");
        }
        for key in crate::config::restart_only_changes(&self.started_with, &next) {
            warn!(
                "{key} changed in {}: it takes effect when netevd restarts",
                file.display()
            );
        }
        self.prompt_timeout = Duration::from_secs(next.prompt_timeout);
        sink.prompt_timeout = self.prompt_timeout;
        info!(file = %file.display(), "configuration and rules reloaded");
        self.args = next;
    }

    fn counters(&self, sink: &Sink) -> Counters {
        let k = self.capture.counters().unwrap_or_default();
        let (stored, store_lost) = self.store_stats();
        let (exported, export_lost, export_spooled) = self.export_counters.totals();
        Counters {
            seen: k.seen,
            delivered: sink.delivered,
            dropped: k.dropped,
            calls: k.calls,
            coalesced: k.coalesced,
            events: sink.events,
            bus_dropped: sink.bus_dropped(),
            stored,
            store_lost,
            exported,
            export_lost,
            export_spooled,
        }
    }

    /// (written, lost) by the event store so far; kept at the end.
    fn store_stats(&self) -> (u64, u64) {
        match &self.store {
            Some(s) => {
                let st = s.writer.stats();
                let v = (
                    st.written.load(Ordering::Relaxed),
                    st.lost.load(Ordering::Relaxed),
                );
                self.store_final.set(v);
                v
            }
            None => self.store_final.get(),
        }
    }

    fn log_counters(&self, sink: &Sink, what: &str) {
        let c = self.counters(sink);
        info!(
            seen = c.seen,
            delivered = c.delivered,
            dropped = c.dropped,
            calls = c.calls,
            coalesced = c.coalesced,
            events = c.events,
            bus_dropped = c.bus_dropped,
            stored = c.stored,
            store_lost = c.store_lost,
            exported = c.exported,
            export_lost = c.export_lost,
            export_spooled = c.export_spooled,
            "{what}"
        );
        if c.dropped > 0 {
            warn!(
                dropped = c.dropped,
                "the ring buffer overflowed: events were lost; raise --ringbuf-size"
            );
        }
    }

    fn status(&self, counters: &Counters) -> Status {
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            started: self.started.to_rfc3339_opts(SecondsFormat::Secs, true),
            uptime_secs: self.t0.elapsed().as_secs(),
            backend: self.capture.kind().name().to_string(),
            cgroup: self.cgroup.display().to_string(),
            coalesce: self.coalesce,
            hooks: self
                .capture
                .hooks()
                .iter()
                .map(|h| Hook {
                    op: h.op.to_string(),
                    attach: h.attach.to_string(),
                    mode: h.mode.name().to_string(),
                })
                .collect(),
            notes: {
                let mut notes = self.capture.notes().to_vec();
                if let Some(s) = &self.store {
                    match s.writer.stats().error() {
                        Some(e) => notes.push(format!("event store failing: {e}")),
                        None => notes.push(format!("events stored in {}", s.target_display())),
                    }
                }
                notes.extend(self.export_counters.notes());
                notes
            },
            counters: *counters,
        }
    }

    fn write_status(&self, status: &Status) -> Result<()> {
        // what GetStatus serves everyone
        crate::files::write_public(
            &self.run_dir,
            "status.json",
            netev_event::display::to_json_pretty(status).as_bytes(),
        )
    }
}

/// Where records go: enrichment, then (optionally) standard output.
struct Sink {
    enricher: Enricher,
    store: Option<Arc<EventStore>>,
    exports: Exports,
    out: Option<(PrintFormat, BufWriter<std::io::Stdout>)>,
    bus: Option<Bus>,
    /// Operations per rule id since the last tick.
    hits: std::collections::HashMap<u32, u64>,
    prompt_timeout: Duration,
    delivered: u64,
    events: u64,
    /// Final value once the bus is shut down.
    bus_dropped: u64,
}

impl Sink {
    fn new(
        print: Option<PrintFormat>,
        bus: Option<Bus>,
        store: Option<Arc<EventStore>>,
        exports: Exports,
        prompt_timeout: Duration,
    ) -> Sink {
        Sink {
            store,
            exports,
            enricher: Enricher::new(),
            out: print.map(|f| (f, BufWriter::with_capacity(1 << 16, std::io::stdout()))),
            bus,
            hits: std::collections::HashMap::new(),
            prompt_timeout,
            delivered: 0,
            events: 0,
            bus_dropped: 0,
        }
    }

    fn bus_dropped(&self) -> u64 {
        match &self.bus {
            Some(bus) => bus.dropped(),
            None => self.bus_dropped,
        }
    }

    fn handle(&mut self, rec: Record) {
        self.delivered += 1;
        match rec {
            Record::Net(raw) => {
                if !is_well_formed(&raw) {
                    warn!(
                        op = raw.hdr.op,
                        verdict = raw.hdr.verdict,
                        "malformed event record"
                    );
                    return;
                }
                self.events += 1;
                if raw.rule_id != 0 {
                    *self.hits.entry(raw.rule_id).or_default() += u64::from(raw.count);
                }
                let asked = raw.hdr.flags & netev_bpf::abi::F_ASKED != 0;
                if asked {
                    self.raise_prompt(&raw);
                }
                let subscribed = self.bus.as_ref().is_some_and(Bus::wants_events);
                if self.out.is_none()
                    && !subscribed
                    && self.store.is_none()
                    && self.exports.is_empty()
                {
                    // Nobody reads events right now: don't look up names
                    // and /proc for them. (Exec records still feed the
                    // caches, so later events are named as before.)
                    return;
                }
                let Some(ev) = self.enricher.event(&raw) else {
                    return; // unreachable: checked above
                };
                if let Some((format, out)) = &mut self.out {
                    let res = match format {
                        PrintFormat::Json => netev_event::display::write_json(&mut *out, &ev)
                            .map_err(std::io::Error::from)
                            .and_then(|()| out.write_all(b"\n")),
                        PrintFormat::Text => writeln!(out, "{}", ev.to_text()),
                    };
                    if let Err(e) = res {
                        self.stop_printing(e);
                    }
                }
                self.exports.push(&ev);
                match (&self.store, subscribed) {
                    (Some(store), true) => store.writer.push(ev.clone()),
                    (Some(store), false) => {
                        store.writer.push(ev);
                        return;
                    }
                    (None, _) => {}
                }
                if subscribed {
                    if let Some(bus) = &self.bus {
                        bus.publish(ev);
                    }
                }
            }
            Record::Exec(ex) => self.enricher.on_exec(&ex),
            Record::Exit { pid, .. } => self.enricher.on_exit(pid),
        }
    }

    /// Hands an asked-about operation to the bus, which raises one prompt
    /// per pending question (same program, user, op, destination).
    fn raise_prompt(&mut self, raw: &netev_bpf::abi::RawEvent) {
        let Some(bus) = &self.bus else { return };
        let Some(ev) = self.enricher.event(raw) else {
            return;
        };
        bus.raise_prompt(ev, Instant::now() + self.prompt_timeout);
    }

    fn flush(&mut self) {
        if let Some((_, out)) = &mut self.out {
            if let Err(e) = out.flush() {
                self.stop_printing(e);
            }
        }
    }

    /// A closed stdout (the reader went away) stops printing, not capture.
    fn stop_printing(&mut self, e: std::io::Error) {
        warn!("cannot print events any more ({e}); capture goes on");
        self.out = None;
    }
}

/// One netevd per run directory: its status file would be ambiguous otherwise.
fn lock_run_dir(dir: &Path) -> Result<File> {
    // readable by everyone: `netev status` reads the status file in it
    crate::files::own_dir(dir, 0o755, "run directory")?;
    let path = dir.join("netevd.lock");
    let file = crate::files::open_private(&path)?;
    // SAFETY: flock on an fd we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let pid = std::fs::read_to_string(&path).unwrap_or_default();
        bail!(
            "another netevd (pid {}) is already running with run directory {}; stop it or pass another --run-dir",
            pid.trim(),
            dir.display()
        );
    }
    let mut f = &file;
    f.set_len(0)?;
    write!(f, "{}", std::process::id())?;
    Ok(file)
}

/// The child's end of the readiness pipe: the parent exits once it hears back.
struct Ready(UnixStream);

impl Ready {
    fn ok(mut self) {
        let _ = self.0.write_all(b"ok");
    }
    fn fail(mut self, msg: &str) {
        let _ = self.0.write_all(msg.as_bytes());
    }
}

/// Forks; the parent waits until the child has attached (or failed) and
/// exits with the outcome, so `netevd && ...` only goes on once capture runs.
/// The child lets go of stdin, and of stdout unless it prints events, so a
/// caller reading the parent's output is not held open by the daemon.
fn daemonize(keep_stdout: bool) -> Result<Ready> {
    let (mut parent_end, child_end) = UnixStream::pair().context("creating a socket pair")?;
    // SAFETY: single-threaded at this point (no threads started yet).
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Parent { child } => {
            drop(child_end);
            let mut answer = String::new();
            let _ = parent_end.read_to_string(&mut answer);
            if answer == "ok" {
                println!("netevd running as pid {child}");
                std::process::exit(0);
            }
            if answer.is_empty() {
                answer = "the daemon exited during start-up".into();
            }
            eprintln!("netevd: {answer}");
            std::process::exit(1);
        }
        nix::unistd::ForkResult::Child => {
            drop(parent_end);
            nix::unistd::setsid().context("setsid")?;
            std::env::set_current_dir("/").context("chdir /")?;
            let null = File::options()
                .read(true)
                .write(true)
                .open("/dev/null")
                .context("opening /dev/null")?;
            let mut fds = vec![libc::STDIN_FILENO];
            if !keep_stdout {
                fds.push(libc::STDOUT_FILENO);
            }
            for fd in fds {
                // SAFETY: dup2 onto a standard descriptor we own.
                if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
                    return Err(std::io::Error::last_os_error())
                        .context("redirecting to /dev/null");
                }
            }
            Ok(Ready(child_end))
        }
    }
}

/// The rules owner's answer to a reload's rules.
type ReloadReply = tokio::sync::oneshot::Receiver<Result<(), ChangeError>>;
