//! `netev prompt`: answer netevd's prompts from a terminal, one key each.
//!
//! Lower case allows, upper case denies: o/O once, m/M for 5 minutes,
//! r/R until netevd restarts, a/A always; s skips (the prompt stays for
//! another prompter or expires); q quits. On a terminal keys are read
//! without Enter; from a pipe, one character at a time.

use std::collections::VecDeque;
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use futures_util::StreamExt;
use netev_event::Event;
use tokio::sync::mpsc;

use crate::bus::{connect, explain, runtime, BusChoice, Failure};

pub fn run(bus: &BusChoice, scope: String) -> ExitCode {
    // Non-dumpable: another process of this user (a program it answers
    // about, under netev run) could otherwise ptrace it or take its bus
    // connection (`pidfd_getfd`) and answer in its name.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    match runtime().block_on(prompt(bus, &scope)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}

/// What a key answers: (action, duration), or skip/quit.
enum Key {
    Answer(&'static str, &'static str),
    Skip,
    Quit,
}

fn key(c: u8) -> Option<Key> {
    let dur = match c.to_ascii_lowercase() {
        b'o' => "once",
        b'm' => "5m",
        b'r' => "until-restart",
        b'a' => "always",
        b's' => return Some(Key::Skip),
        b'q' => return Some(Key::Quit),
        _ => return None,
    };
    Some(Key::Answer(
        if c.is_ascii_uppercase() {
            "deny"
        } else {
            "allow"
        },
        dur,
    ))
}

/// Raw (no Enter, no echo) terminal input for as long as it lives.
struct RawTerminal(Option<nix::sys::termios::Termios>);

impl RawTerminal {
    fn new() -> RawTerminal {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return RawTerminal(None);
        }
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawTerminal(None);
        };
        let mut raw = saved.clone();
        raw.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawTerminal(Some(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

fn describe(id: u64, ev: &Event, origin: &str) -> String {
    let (addr, port) = if netev_rules::op_uses_remote(ev.op) {
        (ev.raddr, ev.rport)
    } else {
        (ev.laddr, ev.lport)
    };
    let place = match (addr, port) {
        (Some(a), Some(p)) => format!(" {}", netev_event::endpoint(a, p)),
        _ => String::new(),
    };
    let proto = ev.proto.map(|p| format!(" {p}")).unwrap_or_default();
    // names come from processes and user databases: shown escaped, never raw
    let who = match &ev.user {
        Some(u) => netev_event::display::escape(u).into_owned(),
        None => format!("uid {}", ev.uid),
    };
    let exe = netev_event::display::escape(ev.exe.as_deref().unwrap_or("(unknown program)"));
    // what netevd could not check itself is said so
    let said = match origin {
        netev_dbus::origin::KERNEL => "",
        netev_dbus::origin::ASK => " (asked by its supervisor: the call is the asker's word)",
        _ => " (asked by a privileged client about a process netevd could not read: all of it is the asker's word)",
    };
    format!(
        "[{id}] {exe} (pid {}, {who}) wants to {}{proto}{place}{said}\n    allow: o once, m 5 min, r until restart, a always | deny: O M R A | s skip, q quit > ",
        ev.pid,
        ev.op.name()
    )
}

async fn prompt(bus: &BusChoice, scope: &str) -> Result<(), Failure> {
    let (_conn, d) = connect(bus).await?;
    let mut prompts = d.receive_prompt().await.map_err(|e| explain(bus, e))?;
    let mut closed = d
        .receive_prompt_closed()
        .await
        .map_err(|e| explain(bus, e))?;
    let pending = d.watch_prompts().await.map_err(|e| explain(bus, e))?;
    let mut queue: VecDeque<(u64, Event, String)> = VecDeque::new();
    for (id, w, origin) in pending {
        if let Ok(ev) = Event::try_from(w) {
            queue.push_back((id, ev, origin));
        }
    }

    let _raw = RawTerminal::new();
    let (keys_tx, mut keys) = mpsc::unbounded_channel::<u8>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1];
        let mut stdin = std::io::stdin();
        while let Ok(1) = stdin.read(&mut buf) {
            if keys_tx.send(buf[0]).is_err() {
                break;
            }
        }
    });
    eprintln!(
        "netev prompt: waiting for prompts from netevd (scope of answers: {scope}; q to quit)"
    );
    let mut shown: Option<u64> = None;
    let mut stdin_open = true;
    loop {
        if shown.is_none() {
            if let Some((id, ev, origin)) = queue.front() {
                print!("{}", describe(*id, ev, origin));
                let _ = std::io::stdout().flush();
                shown = Some(*id);
            }
        }
        tokio::select! {
            Some(sig) = prompts.next() => {
                if let Ok(args) = sig.args() {
                    if let Ok(ev) = Event::try_from(args.event) {
                        if !queue.iter().any(|(id, _, _)| *id == args.id) {
                            queue.push_back((args.id, ev, args.origin));
                        }
                    }
                }
            }
            Some(sig) = closed.next() => {
                if let Ok(args) = sig.args() {
                    queue.retain(|(id, _, _)| *id != args.id);
                    if shown == Some(args.id) {
                        println!("\n    ({})", args.reason);
                        shown = None;
                    }
                }
            }
            k = keys.recv(), if stdin_open => {
                let Some(k) = k else {
                    stdin_open = false;
                    continue;
                };
                let Some(id) = shown else { continue };
                match key(k) {
                    None => continue,
                    Some(Key::Quit) => { println!(); return Ok(()); }
                    Some(Key::Skip) => {
                        println!("skipped");
                        queue.retain(|(i, _, _)| *i != id);
                        shown = None;
                    }
                    Some(Key::Answer(action, duration)) => {
                        match d.answer_prompt(id, action, duration, scope).await {
                            // rule 0: a `netev run` asked; its program
                            // waited for this answer and no rule is made here
                            Ok(0) => println!("{action} {duration} (answered to the program that asked)"),
                            Ok(rule) => println!("{action} {duration} (rule {rule})"),
                            Err(e) => println!("not answered: {}", explain(bus, e).message),
                        }
                        queue.retain(|(i, _, _)| *i != id);
                        shown = None;
                    }
                }
            }
            else => {
                return Err(Failure { code: 1, message: "lost the connection to netevd's bus".into() });
            }
        }
    }
}
