//! `netev doctor`: what this machine offers netev and what is wrong, one
//! line per check (ok / warn / fail) with the fix to apply.
//!
//! Each check is a function of what was read from the machine, so that
//! every outcome is unit-tested; `run` reads the machine and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use netev_event::status::Status;
use netev_host::security::{LsmAvailability, LsmFacts};
use serde::Serialize;

use crate::bus::{connect, runtime, BusChoice, Failure};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub detail: String,
    /// What to do about a warn or a fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        level: Level::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        level: Level::Warn,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        level: Level::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// The oldest kernel netev's BPF programs load on: bpf_loop (5.17), BPF
/// timers and bpf_task_pt_regs (5.15). Debian 11's 5.10 refuses them
/// (docs/operations.md, "Kernels tested").
const MIN_KERNEL: (u32, u32) = (5, 17);

/// `uname -r`, e.g. `6.18.44-fc-v782`.
pub fn kernel(release: &str) -> Check {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) if (major, minor) >= MIN_KERNEL => {
            ok("kernel", release.to_string())
        }
        (Some(_), Some(_)) => fail(
            "kernel",
            format!(
                "{release} is older than {}.{} (bpf_loop, BPF timers)",
                MIN_KERNEL.0, MIN_KERNEL.1
            ),
            "upgrade the kernel (Debian 12 ships 6.1)",
        ),
        _ => warn(
            "kernel",
            format!("cannot read the version in {release:?}"),
            "netev needs Linux 5.17 or later",
        ),
    }
}

/// Whether `/sys/kernel/btf/vmlinux` exists (CO-RE relocations need it).
pub fn btf(present: bool) -> Check {
    if present {
        ok("btf", "/sys/kernel/btf/vmlinux")
    } else {
        fail(
            "btf",
            "the kernel has no BTF (/sys/kernel/btf/vmlinux is missing)",
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every Debian and Ubuntu kernel is)",
        )
    }
}

/// The cgroup v2 mount, from /proc/mounts.
pub fn cgroup2(mounts: &str) -> Check {
    match netev_host::mounts::cgroup2_root_in(mounts) {
        Some(dir) => ok("cgroup2", format!("mounted at {}", dir.display())),
        None => fail(
            "cgroup2",
            "no cgroup v2 hierarchy is mounted",
            "mount -t cgroup2 none /sys/fs/cgroup, or boot with systemd.unified_cgroup_hierarchy=1",
        ),
    }
}

/// BPF LSM: preferred where the kernel allows it; netev falls back.
pub fn bpf_lsm(probe: &LsmAvailability) -> Check {
    match probe {
        LsmAvailability::Available => ok(
            "bpf-lsm",
            "available: netevd runs its BPF LSM backend here (every operation enforceable)",
        ),
        LsmAvailability::Unavailable(why) => warn(
            "bpf-lsm",
            format!("unavailable: {why}; netev uses cgroup hooks and tracepoints instead"),
            "nothing needed: listen/accept are then observed, not enforced; for BPF LSM boot \
             with bpf in lsm= and without lockdown",
        ),
    }
}

/// BPF LSM as far as this program can know it: it does not load BPF
/// programs (the CLI does not build the loader), so the kernel's load probe
/// is what a running netevd found (`daemon`, from its status notes). The
/// securityfs facts decide alone when they rule BPF LSM out; when they do
/// not and no netevd tells, the line says what the facts are.
pub fn bpf_lsm_known(facts: &LsmFacts, daemon: Option<&LsmAvailability>) -> Check {
    if let Some(why) = facts.rules_out() {
        return bpf_lsm(&LsmAvailability::Unavailable(why));
    }
    if let Some(probed) = daemon {
        return bpf_lsm(probed);
    }
    let lsms = facts.lsms.as_deref().unwrap_or_default().join(",");
    let lockdown = facts.lockdown.as_deref().unwrap_or("not in the kernel");
    ok(
        "bpf-lsm",
        format!(
            "`bpf` is in the active LSM list ({lsms}; lockdown: {lockdown}); whether the kernel \
             loads LSM programs netevd's probe tells when it runs (netev status)"
        ),
    )
}

