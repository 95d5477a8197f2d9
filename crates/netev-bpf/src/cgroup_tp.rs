//! Both backends' loader: the BPF LSM object (netev_lsm.bpf.c) where the
//! kernel runs LSM programs, and the cgroup + tracepoint object
//! (netev.bpf.c) where it does not. They share their maps' names and
//! layouts (common.h), so one loader drives either; only the list of
//! programs and how each attaches differ.

use std::cell::RefCell;
use std::fs::File;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, OpenObject, RingBuffer, RingBufferBuilder};
use tracing::{debug, warn};

use crate::backend::{BackendKind, Capture, CaptureConfig, HookInfo, HookMode, KernelCounters};
use crate::cgroup::check_cgroup2_dir;
use crate::rules::{MapRuleTables, RuleMaps};
use crate::skel::{NetevSkel, NetevSkelBuilder};
use crate::skel_lsm::{NetevLsmSkel, NetevLsmSkelBuilder};
use crate::Error;
use netev_abi::{counter, Record};

/// Records decoded by the ring-buffer callback, waiting for `poll`'s sink.
type Inbox = Rc<RefCell<Vec<Record>>>;

/// One of the two loaded objects.
enum Skeleton {
    Cgroup(Box<NetevSkel<'static>>),
    Lsm(Box<NetevLsmSkel<'static>>),
}

/// `$body` with `$m` bound to the loaded object's maps, whichever object it
/// is: the two generated map structs have the same field names and types.
macro_rules! with_maps {
    ($skel:expr, $m:ident => $body:expr) => {{
        let skel: &Skeleton = $skel;
        match skel {
            Skeleton::Cgroup(s) => {
                let $m = &s.maps;
                $body
            }
            Skeleton::Lsm(s) => {
                let $m = &s.maps;
                $body
            }
        }
    }};
}

/// The BPF LSM backend — LSM hooks on socket, bind, listen, connect, sendmsg
/// and a SYN's arrival (every op enforceable), scoped to the tasks in the
/// target cgroup — or the cgroup + tracepoint backend: cgroup-BPF hooks on a
/// cgroup v2 directory (socket, bind, connect, UDP sendmsg/recvmsg). Both
/// have syscall tracepoints (socket, listen, accept) scoped to the same
/// cgroup for the events' return values, the cgroup recvmsg hooks, and
/// exec/exit tracking.
///
/// Field order matters: the ring buffer and the links borrow from the
/// skeleton, which borrows from `storage`; `Drop` releases them in that order.
pub struct BpfCapture {
    ringbuf: ManuallyDrop<RingBuffer<'static>>,
    links: Vec<Link>,
    skel: ManuallyDrop<Box<Skeleton>>,
    kind: BackendKind,
    storage: *mut MaybeUninit<OpenObject>,
    inbox: Inbox,
    hooks: Vec<HookInfo>,
    notes: Vec<String>,
    /// Whether [`Capture::rule_tables`] was handed out (there is one set).
    tables_taken: bool,
    _cgroup: File,
    /// Where our links are pinned, if they are.
    pins: Option<PathBuf>,
    /// Links a previous netevd left pinned on this cgroup: kept attached
    /// until our first rules are installed, so enforcement has no gap.
    stale: Vec<Link>,
}

/// The cgroup + tracepoint backend (the name it has always had).
pub type CgroupCapture = BpfCapture;

/// (program, op, attach point), cgroup programs first.
const CGROUP_HOOKS: &[(&str, &str, &str)] = &[
    ("netev_sock_create", "socket", "cgroup/sock_create"),
    ("netev_bind4", "bind", "cgroup/bind4"),
    ("netev_bind6", "bind", "cgroup/bind6"),
    ("netev_connect4", "connect", "cgroup/connect4"),
    ("netev_connect6", "connect", "cgroup/connect6"),
    ("netev_sendmsg4", "sendmsg", "cgroup/sendmsg4"),
    ("netev_sendmsg6", "sendmsg", "cgroup/sendmsg6"),
    ("netev_recvmsg4", "recvmsg", "cgroup/recvmsg4"),
    ("netev_recvmsg6", "recvmsg", "cgroup/recvmsg6"),
];

/// The LSM backend's own programs (its tracepoints are TRACEPOINT_HOOKS).
const LSM_HOOKS: &[(&str, &str, &str)] = &[
    ("netev_lsm_socket_create", "socket", "lsm/socket_create"),
    ("netev_lsm_socket_bind", "bind", "lsm/socket_bind"),
    ("netev_lsm_socket_listen", "listen", "lsm/socket_listen"),
    ("netev_lsm_socket_connect", "connect", "lsm/socket_connect"),
    ("netev_lsm_socket_sendmsg", "sendmsg", "lsm/socket_sendmsg"),
    ("netev_lsm_conn_request", "accept", "lsm/inet_conn_request"),
    // bookkeeping: forgets a freed listener's owner
    ("netev_lsm_sk_free", "close", "lsm/sk_free_security"),
];

/// The cgroup hooks the LSM backend attaches too: a datagram's source is
/// known only after it arrived.
const LSM_CGROUP_HOOKS: &[(&str, &str, &str)] = &[
    ("netev_recvmsg4", "recvmsg", "cgroup/recvmsg4"),
    ("netev_recvmsg6", "recvmsg", "cgroup/recvmsg6"),
];

/// The LSM backend's event programs: fexit and raw (BTF) tracepoints, which
/// attach through bpf() with CAP_BPF + CAP_PERFMON, where the syscall
/// tracepoints are perf events that Debian's kernels
/// (`kernel.perf_event_paranoid` = 3) open only for CAP_SYS_ADMIN.
const LSM_TRACE_HOOKS: &[(&str, &str, &str)] = &[
    ("netev_fx_socket", "socket", "fexit/__sys_socket"),
    ("netev_fx_listen", "listen", "fexit/__sys_listen"),
    ("netev_fx_accept4", "accept", "fexit/__sys_accept4"),
    ("netev_tp_exec", "exec", "tp_btf/sched_process_exec"),
    ("netev_tp_exit", "exit", "tp_btf/sched_process_exit"),
];

const TRACEPOINT_HOOKS: &[(&str, &str, &str)] = &[
    ("netev_exit_socket", "socket", "syscalls/sys_exit_socket"),
    ("netev_exit_listen", "listen", "syscalls/sys_exit_listen"),
    ("netev_exit_accept", "accept", "syscalls/sys_exit_accept"),
    ("netev_exit_accept4", "accept", "syscalls/sys_exit_accept4"),
    ("netev_exec", "exec", "sched/sched_process_exec"),
    ("netev_exit", "exit", "sched/sched_process_exit"),
];

impl BpfCapture {
    /// Loads the cgroup + tracepoint programs and attaches them to
    /// `config.cgroup`.
    pub fn open(config: &CaptureConfig) -> Result<Self, Error> {
        Self::open_kind(config, BackendKind::CgroupTracepoints)
    }

    /// Loads the BPF LSM programs, scoped to the tasks in `config.cgroup`.
    pub fn open_lsm(config: &CaptureConfig) -> Result<Self, Error> {
        Self::open_kind(config, BackendKind::BpfLsm)
    }

    fn open_kind(config: &CaptureConfig, kind: BackendKind) -> Result<Self, Error> {
        check_cgroup2_dir(&config.cgroup)?;
        let cgroup = File::open(&config.cgroup).map_err(|e| Error::Io {
            what: format!("opening cgroup {}", config.cgroup.display()),
            source: e,
        })?;
        if kind == BackendKind::CgroupTracepoints {
            ensure_tracefs();
        }

        let storage: *mut MaybeUninit<OpenObject> = Box::into_raw(Box::new(MaybeUninit::uninit()));
        // SAFETY: `storage` stays allocated until Drop, after the skeleton
        // that borrows it is gone; 'static stands for "as long as self".
        let storage_ref: &'static mut MaybeUninit<OpenObject> = unsafe { &mut *storage };
        let skel_ptr: *mut Skeleton = match Self::load(config, kind, storage_ref) {
            Ok(skel) => Box::into_raw(skel),
            Err(e) => {
                // SAFETY: nothing borrows `storage` any more.
                drop(unsafe { Box::from_raw(storage) });
                return Err(e);
            }
        };
        // SAFETY: the skeleton lives at a stable heap address until Drop,
        // where the ring buffer that borrows it is dropped first.
        let skel_ref: &'static Skeleton = unsafe { &*skel_ptr };

        let inbox: Inbox = Rc::new(RefCell::new(Vec::with_capacity(4096)));
        let sink = inbox.clone();
        let mut builder = RingBufferBuilder::new();
        let callback = move |data: &[u8]| {
            match netev_abi::decode(data) {
                Ok(rec) => sink.borrow_mut().push(rec),
                // an ABI mismatch: a bug, said loudly
                Err(e) => warn!("undecodable record: {e}"),
            }
            0
        };
        let ringbuf = with_maps!(skel_ref, m => builder.add(&m.events, callback).map(|_| ()))
            .and_then(|()| builder.build());
        let ringbuf = match ringbuf {
            Ok(rb) => rb,
            Err(e) => {
                // SAFETY: as in Drop, skeleton before its storage.
                unsafe {
                    drop(Box::from_raw(skel_ptr));
                    drop(Box::from_raw(storage));
                }
                return Err(Error::bpf("setting up the ring buffer", e));
            }
        };

        let mut me = BpfCapture {
            ringbuf: ManuallyDrop::new(ringbuf),
            links: Vec::new(),
            // SAFETY: ownership of the Box taken back exactly once.
            skel: ManuallyDrop::new(unsafe { Box::from_raw(skel_ptr) }),
            kind,
            storage,
            inbox,
            hooks: Vec::new(),
            notes: Vec::new(),
            tables_taken: false,
            _cgroup: cgroup,
            pins: None,
            stale: Vec::new(),
        };
        if let Some(dir) = &config.pin_dir {
            match pin_dir_for(dir, &config.cgroup) {
                Ok(d) => me.pins = Some(d),
                Err(e) => me.notes.push(format!(
                    "not pinned ({e}): if netevd dies, its programs detach and nothing is \
                     enforced until it is back"
                )),
            }
        }
        me.attach(&config.cgroup.display().to_string())?;
        Ok(me)
    }

    /// Loads (verifies) a backend's object without attaching anything, and
    /// unloads it: whether this kernel takes it (`netevd --check-backend`,
    /// which `netev doctor` runs).
    pub fn check_loads(kind: BackendKind) -> Result<(), Error> {
        let mut config = CaptureConfig::new(PathBuf::from("/"));
        config.ringbuf_bytes = 1 << 16;
        let storage: *mut MaybeUninit<OpenObject> = Box::into_raw(Box::new(MaybeUninit::uninit()));
        // SAFETY: the skeleton that borrows `storage` is dropped before it.
        let result = Self::load(&config, kind, unsafe { &mut *storage }).map(drop);
        // SAFETY: nothing borrows `storage` any more.
        drop(unsafe { Box::from_raw(storage) });
        result
    }

    fn load(
        config: &CaptureConfig,
        kind: BackendKind,
        storage: &'static mut MaybeUninit<OpenObject>,
    ) -> Result<Box<Skeleton>, Error> {
        // The two open skeletons have the same settings and maps, under
        // different types.
        // The exemption names the daemon by pid and start time, so that a
        // process that later gets a dead daemon's pid is not exempt.
        let self_start =
            netev_host::proc_status::start_ticks(config.exclude_tgid).map_err(|e| Error::Io {
                what: format!("reading when process {} started", config.exclude_tgid),
                source: e,
            })?;
        macro_rules! configure_and_load {
            ($builder:expr, $variant:ident) => {{
                let mut open = $builder
                    .open(storage)
                    .map_err(|e| Error::bpf("opening the BPF object", e))?;
                let rodata = open
                    .maps
                    .rodata_data
                    .as_deref_mut()
                    .expect("the BPF object has read-only settings");
                rodata.self_tgid = config.exclude_tgid;
                rodata.self_start_ticks = self_start;
                rodata.coalesce = config.coalesce as u8;
                rodata.wakeup_bytes = config.wakeup_bytes;
                open.maps
                    .events
                    .set_max_entries(config.ringbuf_bytes)
                    .map_err(|e| Error::bpf("sizing the ring buffer", e))?;
                let log = crate::verifier::Capture::start();
                let loaded = open.load();
                let log = log.finish();
                let skel = loaded.map_err(|e| load_error(kind, e, &log))?;
                Skeleton::$variant(Box::new(skel))
            }};
        }
        Ok(Box::new(match kind {
            BackendKind::CgroupTracepoints => {
                configure_and_load!(NetevSkelBuilder::default(), Cgroup)
            }
            BackendKind::BpfLsm => configure_and_load!(NetevLsmSkelBuilder::default(), Lsm),
        }))
    }

    fn attach(&mut self, cgroup_name: &str) -> Result<(), Error> {
        let cgroup_fd = self._cgroup.as_raw_fd();
        // Tracepoints see the whole machine: tell them which cgroup is ours.
        with_maps!(&self.skel, m => m.target_cgroup.update(
            &0u32.to_ne_bytes(),
            &(cgroup_fd as u32).to_ne_bytes(),
            MapFlags::ANY,
        ))
        .map_err(|e| Error::bpf("registering the target cgroup", e))?;

        if self.kind == BackendKind::BpfLsm {
            for &(prog_name, op, attach) in LSM_HOOKS {
                let link = self
                    .program(prog_name)
                    .attach_lsm()
                    .map_err(|e| Error::bpf(format!("attaching {attach}"), e))?;
                self.links.push(link);
                self.hooks.push(HookInfo {
                    op,
                    attach,
                    mode: if op == "close" {
                        HookMode::Observe
                    } else {
                        HookMode::Enforce
                    },
                });
            }
        }
        let cgroup_hooks = match self.kind {
            BackendKind::BpfLsm => LSM_CGROUP_HOOKS,
            BackendKind::CgroupTracepoints => CGROUP_HOOKS,
        };
        for &(prog_name, op, attach) in cgroup_hooks {
            let prog = self.program(prog_name);
            // bpf_link attachment: other programs on the cgroup (systemd's)
            // keep running beside ours.
            let link = prog
                .attach_cgroup(cgroup_fd)
                .map_err(|e| Error::bpf(format!("attaching {attach} to {cgroup_name}"), e))?;
            self.links.push(link);
            self.hooks.push(HookInfo {
                op,
                attach,
                mode: if op == "recvmsg" {
                    HookMode::Observe
                } else {
                    HookMode::Enforce
                },
            });
        }
        let trace_hooks = match self.kind {
            BackendKind::BpfLsm => LSM_TRACE_HOOKS,
            BackendKind::CgroupTracepoints => TRACEPOINT_HOOKS,
        };
        for &(prog_name, op, attach) in trace_hooks {
            // attached by its SEC("tracepoint/…" | "fexit/…" | "tp_btf/…") name
            let link = self
                .program(prog_name)
                .attach()
                .map_err(|e| attach_error(attach, e))?;
            self.links.push(link);
            self.hooks.push(HookInfo {
                op,
                attach,
                mode: HookMode::Observe,
            });
        }
        debug!(links = self.links.len(), "attached");
        if let Some(dir) = self.pins.clone() {
            self.pin_links(&dir)?;
        }
        Ok(())
    }

    /// Pins every link under `dir`, taking over the pins of a netevd that
    /// died: its links are kept in `stale` until our rules are in.
    fn pin_links(&mut self, dir: &Path) -> Result<(), Error> {
        let io = |what: String| move |source| Error::Io { what, source };
        for (link, hook) in self.links.iter_mut().zip(&self.hooks) {
            let path = netev_host::pins::link_file(dir, hook.attach);
            if path.exists() {
                match Link::open(&path) {
                    Ok(old) => self.stale.push(old),
                    Err(e) => warn!("cannot open the old pin {}: {e}", path.display()),
                }
                std::fs::remove_file(&path)
                    .map_err(io(format!("removing the old pin {}", path.display())))?;
            }
            link.pin(&path)
                .map_err(|e| Error::bpf(format!("pinning {}", path.display()), e))?;
        }
        if !self.stale.is_empty() {
            self.notes.push(format!(
                "took over from a netevd that did not stop cleanly: its {} programs, \
                 pinned in {}, stay attached until the rules are installed",
                self.stale.len(),
                dir.display()
            ));
        }
        Ok(())
    }

    /// Unpins our links (a clean stop: they detach when dropped).
    fn unpin_links(&mut self) {
        for link in &mut self.links {
            if link.pin_path().is_some() {
                if let Err(e) = link.unpin() {
                    warn!("cannot unpin a link: {e}");
                }
            }
        }
        if let Some(dir) = self.pins.take() {
            let _ = std::fs::remove_dir(&dir);
        }
    }

    fn program(&self, name: &str) -> libbpf_rs::ProgramMut<'_> {
        let skel: &Skeleton = &self.skel;
        let object = match skel {
            Skeleton::Cgroup(s) => s.object(),
            Skeleton::Lsm(s) => s.object(),
        };
        object
            .progs_mut()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| unreachable!("no BPF program {name}"))
    }

