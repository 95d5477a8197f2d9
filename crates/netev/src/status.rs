//! `netev status`: what the daemon captures, how, and what it has lost.

use std::io::ErrorKind;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use netev_event::status::Status;

use crate::bus::{connect, explain, runtime, BusChoice, EXIT_NOT_RUNNING as NOT_RUNNING};

pub fn run(bus: &BusChoice, run_dir: Option<&Path>, pin_dir: &Path, json: bool) -> ExitCode {
    let result = match run_dir {
        Some(dir) => from_file(dir),
        None => from_bus(bus),
    };
    match result {
        Ok(Some(status)) => {
            if json {
                println!("{}", netev_event::display::to_json_pretty(&status));
            } else {
                print!("{}", render(&status));
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            let e = enforcement_while_down(pin_dir);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "running": false,
                        "enforcement": e,
                    }))
                    .expect("status serializes")
                );
            } else {
                println!("{}", e.text());
            }
            ExitCode::from(NOT_RUNNING)
        }
        Err(e) => {
            eprintln!("netev: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn from_bus(bus: &BusChoice) -> Result<Option<Status>> {
    let status = runtime().block_on(async {
        let (_conn, daemon) = connect(bus).await?;
        daemon.get_status().await.map_err(|e| explain(bus, e))
    });
    match status {
        Ok(wire) => Ok(Some(Status::from(wire))),
        Err(f) if f.code == NOT_RUNNING => {
            eprintln!("netev: {}", f.message);
            Ok(None)
        }
        Err(f) => Err(anyhow::anyhow!(f.message)),
    }
}

fn from_file(run_dir: &Path) -> Result<Option<Status>> {
    let path = run_dir.join("status.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!(
                "netevd is not running (no {}); start it with `sudo netevd`",
                path.display()
            );
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let status: Status = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a netevd status file", path.display()))?;
    if !alive(status.pid) {
        eprintln!(
            "netevd is not running: pid {} in {} has exited without cleaning up \
             (it crashed or was killed); start it again with `sudo netevd`",
            status.pid,
            path.display()
        );
        return Ok(None);
    }
    Ok(Some(status))
}

/// With netevd down: whether programs it pinned are still attached (a
/// netevd that died without cleaning up), and what that means.
#[derive(Debug, serde::Serialize)]
struct Enforcement {
    /// "none", "active" (pinned programs left by a netevd that did not
    /// stop cleanly) or "unknown" (the pin dir could not be read).
    state: &'static str,
    pin_dir: std::path::PathBuf,
    /// Per cgroup (by inode), the programs pinned there.
    pinned: Vec<Pinned>,
    /// Why the state is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct Pinned {
    cgroup_inode: String,
    programs: usize,
}

impl Enforcement {
    fn text(&self) -> String {
        let dir = self.pin_dir.display();
        match (self.state, &self.error) {
            ("active", _) => format!(
                "enforcement: active without netevd: {} (pinned in {dir}) were left by a netevd \
                 that did not stop cleanly; they enforce the rules installed before it stopped \
                 and capture nothing until netevd starts again and replaces them",
                self.pinned
                    .iter()
                    .map(|p| format!(
                        "{} programs on the cgroup with inode {}",
                        p.programs, p.cgroup_inode
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (_, Some(e)) => format!("enforcement: unknown ({e})"),
            _ => format!(
                "enforcement: none (no programs pinned in {dir}): no rule is enforced while \
                 netevd is down"
            ),
        }
    }
}

fn enforcement_while_down(pin_dir: &Path) -> Enforcement {
    let mut e = Enforcement {
        state: "none",
        pin_dir: pin_dir.to_path_buf(),
        pinned: Vec::new(),
        error: None,
    };
    let sets = match netev_host::pins::pinned_sets(pin_dir) {
        Ok(sets) => sets,
        Err(err) if err.kind() == ErrorKind::NotFound => return e,
        Err(err) => {
            e.state = "unknown";
            e.error = Some(if err.kind() == ErrorKind::PermissionDenied {
                format!(
                    "reading {} needs root: sudo netev status",
                    pin_dir.display()
                )
            } else {
                format!("{}: {err}", pin_dir.display())
            });
            return e;
        }
    };
    // a directory left empty enforces nothing
    e.pinned = sets
        .into_iter()
        .filter(|set| set.programs > 0)
        .map(|set| Pinned {
            cgroup_inode: set.cgroup_inode.to_string(),
            programs: set.programs,
        })
        .collect();
    if !e.pinned.is_empty() {
        e.state = "active";
    }
    e
}

pub(crate) fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn render(s: &Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "netevd {} running, pid {}, up {}s (since {})",
        s.version, s.pid, s.uptime_secs, s.started
    );
    let _ = writeln!(out, "backend:   {}", s.backend);
    let _ = writeln!(out, "cgroup:    {}", s.cgroup);
    let _ = writeln!(
        out,
        "coalesce:  {}",
        if s.coalesce {
            "on (send/recv: one event per flow per second)"
        } else {
            "off"
        }
    );
    for note in &s.notes {
        let _ = writeln!(out, "note:      {note}");
    }
    let _ = writeln!(out, "hooks:");
    for h in &s.hooks {
        let _ = writeln!(out, "  {:<8} {:<8} {}", h.op, h.mode, h.attach);
    }
    let c = &s.counters;
    let _ = writeln!(out, "counters:");
    let _ = writeln!(
        out,
        "  seen      {:>12}  records the kernel emitted or tried to",
        c.seen
    );
    let _ = writeln!(
        out,
        "  delivered {:>12}  records read by the daemon",
        c.delivered
    );
    let _ = writeln!(
        out,
        "  dropped   {:>12}  records lost: ring buffer full{}",
        c.dropped,
        if c.dropped > 0 {
            "  <-- raise --ringbuf-size"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "  calls     {:>12}  network calls hooked", c.calls);
    let _ = writeln!(
        out,
        "  coalesced {:>12}  calls folded into another event's count",
        c.coalesced
    );
    let _ = writeln!(out, "  events    {:>12}  network events produced", c.events);
    let _ = writeln!(
        out,
        "  bus lost  {:>12}  events not published: D-Bus subscribers too slow",
        c.bus_dropped
    );
    let _ = writeln!(
        out,
        "  stored    {:>12}  events written to the event store",
        c.stored
    );
    let _ = writeln!(
        out,
        "  store lost{:>12}  events the store could not take (see notes; recorded in its gaps table){}",
        c.store_lost,
        if c.store_lost > 0 { "  <--" } else { "" }
    );
    if c.exported + c.export_lost + c.export_spooled > 0 {
        let _ = writeln!(
            out,
            "  exported  {:>12}  events the export receivers have",
            c.exported
        );
        let _ = writeln!(
            out,
            "  spooled   {:>12}  events waiting on disk for an export's receiver",
            c.export_spooled
        );
        let _ = writeln!(
            out,
            "  export lost{:>11}  events an export could not keep (sent on as gap records){}",
            c.export_lost,
            if c.export_lost > 0 { "  <--" } else { "" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_event::status::{Counters, Hook};

    #[test]
    fn render_names_modes_and_flags_drops() {
        let s = Status {
            version: "0.1.0".into(),
            pid: 1,
            started: "2026-11-25T00:00:00Z".into(),
            uptime_secs: 5,
            backend: "cgroup+tracepoints".into(),
            cgroup: "/sys/fs/cgroup/unified".into(),
            coalesce: true,
            hooks: vec![Hook {
                op: "listen".into(),
                attach: "syscalls/sys_exit_listen".into(),
                mode: "observe".into(),
            }],
            notes: vec!["bpf-lsm: unavailable: x".into()],
            counters: Counters {
                seen: 10,
                delivered: 8,
                dropped: 2,
                ..Default::default()
            },
        };
        let text = render(&s);
        assert!(
            text.contains("listen   observe  syscalls/sys_exit_listen"),
            "{text}"
        );
        assert!(text.contains("raise --ringbuf-size"), "{text}");
        assert!(text.contains("bpf-lsm: unavailable"), "{text}");
    }
}