/// Which backend netevd would run, from `netevd --check-backend` (which
/// loads each backend's programs and attaches nothing), or why none can.
pub fn backend(root: bool, outcome: Result<String, String>) -> Check {
    if !root {
        return warn(
            "backend",
            "not checked: loading BPF programs needs root",
            "run netev doctor as root to check which backend this kernel loads",
        );
    }
    let out = match outcome {
        Ok(out) => out,
        Err(e) => return warn("backend", format!("not checked: {e}"), "install netevd"),
    };
    let line = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
            .unwrap_or("not reported")
            .to_string()
    };
    let (lsm, cgroup) = (line("bpf-lsm"), line("cgroup+tracepoints"));
    match line("chosen").as_str() {
        "bpf-lsm" => ok(
            "backend",
            "netevd runs bpf-lsm here: every operation enforceable",
        ),
        "cgroup+tracepoints" => ok(
            "backend",
            format!(
                "netevd runs cgroup+tracepoints here ({}); bpf-lsm: {lsm}",
                netev_event::status::CGROUP_GAPS
            ),
        ),
        _ => fail(
            "backend",
            format!(
                "no backend loads on this kernel: bpf-lsm: {lsm}; cgroup+tracepoints: {cgroup}"
            ),
            "netev needs Linux 5.17 or later with BTF (bpf_loop, BPF timers); tested: Debian \
             12's own kernel (linux-image-amd64, 6.1), its 6.12 and 6.18 (docs/operations.md); \
             install one and boot it; `netevd --check-backend` prints the verifier's whole log",
        ),
    }
}

/// Whether tracefs is mounted (syscall tracepoints).
pub fn tracefs(mounted: bool, root: bool) -> Check {
    match (mounted, root) {
        (true, _) => ok("tracefs", "mounted"),
        (false, true) => warn(
            "tracefs",
            "not mounted",
            "netevd mounts it at /sys/kernel/tracing itself; or: mount -t tracefs nodev /sys/kernel/tracing",
        ),
        (false, false) => warn(
            "tracefs",
            "not mounted, or not visible to this user",
            "run netev doctor as root to know; netevd mounts it when it is missing",
        ),
    }
}

/// Whether bpffs is mounted at /sys/fs/bpf (pins that survive a crash).
pub fn bpffs(mounts: &str) -> Check {
    let root = Path::new(netev_host::mounts::BPFFS);
    if netev_host::mounts::mounted_at(mounts, root, "bpf") {
        ok("bpffs", "mounted at /sys/fs/bpf")
    } else {
        warn(
            "bpffs",
            "not mounted at /sys/fs/bpf",
            "netevd mounts it to pin its programs; or: mount -t bpf bpf /sys/fs/bpf",
        )
    }
}

/// What this user may do: root runs netevd; the netev group talks to it.
pub fn rights(root: bool, user: &str, in_group: bool, group: &str, group_exists: bool) -> Check {
    match (root, in_group, group_exists) {
        (true, _, _) => ok("rights", "root: may run netevd and call every method"),
        (false, true, _) => ok(
            "rights",
            format!("{user} is in group {group}: may watch events, answer prompts, manage rules"),
        ),
        (false, false, true) => warn(
            "rights",
            format!("{user} is not in group {group}: netevd refuses events and rule changes"),
            format!("sudo usermod -aG {group} {user}, then log in again"),
        ),
        (false, false, false) => warn(
            "rights",
            format!("there is no group {group}"),
            format!(
                "sudo groupadd --system {group} (the package's sysusers.d entry makes it), then \
                 sudo usermod -aG {group} {user}"
            ),
        ),
    }
}

/// What the bus said when asked for netevd's status.
pub enum BusAnswer {
    Running { pid: u32, backend: String },
    NotRunning,
    AccessDenied(String),
    NoBus(String),
}

