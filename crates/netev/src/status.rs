//! `netev status`: what the daemon captures, how, and what it has lost.

use std::io::ErrorKind;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use netev_event::status::Status;

/// Exit status 3 means "not running", as for LSB init scripts' status.
const NOT_RUNNING: u8 = 3;

pub fn run(run_dir: &Path, json: bool) -> Result<ExitCode> {
    let path = run_dir.join("status.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!(
                "netevd is not running (no {}); start it with `sudo netevd`",
                path.display()
            );
            return Ok(ExitCode::from(NOT_RUNNING));
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
        return Ok(ExitCode::from(NOT_RUNNING));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn alive(pid: u32) -> bool {
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