    /// Adds a line to [`Capture::notes`].
    pub fn add_note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn drain_inbox(&mut self, sink: &mut dyn FnMut(Record)) -> usize {
        let batch = std::mem::take(&mut *self.inbox.borrow_mut());
        let n = batch.len();
        for rec in batch {
            sink(rec);
        }
        n
    }

    fn flows_empty(&self) -> bool {
        with_maps!(&self.skel, m => m.flows.keys().next().is_none())
    }
}

impl Capture for BpfCapture {
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn hooks(&self) -> &[HookInfo] {
        &self.hooks
    }

    fn notes(&self) -> &[String] {
        &self.notes
    }

    fn counters(&self) -> Result<KernelCounters, Error> {
        let mut sums = [0u64; counter::MAX as usize];
        for (i, sum) in sums.iter_mut().enumerate() {
            let per_cpu = with_maps!(&self.skel, m => m
                .counters
                .lookup_percpu(&(i as u32).to_ne_bytes(), MapFlags::ANY))
            .map_err(|e| Error::bpf("reading counters", e))?
            .unwrap_or_default();
            *sum = per_cpu
                .iter()
                .filter_map(|v| v.get(..8))
                .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
                .sum();
        }
        Ok(KernelCounters {
            seen: sums[counter::SEEN as usize],
            dropped: sums[counter::DROPPED as usize],
            calls: sums[counter::CALLS as usize],
            coalesced: sums[counter::COALESCED as usize],
        })
    }