pub fn bus(on: &BusChoice, answer: &BusAnswer) -> Check {
    match answer {
        BusAnswer::Running { pid, backend } => ok(
            "bus",
            format!("netevd (pid {pid}, {backend}) answers on {on}"),
        ),
        BusAnswer::NotRunning => warn(
            "bus",
            format!("netevd is not running on {on}"),
            "sudo systemctl start netevd (or: sudo netevd)",
        ),
        BusAnswer::AccessDenied(msg) => fail(
            "bus",
            format!("{on} refuses this user: {msg}"),
            "install dist/dbus/org.netev.Daemon1.conf in /usr/share/dbus-1/system.d and add the \
             user to the netev group",
        ),
        BusAnswer::NoBus(msg) => fail(
            "bus",
            format!("cannot reach {on}: {msg}"),
            "sudo apt-get install dbus && sudo systemctl start dbus (or pick a bus with --bus)",
        ),
    }
}

/// What was found in the state directory.
pub enum StoreFinding {
    /// The directory does not exist yet (netevd makes it).
    NoDir,
    /// Not writable by this (root) user.
    NotWritable(String),
    /// Not readable by this user.
    NotReadable,
    /// No event database yet.
    NoDatabase,
    /// The database opened: how many events.
    Events(u64),
    /// It did not open: why.
    Broken(String),
}

pub fn store(dir: &Path, finding: &StoreFinding) -> Check {
    let d = dir.display();
    match finding {
        StoreFinding::NoDir => warn(
            "store",
            format!("{d} does not exist"),
            "netevd creates it at its first start (the package's tmpfiles.d entry too)",
        ),
        StoreFinding::NotWritable(e) => fail(
            "store",
            format!("{d} is not writable: {e}"),
            format!("check the file system and the permissions of {d} (root, mode 0750)"),
        ),
        StoreFinding::NotReadable => warn(
            "store",
            format!("{d} is not readable by this user"),
            "run netev doctor as root, or as a member of the netev group",
        ),
        StoreFinding::NoDatabase => ok("store", format!("{d} is writable; no events stored yet")),
        StoreFinding::Events(n) => ok("store", format!("{d}/netev.db opens: {n} events")),
        StoreFinding::Broken(e) => fail(
            "store",
            e.clone(),
            "stop netevd, move the file aside (netevd then starts a new one), or repair it \
             with sqlite3's .recover",
        ),
    }
}

/// The kernel's clock discipline (adjtimex): timestamps and timed rules
/// depend on a synchronized clock.
pub fn clock(synchronized: Option<bool>, now_year: i32) -> Check {
    if now_year < 2024 {
        return fail(
            "clock",
            format!("the clock says the year is {now_year}"),
            "set the time (timedatectl set-ntp true)",
        );
    }
    match synchronized {
        Some(true) => ok("clock", "synchronized"),
        Some(false) => warn(
            "clock",
            "not synchronized: event times and timed rules may be off",
            "enable time synchronization (timedatectl set-ntp true, or chrony)",
        ),
        None => warn(
            "clock",
            "cannot tell whether it is synchronized",
            "check timedatectl",
        ),
    }
}

