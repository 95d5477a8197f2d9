//! What libbpf says while an object loads: still printed to standard error
//! as before (the verifier's whole log is what a bug report needs), and kept
//! so that a refusal can be explained in one line — which program, and the
//! verifier's last word on it.

use std::sync::Mutex;

use libbpf_rs::PrintLevel;

/// Lines libbpf printed since [`Capture::start`]; `None` when no load is
/// being watched.
static LINES: Mutex<Option<Vec<String>>> = Mutex::new(None);

fn print(level: PrintLevel, msg: String) {
    if level != PrintLevel::Debug {
        eprint!("{msg}");
    }
    if let Some(lines) = LINES.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        lines.extend(msg.lines().map(str::to_string));
    }
}

/// Watches libbpf's messages during one load.
pub(crate) struct Capture(());

impl Capture {
    /// Starts keeping libbpf's messages (printing the same ones as
    /// libbpf-rs's default: everything but debug).
    pub(crate) fn start() -> Capture {
        *LINES.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
        libbpf_rs::set_print(Some((PrintLevel::Info, print)));
        Capture(())
    }

    /// Stops keeping them and reads what the verifier said.
    pub(crate) fn finish(self) -> Log {
        let lines = LINES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        Log::parse(&lines)
    }
}

/// The program the kernel refused and the verifier's reason, if libbpf
/// printed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Log {
    pub program: Option<String>,
    pub reason: Option<String>,
}

impl Log {
    /// Reads libbpf's "prog 'NAME': BPF program load failed" and, from the
    /// verifier's log that follows it, the last line that is not its
    /// statistics ("processed N insns …") or an instruction dump.
    pub(crate) fn parse(lines: &[String]) -> Log {
        let mut log = Log::default();
        let mut in_log = false;
        let mut last = None;
        for line in lines {
            let l = line.trim();
            if let Some(rest) = l.strip_prefix("libbpf: prog '") {
                if let Some((name, tail)) = rest.split_once("':") {
                    if tail.contains("load failed") && log.program.is_none() {
                        log.program = Some(name.to_string());
                    }
                    if tail.contains("BEGIN PROG LOAD LOG") {
                        in_log = true;
                        last = None;
                    }
                    if tail.contains("END PROG LOAD LOG") {
                        in_log = false;
                        if log.reason.is_none() {
                            log.reason = last.take();
                        }
                    }
                }
                continue;
            }
            if l.starts_with("-- END PROG LOAD LOG") {
                in_log = false;
                if log.reason.is_none() {
                    log.reason = last.take();
                }
                continue;
            }
            if in_log && is_reason(l) {
                last = Some(l.to_string());
            }
        }
        log
    }
}

/// A verifier log line that says something, not one of its dumps.
fn is_reason(l: &str) -> bool {
    !(l.is_empty()
        || l.starts_with("processed ")
        || l.starts_with("; ")
        || l.starts_with("caller:")
        || l.starts_with("callee:")
        || l.starts_with("frame")
        || is_register_dump(l)
        || l.split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        || l.split_once(':')
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())))
}

/// "R1=ctx(…) R10=fp0": the registers' state, not a message ("R8 unbounded
/// memory access" and "R1 bitwise operator |= on pointer" are messages).
fn is_register_dump(l: &str) -> bool {
    let Some(rest) = l.strip_prefix('R') else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with(['=', '_'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn the_verifiers_last_word_is_the_reason() {
        // as Debian 12's 6.1 printed it for the first release of netev
        let log = Log::parse(&lines(
            "libbpf: prog 'netev_sock_create': BPF program load failed: -EACCES
libbpf: prog 'netev_sock_create': -- BEGIN PROG LOAD LOG --
0: R1=ctx(off=0,imm=0) R10=fp0
; int netev_sock_create(struct bpf_sock *ctx)
0: (bf) r6 = r1                       ; R1=ctx(off=0,imm=0) R6_w=ctx(off=0,imm=0)
319: (69) r1 = *(u16 *)(r8 +24)
R8 unbounded memory access, make sure to bounds check any such access
processed 253 insns (limit 1000000) max_states_per_insn 0 total_states 14 peak_states 14 mark_read 11
-- END PROG LOAD LOG --
libbpf: prog 'netev_sock_create': failed to load: -EACCES
libbpf: failed to load object 'netev_bpf'",
        ));
        assert_eq!(log.program.as_deref(), Some("netev_sock_create"));
        assert_eq!(
            log.reason.as_deref(),
            Some("R8 unbounded memory access, make sure to bounds check any such access")
        );
    }

    #[test]
    fn a_log_with_only_statistics_gives_the_load_error_alone() {
        // Debian 11's 5.10 on an object with bpf_loop callbacks
        let log = Log::parse(&lines(
            "libbpf: prog 'netev_sock_create': BPF program load failed: -EINVAL
libbpf: prog 'netev_sock_create': -- BEGIN PROG LOAD LOG --
number of funcs in func_info doesn't match number of subprogs
processed 0 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
-- END PROG LOAD LOG --",
        ));
        assert_eq!(log.program.as_deref(), Some("netev_sock_create"));
        assert_eq!(
            log.reason.as_deref(),
            Some("number of funcs in func_info doesn't match number of subprogs")
        );
        assert_eq!(Log::parse(&[]), Log::default());
        assert!(is_reason("R1 bitwise operator |= on pointer prohibited"));
        assert!(!is_reason("R1_w=fp-48 R9_w=fp-48 refs=7"));
    }
}