    fn rule_tables(&mut self) -> Result<Box<dyn crate::RuleTables>, Error> {
        if self.tables_taken {
            return Err(Error::Rules(
                "the rule tables of this capture are already in use".into(),
            ));
        }
        macro_rules! handle {
            ($map:ident) => {
                with_maps!(&self.skel, m => MapHandle::try_from(&m.$map))
                    .map_err(|e| Error::bpf(concat!("duplicating ", stringify!($map)), e))?
            };
        }
        let m = RuleMaps {
            active: handle!(rule_active),
            sets: handle!(rule_sets),
            bits: handle!(rule_bits),
            live: handle!(rule_live),
            meta: handle!(rule_meta),
            dir: handle!(rule_dir),
            file: handle!(rule_file),
            uid: handle!(rule_uid),
            addr: handle!(rule_addr),
            port: handle!(rule_port),
            addr4: handle!(rule_addr4),
            once: handle!(once_state),
        };
        self.tables_taken = true;
        Ok(Box::new(MapRuleTables::new(
            m,
            std::mem::take(&mut self.stale),
        )))
    }

    fn poll(&mut self, timeout: Duration, sink: &mut dyn FnMut(Record)) -> Result<usize, Error> {
        // The producer wakes us only once a batch is pending (see the BPF
        // side), so a timed-out poll still consumes what is there. A signal
        // interrupting the wait is not an error: the caller checks its flags.
        let rc = self.ringbuf.poll_raw(timeout);
        if rc < 0 && rc != -libc::EINTR {
            return Err(Error::bpf(
                "polling the ring buffer",
                libbpf_rs::Error::from_raw_os_error(-rc),
            ));
        }
        let rc = self.ringbuf.consume_raw();
        if rc < 0 && rc != -libc::EINTR {
            return Err(Error::bpf(
                "consuming the ring buffer",
                libbpf_rs::Error::from_raw_os_error(-rc),
            ));
        }
        Ok(self.drain_inbox(sink))
    }