/// `netevd --check-config`'s verdict.
pub fn config(path: &Path, outcome: Result<(), String>) -> Check {
    match outcome {
        Ok(()) if path.exists() => ok("config", format!("{} is valid", path.display())),
        Ok(()) => ok(
            "config",
            format!("{} is absent: built-in defaults", path.display()),
        ),
        Err(e) => fail(
            "config",
            e,
            format!(
                "fix the line named, then check with: netevd --check-config --config {}",
                path.display()
            ),
        ),
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// netevd's status, asked on the bus.
fn daemon_status(on: &BusChoice) -> Result<Status, Failure> {
    runtime()
        .block_on(async {
            let (_conn, daemon) = connect(on).await?;
            daemon
                .get_status()
                .await
                .map_err(|e| crate::bus::explain(on, e))
        })
        .map(Status::from)
}

fn bus_answer(status: &Result<Status, Failure>) -> BusAnswer {
    match status {
        Ok(s) => BusAnswer::Running {
            pid: s.pid,
            backend: s.backend.clone(),
        },
        Err(f) if f.code == crate::bus::EXIT_NOT_RUNNING => BusAnswer::NotRunning,
        Err(f) if f.code == crate::bus::EXIT_ACCESS_DENIED => {
            BusAnswer::AccessDenied(f.message.clone())
        }
        Err(f) => BusAnswer::NoBus(f.message.clone()),
    }
}

/// netevd's default run directory (netevd --run-dir), where it writes its
/// status file.
const DEFAULT_RUN_DIR: &str = "/run/netev";

/// What a running netevd's BPF LSM probe found (its status notes): from the
/// bus, else from the status file of a netevd that runs on another bus.
fn daemon_lsm(status: &Result<Status, Failure>) -> Option<LsmAvailability> {
    let from_file = || {
        let text = std::fs::read_to_string(Path::new(DEFAULT_RUN_DIR).join("status.json")).ok()?;
        let s: Status = serde_json::from_str(&text).ok()?;
        crate::status::alive(s.pid).then_some(s)
    };
    let status = match status {
        Ok(s) => Some(s.clone()),
        Err(_) => from_file(),
    }?;
    status
        .notes
        .iter()
        .find_map(|n| LsmAvailability::from_note(n))
}

fn store_finding(dir: &Path, root: bool) -> StoreFinding {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return StoreFinding::NoDir,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return StoreFinding::NotReadable
        }
        Err(e) => return StoreFinding::NotWritable(e.to_string()),
        Ok(_) => {}
    }
    if root {
        let probe = dir.join(".netev-doctor");
        if let Err(e) = std::fs::write(&probe, b"") {
            return StoreFinding::NotWritable(e.to_string());
        }
        let _ = std::fs::remove_file(probe);
    }
    let db = dir.join("netev.db");
    if !db.exists() {
        return StoreFinding::NoDatabase;
    }
    match netev_store::SqliteStore::open_read_only(&db).and_then(|s| s.count()) {
        Ok(n) => StoreFinding::Events(n),
        Err(e) => StoreFinding::Broken(e.to_string()),
    }
}

fn clock_synchronized() -> Option<bool> {
    // SAFETY: adjtimex with modes 0 only reads the kernel's state.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}

/// netevd, next to netev once installed, or in the system's sbin.
fn netevd_path() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("netevd")))
        .filter(|p| p.exists())
        .or_else(|| {
            ["/usr/sbin/netevd", "/usr/local/sbin/netevd"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        })
}

