//! `netev run -- CMD`: supervised mode (crates/netev-run, docs/run.md).
//! This module only reads options, loads rules, logs events and asks on
//! the terminal; the supervisor is the library's.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netev_event::{Event, Verdict};
use netev_rules::{Action, Policy, RuleSet};

/// What `netev run` was asked to do.
pub struct Options {
    pub rules: Option<String>,
    pub default: Option<Action>,
    pub timeout: Duration,
    pub json: bool,
    pub log: Option<String>,
    pub cmd: Vec<String>,
}

/// `--timeout`: `30s`, `5m`, `500ms`, or seconds.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let (num, mult_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1000)
    };
    num.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| Duration::from_millis(n.saturating_mul(mult_ms)))
        .ok_or_else(|| format!("{s:?}: expected a length such as 30s, 5m or 500ms"))
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("netev run: {msg}");
    ExitCode::from(125)
}

fn lookup_user(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: pwd and buf are valid for getpwnam_r to fill.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let r = libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        );
        (r == 0 && !out.is_null()).then_some(pwd.pw_uid)
    }
}

pub fn run(o: Options) -> ExitCode {
    let rules = match &o.rules {
        None => Vec::new(),
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => return fail(format!("{path}: {e}")),
            };
            match netev_rules::file::parse(path, &text, chrono::Utc::now(), &lookup_user) {
                // Ids as in the file, from 1, so that events name the rule.
                Ok(mut rules) => {
                    for (i, r) in rules.iter_mut().enumerate() {
                        r.id = i as u32 + 1;
                    }
                    rules
                }
                Err(e) => return fail(e),
            }
        }
    };
    let mut policy = Policy::default();
    if let Some(a) = o.default {
        policy.default = [a; 7];
    }
    let mut opts = netev_run::Options::new(RuleSet::active_at(&rules, chrono::Utc::now(), policy));
    opts.ask_timeout = o.timeout;
    opts.asker = Some(Arc::new(TerminalAsker::default()));
    opts.on_event = match (&o.log, o.json) {
        (Some(path), _) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => {
                let f = Mutex::new(f);
                Arc::new(move |ev: &Event| {
                    let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = writeln!(f, "{}", ev.to_json());
                })
            }
            Err(e) => return fail(format!("{path}: {e}")),
        },
        // stdout belongs to the program: events go to stderr.
        (None, true) => Arc::new(|ev: &Event| eprintln!("{}", ev.to_json())),
        (None, false) => Arc::new(|ev: &Event| {
            if ev.verdict == Verdict::Deny {
                eprintln!("netev: denied {}", ev.to_text());
            }
        }),
    };

    let mut cmd = Command::new(&o.cmd[0]);
    cmd.args(&o.cmd[1..]);
    let child = match netev_run::Supervised::spawn(&mut cmd, opts) {
        Ok(c) => c,
        Err(e) => return fail(format!("{}: {e}", o.cmd[0])),
    };
    // Like a shell waiting for its job: ^C and ^\ are for the program (we
    // would otherwise die and leave it without answers). Set after the
    // spawn so the program does not inherit them ignored.
    // SAFETY: setting a signal disposition to SIG_IGN.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    match child.wait() {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(c), _) => ExitCode::from(c as u8),
            (None, Some(s)) => ExitCode::from(128u8.wrapping_add(s as u8)),
            _ => ExitCode::FAILURE,
        },
        Err(e) => fail(e),
    }
}

/// Asks on the controlling terminal, one question at a time: `y` allows
/// this call, `n` denies it; no answer before the timeout applies the ask
/// fallback. Without a terminal, nobody is asked.
#[derive(Default)]
struct TerminalAsker {
    one_at_a_time: Mutex<()>,
}

impl netev_run::Asker for TerminalAsker {
    fn ask(&self, ev: &Event, timeout: Duration) -> Option<Action> {
        let deadline = Instant::now() + timeout;
        let _turn = self.one_at_a_time.lock().unwrap_or_else(|p| p.into_inner());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        let _raw = RawTty::new(&file);
        let mut tty = &file;
        let _ = write!(
            tty,
            "\r\nnetev: {} — allow? [y/n] ({}s) ",
            ev.to_text(),
            timeout.as_secs()
        );
        let answer = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break None;
            }
            let mut pfd = libc::pollfd {
                fd: tty.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r =
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if r <= 0 {
                continue;
            }
            let mut b = [0u8; 1];
            match tty.read(&mut b) {
                Ok(1) => match b[0] {
                    b'y' | b'Y' => break Some(Action::Allow),
                    b'n' | b'N' => break Some(Action::Deny),
                    _ => {}
                },
                _ => break None,
            }
        };
        let said = match answer {
            Some(a) => a.name(),
            None => "no answer",
        };
        let _ = writeln!(tty, "{said}\r");
        answer
    }
}

/// The terminal without line buffering or echo while it lives.
struct RawTty<'a>(&'a File, Option<nix::sys::termios::Termios>);

impl<'a> RawTty<'a> {
    fn new(tty: &'a File) -> RawTty<'a> {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let Ok(saved) = tcgetattr(tty) else {
            return RawTty(tty, None);
        };
        let mut raw = saved.clone();
        raw.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO);
        let _ = tcsetattr(tty, SetArg::TCSANOW, &raw);
        RawTty(tty, Some(saved))
    }
}

impl Drop for RawTty<'_> {
    fn drop(&mut self) {
        if let Some(saved) = &self.1 {
            let _ = nix::sys::termios::tcsetattr(self.0, nix::sys::termios::SetArg::TCSANOW, saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_timeout("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_timeout("7"), Ok(Duration::from_secs(7)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