    fn detach_and_drain(
        &mut self,
        grace: Duration,
        sink: &mut dyn FnMut(Record),
    ) -> Result<usize, Error> {
        self.unpin_links();
        self.links.clear();
        self.stale.clear();
        let deadline = Instant::now() + grace;
        let mut n = 0;
        loop {
            let empty = self.flows_empty();
            n += self.poll(Duration::from_millis(20), sink)?;
            if empty || Instant::now() >= deadline {
                break;
            }
        }
        n += self.poll(Duration::ZERO, sink)?;
        Ok(n)
    }
}

impl Drop for BpfCapture {
    fn drop(&mut self) {
        // SAFETY: dropped once, in borrow order: ring buffer and links, then
        // the skeleton, then the storage it borrowed.
        // Any orderly exit (an error included) detaches: only a process that
        // dies without running this leaves its programs pinned.
        self.unpin_links();
        unsafe {
            ManuallyDrop::drop(&mut self.ringbuf);
            self.links.clear();
            self.stale.clear();
            ManuallyDrop::drop(&mut self.skel);
            drop(Box::from_raw(self.storage));
        }
    }
}

/// The pin directory of one cgroup (netev-host names the layout), on bpffs
/// (mounted at /sys/fs/bpf if the machine did not).
pub fn pin_dir_for(pin_dir: &Path, cgroup: &Path) -> Result<PathBuf, String> {
    let dir = netev_host::pins::cgroup_dir_of(pin_dir, cgroup)
        .map_err(|e| format!("{}: {e}", cgroup.display()))?;
    ensure_bpffs(pin_dir)?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Whether `dir` (or the directory it would be made in) is on bpffs; if
/// nothing is mounted at /sys/fs/bpf, mounts bpffs there.
fn ensure_bpffs(dir: &Path) -> Result<(), String> {
    use netev_host::mounts::on_bpffs;
    let base = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if on_bpffs(base) {
        return Ok(());
    }
    let root = Path::new(netev_host::mounts::BPFFS);
    if dir.starts_with(root) && root.exists() && !on_bpffs(root) {
        let status = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf", netev_host::mounts::BPFFS])
            .status();
        if matches!(status, Ok(s) if s.success()) && on_bpffs(base) {
            return Ok(());
        }
    }
    Err(format!("{} is not on a bpf filesystem", dir.display()))
}

/// Syscall tracepoints need tracefs; mount it if the machine did not.
fn ensure_tracefs() {
    if netev_host::mounts::tracefs_events_visible() {
        return;
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev", netev_host::mounts::TRACEFS])
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        warn!("tracefs is not mounted and mounting it failed; tracepoints may not attach");
    }
}

/// Why the kernel refused an object, in one line: the kernel version, the
/// program the verifier refused and its last word, from libbpf's log of
/// the load (which is still printed in full above).
fn load_error(kind: BackendKind, e: libbpf_rs::Error, log: &crate::verifier::Log) -> Error {
    if e.kind() == libbpf_rs::ErrorKind::PermissionDenied && unsafe { libc::geteuid() } != 0 {
        return Error::Permission(e.to_string());
    }
    Error::Refused {
        backend: kind.name(),
        kernel: netev_host::kernel_release(),
        program: log.program.clone(),
        reason: log.reason.clone(),
        source: e,
    }
}

/// A hook that did not attach; a syscall tracepoint refused for want of
/// CAP_SYS_ADMIN says why (Debian's kernel.perf_event_paranoid = 3).
fn attach_error(attach: &str, e: libbpf_rs::Error) -> Error {
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    if attach.starts_with("syscalls/")
        && e.kind() == libbpf_rs::ErrorKind::PermissionDenied
        && paranoid.is_some_and(|p| p >= 3)
    {
        return Error::bpf(
            format!(
                "attaching tracepoint {attach}: kernel.perf_event_paranoid is {} (Debian's \
                 default), which lets only CAP_SYS_ADMIN open tracepoints, and the cgroup \
                 backend needs them: use the BPF LSM backend (--backend auto or lsm, which \
                 needs no tracepoint), or set kernel.perf_event_paranoid to 2",
                paranoid.unwrap_or_default()
            ),
            e,
        );
    }
    Error::bpf(format!("attaching {attach}"), e)
}