/// What `netevd --check-backend` printed (it exits 1 when none loads,
/// which the output says too).
fn backend_outcome() -> Result<String, String> {
    let netevd = netevd_path().ok_or("netevd is not installed next to netev or in /usr/sbin")?;
    let out = std::process::Command::new(&netevd)
        .arg("--check-backend")
        .output()
        .map_err(|e| format!("running {}: {e}", netevd.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn config_outcome(path: &Path) -> Result<(), String> {
    if !path.exists() {
        return Ok(());
    }
    // netevd parses its own file
    let Some(netevd) = netevd_path() else {
        return Err("netevd is not installed next to netev or in /usr/sbin".into());
    };
    let out = std::process::Command::new(&netevd)
        .arg("--check-config")
        .arg("--config")
        .arg(path)
        .output()
        .map_err(|e| format!("running {}: {e}", netevd.display()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(String::from_utf8_lossy(&out.stderr)
        .trim()
        .trim_start_matches("netevd: ")
        .to_string())
}

/// Options of `netev doctor`.
pub struct Options {
    pub state_dir: PathBuf,
    pub config: PathBuf,
    pub group: String,
    pub json: bool,
}

/// Reads the machine, runs every check, prints; 1 if anything failed.
pub fn run(on: &BusChoice, opts: Options) -> ExitCode {
    let root = nix::unistd::geteuid().is_root();
    let mounts = read("/proc/mounts");
    let user = netev_host::users::user_name(nix::unistd::geteuid().as_raw())
        .unwrap_or_else(|| nix::unistd::geteuid().to_string());
    let group = netev_host::users::Group::from_name(&opts.group);
    // This login's groups (this process's), or the group's member list
    // (what the next login will have).
    let in_group = group.as_ref().is_some_and(|g| {
        nix::unistd::getgroups()
            .map(|gs| gs.contains(&nix::unistd::Gid::from_raw(g.gid)))
            .unwrap_or(false)
            || g.members.contains(&user)
    });
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let config_path = opts.config.clone();
    let status = daemon_status(on);
    let checks = vec![
        kernel(&release),
        btf(Path::new("/sys/kernel/btf/vmlinux").exists()),
        cgroup2(&mounts),
        bpf_lsm_known(&LsmFacts::read(), daemon_lsm(&status).as_ref()),
        backend(root, backend_outcome()),
        tracefs(netev_host::mounts::tracefs_events_visible(), root),
        bpffs(&mounts),
        rights(root, &user, in_group, &opts.group, group.is_some()),
        bus(on, &bus_answer(&status)),
        store(&opts.state_dir, &store_finding(&opts.state_dir, root)),
        clock(
            clock_synchronized(),
            chrono::Datelike::year(&chrono::Utc::now()),
        ),
        config(&config_path, config_outcome(&config_path)),
    ];
    let failed = checks.iter().any(|c| c.level == Level::Fail);
    if opts.json {
        for c in &checks {
            println!("{}", serde_json::to_string(c).expect("a check serializes"));
        }
    } else {
        for c in &checks {
            let level = match c.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("{level} {:<8} {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("              fix: {fix}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_lines() {
        let lsm = "bpf-lsm: loads\ncgroup+tracepoints: loads\nchosen: bpf-lsm\n";
        assert_eq!(backend(true, Ok(lsm.into())).level, Level::Ok);
        let cg = "bpf-lsm: unavailable: lockdown\ncgroup+tracepoints: loads\nchosen: cgroup+tracepoints\n";
        let c = backend(true, Ok(cg.into()));
        assert_eq!(c.level, Level::Ok);
        assert!(
            c.detail.contains("bpf-lsm: unavailable: lockdown"),
            "{}",
            c.detail
        );
        let none = "bpf-lsm: unavailable: not in the LSM list\ncgroup+tracepoints: the cgroup+tracepoints backend does not load on kernel 5.10.0-46-amd64: the kernel refused program netev_sock_create (number of funcs in func_info doesn't match number of subprogs): Invalid argument (os error 22)\nchosen: none\n";
        let c = backend(true, Ok(none.into()));
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.contains("5.10.0-46-amd64") && c.detail.contains("netev_sock_create"));
        assert!(c.fix.as_deref().unwrap().contains("5.17"));
        assert_eq!(backend(false, Ok(lsm.into())).level, Level::Warn);
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel("6.18.44-fc-v782").level, Level::Ok);
        assert_eq!(kernel("5.17.0").level, Level::Ok);
        assert_eq!(kernel("5.10.0-46-amd64").level, Level::Fail);
        let old = kernel("5.4.0-150-generic");
        assert_eq!(old.level, Level::Fail);
        assert!(old.detail.contains("older than 5.17"));
        assert_eq!(kernel("weird").level, Level::Warn);
    }

    #[test]
    fn btf_cgroup_and_bpffs() {
        assert_eq!(btf(true).level, Level::Ok);
        assert!(btf(false).fix.unwrap().contains("CONFIG_DEBUG_INFO_BTF"));
        let v2 = "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\nbpf /sys/fs/bpf bpf rw 0 0\n";
        assert!(cgroup2(v2).detail.contains("/sys/fs/cgroup/unified"));
        let v1 = "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n";
        assert_eq!(cgroup2(v1).level, Level::Fail);
        assert_eq!(bpffs(v2).level, Level::Ok);
        assert_eq!(bpffs(v1).level, Level::Warn);
    }

    #[test]
    fn lsm_tracefs_rights() {
        assert_eq!(bpf_lsm(&LsmAvailability::Available).level, Level::Ok);
        let why = bpf_lsm(&LsmAvailability::Unavailable("lockdown: integrity".into()));
        assert_eq!(why.level, Level::Warn);
        assert!(why.detail.contains("lockdown: integrity"));
        assert_eq!(tracefs(true, false).level, Level::Ok);
        assert!(tracefs(false, true)
            .fix
            .unwrap()
            .contains("mount -t tracefs"));
        assert_eq!(rights(true, "root", false, "netev", true).level, Level::Ok);
        assert_eq!(rights(false, "ann", true, "netev", true).level, Level::Ok);
        let out = rights(false, "ann", false, "netev", true);
        assert_eq!(out.level, Level::Warn);
        assert_eq!(
            out.fix.unwrap(),
            "sudo usermod -aG netev ann, then log in again"
        );
        assert!(rights(false, "ann", false, "netev", false)
            .fix
            .unwrap()
            .contains("groupadd"));
    }

    #[test]
    fn bpf_lsm_from_the_facts_then_from_netevd() {
        let no_fs = LsmFacts::from_text(None, None);
        let c = bpf_lsm_known(&no_fs, Some(&LsmAvailability::Available));
        assert_eq!(c.level, Level::Warn, "the facts rule it out: {c:?}");
        assert!(c
            .detail
            .starts_with("unavailable: securityfs is not mounted (mount -t securityfs"));
        let no_bpf = LsmFacts::from_text(Some("lockdown,capability"), None);
        assert!(bpf_lsm_known(&no_bpf, None)
            .detail
            .contains("unavailable: `bpf` is not in the active LSM list (lockdown,capability)"));

        let listed = LsmFacts::from_text(
            Some("lockdown,capability,bpf\n"),
            Some("none [integrity] confidentiality\n"),
        );
        let refused = LsmAvailability::Unavailable(
            "the kernel refuses to load LSM programs (lockdown: integrity)".into(),
        );
        // what netevd's probe found decides, with the words of its answer
        assert_eq!(bpf_lsm_known(&listed, Some(&refused)), bpf_lsm(&refused));
        assert_eq!(
            bpf_lsm_known(&listed, Some(&LsmAvailability::Available)),
            bpf_lsm(&LsmAvailability::Available)
        );
        // nobody probed: the facts, and nothing to fix
        let c = bpf_lsm_known(&listed, None);
        assert_eq!(c.level, Level::Ok);
        assert!(
            c.detail.starts_with(
                "`bpf` is in the active LSM list (lockdown,capability,bpf; lockdown: integrity)"
            ),
            "{c:?}"
        );
    }

    #[test]
    fn bus_store_clock_config() {
        let sys = BusChoice::System;
        let up = BusAnswer::Running {
            pid: 7,
            backend: "cgroup+tracepoints".into(),
        };
        assert_eq!(bus(&sys, &up).level, Level::Ok);
        assert_eq!(bus(&sys, &BusAnswer::NotRunning).level, Level::Warn);
        assert_eq!(
            bus(&sys, &BusAnswer::AccessDenied("x".into())).level,
            Level::Fail
        );
        assert_eq!(bus(&sys, &BusAnswer::NoBus("x".into())).level, Level::Fail);
        let dir = Path::new("/var/lib/netev");
        assert_eq!(store(dir, &StoreFinding::NoDir).level, Level::Warn);
        assert_eq!(store(dir, &StoreFinding::Events(5)).level, Level::Ok);
        assert_eq!(store(dir, &StoreFinding::NoDatabase).level, Level::Ok);
        assert_eq!(store(dir, &StoreFinding::NotReadable).level, Level::Warn);
        assert_eq!(
            store(dir, &StoreFinding::NotWritable("read-only".into())).level,
            Level::Fail
        );
        assert!(store(dir, &StoreFinding::Broken("damaged".into()))
            .fix
            .unwrap()
            .contains(".recover"));
        assert_eq!(clock(Some(true), 2026).level, Level::Ok);
        assert_eq!(clock(Some(false), 2026).level, Level::Warn);
        assert_eq!(clock(Some(true), 1970).level, Level::Fail);
        let p = Path::new("/nonexistent/netev.toml");
        assert!(config(p, Ok(())).detail.contains("built-in defaults"));
        assert_eq!(config(p, Err("x:3: bus: bad".into())).level, Level::Fail);
    }
}
