//! What the program may write to the real terminal: a streaming filter
//! over its output that passes text and an **allow-list** of escape
//! sequences that only draw, and drops everything else — above all the
//! sequences that make a terminal answer (its answer would arrive on the
//! terminal's input, where the question is read).
//!
//! Allowed (everything not listed is dropped, whole):
//! - text: printable ASCII, valid UTF-8 except the C1 controls
//!   (U+0080–U+009F), bytes 0xA0–0xFF that are not part of valid UTF-8
//!   (Latin-1 text); C0 controls BEL, BS, HT, LF, VT, FF, CR.
//! - CSI with no private marker and one of the finals: `m` (SGR), cursor
//!   motion `A B C D E F G H f d e a \``, erase `J K X`, insert/delete
//!   `@ L M P`, scroll `S T`, margins `r`, save/restore cursor `s u`;
//!   `CSI Ps SP q` (cursor shape); `CSI ! p` (soft reset).
//! - `CSI ? Pm h` for the DEC modes 1 (cursor keys), 7 (autowrap),
//!   12 (blink), 25 (cursor shown), 47, 1047, 1048, 1049 (alternate
//!   screen); `CSI ? Pm l` for those and for the reporting modes
//!   (mouse 9, 1000–1003, 1005, 1006, 1015, 1016; focus 1004; bracketed
//!   paste 2004): turning a report *off* is harmless.
//! - ESC `7 8 D E M = >`; charset designations `ESC ( B`, `ESC ( 0`,
//!   `ESC ) B`, `ESC ) 0` (and `A`).
//! - OSC 0, 1, 2 (titles) and 8 (hyperlinks), ended by BEL or ST, at most
//!   [`MAX_STRING`] bytes.
//!
//! So, among others, these never reach the terminal: DSR (`CSI 5n`,
//! `CSI 6n`, `CSI ?6n`), DA (`CSI c`, `CSI >c`, `CSI =c`), window reports
//! (`CSI … t`), DECRQM (`CSI … $p`), XTVERSION (`CSI >q`), DECRQSS and
//! XTGETTCAP (DCS), every DCS/SOS/PM/APC string, OSC colour and clipboard
//! queries (`OSC 4/10/11/52 ; ?`), ENQ (answerback), the mode sets that
//! turn on mouse, focus or bracketed-paste reports, synchronized output
//! (2026, which could hide the question), `ESC c` and 8-bit C1 controls.

/// The longest CSI sequence kept (parameters included); longer ones are
/// dropped.
pub const MAX_CSI: usize = 64;
/// The longest OSC/DCS string kept; longer ones are dropped.
pub const MAX_STRING: usize = 4096;

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC.
    Esc,
    /// After ESC and an intermediate byte (0x20–0x2F).
    EscInter,
    Csi,
    /// A string (OSC, or DCS/SOS/PM/APC when `keep` is false).
    Str {
        keep: bool,
    },
    /// ESC inside a string: `\` ends it (ST).
    StrEsc {
        keep: bool,
    },
    /// Inside a UTF-8 sequence with this many continuation bytes to go.
    Utf8 {
        left: u8,
    },
    /// A CSI, OSC or string longer than allowed: swallowed to its end.
    SkipCsi,
}

/// The streaming filter: [`OutputFilter::feed`] the program's output in
/// chunks of any size; the result does not depend on where the chunks
/// were cut.
#[derive(Debug, Clone)]
pub struct OutputFilter {
    state: State,
    /// The sequence (or UTF-8 character) read so far.
    seq: Vec<u8>,
}

impl Default for OutputFilter {
    fn default() -> Self {
        Self::new()
    }
}

fn allowed_c0(b: u8) -> bool {
    matches!(b, BEL | 0x08..=0x0d)
}

const DRAW_MODES: &[u32] = &[1, 7, 12, 25, 47, 1047, 1048, 1049];
const REPORT_MODES: &[u32] = &[
    9, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1015, 1016, 2004,
];

/// Whether a complete CSI sequence (`ESC [` … final) is on the allow-list.
pub fn csi_allowed(seq: &[u8]) -> bool {
    let Some((&last, body)) = seq.get(2..).and_then(|s| s.split_last()) else {
        return false;
    };
    if seq[..2] != [ESC, b'['] {
        return false;
    }
    let (private, body) = match body.first() {
        Some(&p @ (b'<' | b'=' | b'>' | b'?')) => (Some(p), &body[1..]),
        _ => (None, body),
    };
    let split = body
        .iter()
        .position(|b| (0x20..=0x2f).contains(b))
        .unwrap_or(body.len());
    let (params, inter) = body.split_at(split);
    if !params
        .iter()
        .all(|b| b.is_ascii_digit() || *b == b';' || *b == b':')
    {
        return false;
    }
    if !inter.iter().all(|b| (0x20..=0x2f).contains(b)) {
        return false;
    }
    match (private, inter, last) {
        (None, [], b'm') => true,
        // `CSI Ps ; … T` with several parameters starts mouse tracking.
        (None, [], b'T') => !params.contains(&b';'),
        (None, [], f) => b"ABCDEFGHfdea`JKX@LMPSrsu".contains(&f),
        (None, b" ", b'q') => true,
        (None, b"!", b'p') => params.is_empty(),
        (Some(b'?'), [], f @ (b'h' | b'l')) => {
            let modes = params.split(|b| *b == b';');
            let mut any = false;
            for m in modes {
                let Some(n) = std::str::from_utf8(m)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    return false;
                };
                any = true;
                let ok = DRAW_MODES.contains(&n) || (f == b'l' && REPORT_MODES.contains(&n));
                if !ok {
                    return false;
                }
            }
            any
        }
        _ => false,
    }
}

/// Whether a complete OSC string (`ESC ]` … without its terminator) is on
/// the allow-list.
pub fn osc_allowed(body: &[u8]) -> bool {
    let Some(rest) = body.strip_prefix(&[ESC, b']']) else {
        return false;
    };
    let num = rest.split(|b| *b == b';').next().unwrap_or(b"");
    rest.contains(&b';') && matches!(num, b"0" | b"1" | b"2" | b"8")
}

/// Whether `ESC` + `rest` (two or three bytes in all, not CSI/OSC/strings)
/// is on the allow-list.
pub fn esc_allowed(rest: &[u8]) -> bool {
    matches!(
        rest,
        [b'7' | b'8' | b'D' | b'E' | b'M' | b'=' | b'>'] | [b'(' | b')', b'B' | b'0' | b'A']
    )
}

impl OutputFilter {
    /// A filter at the start of the output.
    pub fn new() -> OutputFilter {
        OutputFilter {
            state: State::Ground,
            seq: Vec::new(),
        }
    }

    /// Filters one chunk; what it returns is safe to write to the terminal.
    /// An incomplete sequence at the end of the chunk is kept for the next.
    pub fn feed(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            self.byte(b, &mut out);
        }
        out
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.state {
            State::Ground => self.ground(b, out),
            State::Utf8 { left } => {
                if (0x80..=0xbf).contains(&b) {
                    self.seq.push(b);
                    if left == 1 {
                        self.state = State::Ground;
                        // std decides validity (overlongs, surrogates).
                        match std::str::from_utf8(&self.seq) {
                            Ok(s) if !s.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)) => {
                                out.extend_from_slice(&self.seq)
                            }
                            Ok(_) => {}
                            Err(_) => latin1(&self.seq, out),
                        }
                        self.seq.clear();
                    } else {
                        self.state = State::Utf8 { left: left - 1 };
                    }
                } else {
                    // Not UTF-8 after all: the bytes so far as Latin-1,
                    // then this byte afresh.
                    latin1(&self.seq, out);
                    self.seq.clear();
                    self.state = State::Ground;
                    self.ground(b, out);
                }
            }
            State::Esc => match b {
                b'[' => {
                    self.seq.push(b);
                    self.state = State::Csi;
                }
                b']' => {
                    self.seq.push(b);
                    self.state = State::Str { keep: true };
                }
                b'P' | b'X' | b'^' | b'_' => {
                    self.seq.clear();
                    self.state = State::Str { keep: false };
                }
                0x20..=0x2f => {
                    self.seq.push(b);
                    self.state = State::EscInter;
                }
                ESC => {
                    self.seq.clear();
                    self.seq.push(ESC);
                }
                CAN | SUB => self.abort(),
                0x30..=0x7e => {
                    if esc_allowed(&[b]) {
                        out.extend_from_slice(&[ESC, b]);
                    }
                    self.abort();
                }
                _ => {
                    // A control inside the sequence: the sequence is
                    // dropped, the byte is read as if on its own.
                    self.abort();
                    self.ground(b, out);
                }
            },
            State::EscInter => match b {
                0x20..=0x2f if self.seq.len() < 4 => self.seq.push(b),
                // too many intermediates: no sequence of ours
                0x20..=0x2f => self.abort(),
                0x30..=0x7e => {
                    self.seq.push(b);
                    if esc_allowed(&self.seq[1..]) {
                        out.extend_from_slice(&self.seq);
                    }
                    self.abort();
                }
                ESC => self.restart(),
                _ => self.interrupted(b, out),
            },
            State::Csi => match b {
                0x20..=0x3f => {
                    self.seq.push(b);
                    if self.seq.len() > MAX_CSI {
                        self.seq.clear();
                        self.state = State::SkipCsi;
                    }
                }
                0x40..=0x7e => {
                    self.seq.push(b);
                    if csi_allowed(&self.seq) {
                        out.extend_from_slice(&self.seq);
                    }
                    self.abort();
                }
                ESC => self.restart(),
                _ => self.interrupted(b, out),
            },
            State::SkipCsi => match b {
                0x20..=0x3f => {}
                0x40..=0x7e => self.abort(),
                ESC => self.restart(),
                _ => self.interrupted(b, out),
            },
            State::Str { keep } => match b {
                BEL => self.end_string(keep, out, &[BEL]),
                ESC => self.state = State::StrEsc { keep },
                CAN | SUB => self.abort(),
                _ => {
                    if keep {
                        self.seq.push(b);
                        if self.seq.len() > MAX_STRING {
                            self.seq.clear();
                            self.state = State::Str { keep: false };
                        }
                    }
                }
            },
            State::StrEsc { keep } => {
                if b == b'\\' {
                    self.end_string(keep, out, &[ESC, b'\\']);
                } else {
                    // ESC ended the string (unterminated: dropped) and
                    // starts a sequence of its own.
                    self.seq.clear();
                    self.seq.push(ESC);
                    self.state = State::Esc;
                    self.byte(b, out);
                }
            }
        }
    }

    fn ground(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            ESC => {
                self.seq.clear();
                self.seq.push(ESC);
                self.state = State::Esc;
            }
            0x20..=0x7f => out.push(b),
            b if b < 0x20 => {
                if allowed_c0(b) {
                    out.push(b)
                }
            }
            0xc2..=0xdf => self.utf8_start(b, 1),
            0xe0..=0xef => self.utf8_start(b, 2),
            0xf0..=0xf4 => self.utf8_start(b, 3),
            // 8-bit C1 controls (CSI 0x9B, DCS 0x90, OSC 0x9D…).
            0x80..=0x9f => {}
            _ => out.push(b),
        }
    }

    fn utf8_start(&mut self, b: u8, left: u8) {
        self.seq.clear();
        self.seq.push(b);
        self.state = State::Utf8 { left };
    }

    fn end_string(&mut self, keep: bool, out: &mut Vec<u8>, end: &[u8]) {
        if keep && osc_allowed(&self.seq) {
            out.extend_from_slice(&self.seq);
            out.extend_from_slice(end);
        }
        self.abort();
    }

    fn abort(&mut self) {
        self.seq.clear();
        self.state = State::Ground;
    }

    /// An ESC inside a sequence: that one is dropped, a new one starts.
    fn restart(&mut self) {
        self.seq.clear();
        self.seq.push(ESC);
        self.state = State::Esc;
    }

    /// A control byte inside a sequence: the sequence is dropped; CAN and
    /// SUB only cancel it, any other byte is then handled as text is.
    fn interrupted(&mut self, b: u8, out: &mut Vec<u8>) {
        self.abort();
        if b != CAN && b != SUB {
            self.ground(b, out);
        }
    }
}

/// Bytes that did not form UTF-8, as Latin-1: C1 (0x80–0x9F) dropped.
fn latin1(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend(bytes.iter().filter(|b| !(0x80..=0x9f).contains(*b)));
}

/// Reads keys from the terminal's input, skipping every escape sequence
/// (terminal reports: cursor position, device attributes, colours, mouse
/// and focus reports; function keys) and everything inside a bracketed
/// paste: only a key typed on its own is a key.
#[derive(Debug, Default, Clone)]
pub struct KeyReader {
    state: KeyState,
    /// The last bytes of a CSI, to see `ESC [ 200 ~` / `ESC [ 201 ~`.
    csi: Vec<u8>,
    in_paste: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum KeyState {
    #[default]
    Ground,
    Esc,
    EscInter,
    Csi,
    /// `ESC O x` (SS3 function keys).
    Ss3,
    /// `ESC [ M` and three raw bytes: a legacy (X10) mouse report.
    MouseX10 {
        left: u8,
    },
    Str,
    StrEsc,
}

impl KeyReader {
    /// One byte of input; `Some(b)` when it is a key typed on its own.
    pub fn feed(&mut self, b: u8) -> Option<u8> {
        match self.state {
            KeyState::Ground => match b {
                ESC => self.state = KeyState::Esc,
                // (8-bit C1 controls are not read: terminals in UTF-8 mode
                // send 7-bit sequences, and 0x80–0x9F are UTF-8
                // continuation bytes of typed characters.)
                _ if self.in_paste => {}
                _ => return Some(b),
            },
            KeyState::Esc => match b {
                b'[' => {
                    self.csi.clear();
                    self.state = KeyState::Csi
                }
                b'O' => self.state = KeyState::Ss3,
                b']' | b'P' | b'X' | b'^' | b'_' => self.state = KeyState::Str,
                0x20..=0x2f => self.state = KeyState::EscInter,
                ESC => {}
                // ESC x (alt+x) is not a plain key either.
                _ => self.state = KeyState::Ground,
            },
            KeyState::EscInter => match b {
                0x20..=0x2f => {}
                _ => self.state = KeyState::Ground,
            },
            KeyState::Ss3 => self.state = KeyState::Ground,
            KeyState::MouseX10 { left } => {
                self.state = if left > 1 {
                    KeyState::MouseX10 { left: left - 1 }
                } else {
                    KeyState::Ground
                }
            }
            KeyState::Csi => match b {
                0x20..=0x3f => {
                    if self.csi.len() < 16 {
                        self.csi.push(b)
                    }
                }
                ESC => self.state = KeyState::Esc,
                _ => {
                    self.state = KeyState::Ground;
                    match (self.csi.as_slice(), b) {
                        (b"200", b'~') => self.in_paste = true,
                        (b"201", b'~') => self.in_paste = false,
                        (b"", b'M') => self.state = KeyState::MouseX10 { left: 3 },
                        _ => {}
                    }
                }
            },
            KeyState::Str => match b {
                BEL => self.state = KeyState::Ground,
                ESC => self.state = KeyState::StrEsc,
                _ => {}
            },
            KeyState::StrEsc => {
                self.state = if b == b'\\' {
                    KeyState::Ground
                } else {
                    KeyState::Str
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn filter(s: &[u8]) -> Vec<u8> {
        OutputFilter::new().feed(s)
    }

    #[test]
    fn queries_are_dropped() {
        for q in [
            &b"\x1b[6n"[..],
            b"\x1b[5n",
            b"\x1b[?6n",
            b"\x1b[c",
            b"\x1b[0c",
            b"\x1b[>c",
            b"\x1b[=c",
            b"\x1b[18t",
            b"\x1b[21t",
            b"\x1b[14;2t",
            b"\x1b[?2004$p",
            b"\x1b[>q",
            b"\x1b[>0q",
            b"\x1bP$qm\x1b\\",
            b"\x1bP+q544e\x1b\\",
            b"\x1b]11;?\x07",
            b"\x1b]4;1;?\x1b\\",
            b"\x1b]52;c;?\x07",
            b"\x05",
            b"\x1b[?1000h",
            b"\x1b[?1006h",
            b"\x1b[?1004h",
            b"\x1b[?2004h",
            b"\x1b[?2026h",
            b"\x1b[?1049;1000h",
            b"\x1bc",
            b"\x9b6n",
            b"\xc2\x9b6n",
            b"\x1b[x",
        ] {
            let out = filter(q);
            assert!(
                !out.contains(&ESC) && !out.contains(&0x05),
                "{:?} gave {:?}",
                String::from_utf8_lossy(q),
                String::from_utf8_lossy(&out)
            );
        }
    }

    #[test]
    fn drawing_passes() {
        for s in [
            &b"\x1b[1;31mred\x1b[0m"[..],
            b"\x1b[H\x1b[2J",
            b"\x1b[10;20H",
            b"\x1b[?1049h\x1b[?25l",
            b"\x1b[?1049l\x1b[?25h",
            b"\x1b[?1000l\x1b[?2004l",
            b"\x1b]0;my title\x07",
            b"\x1b]8;;http://x/\x1b\\link\x1b]8;;\x1b\\",
            b"\x1b(0qqq\x1b(B",
            b"\x1b7\x1b8",
            b"\x1b[2 q",
            b"tab\there\r\n",
        ] {
            assert_eq!(filter(s), s, "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn text_around_a_dropped_query_stays() {
        assert_eq!(filter(b"a\x1b[6nb"), b"ab");
        assert_eq!(filter(b"a\x1bP$qm\x1b\\b"), b"ab");
        assert_eq!(filter("é\x1b]11;?\x07ü".as_bytes()), "éü".as_bytes());
        // an ESC inside an unterminated string starts a sequence of its own
        assert_eq!(filter(b"\x1b]11;?\x1b[1mx"), b"\x1b[1mx");
    }

    #[test]
    fn keys_inside_sequences_are_not_keys() {
        let keys = |s: &[u8]| {
            let mut r = KeyReader::default();
            s.iter().filter_map(|b| r.feed(*b)).collect::<Vec<u8>>()
        };
        assert_eq!(keys(b"\x1b[24;80R"), b"");
        assert_eq!(keys(b"\x1b[?64;1;2;6;9;15;18;21;22c"), b"");
        assert_eq!(keys(b"\x1b]11;rgb:yyyy/aaaa/dddd\x1b\\"), b"");
        assert_eq!(keys(b"\x1b]11;rgb:yyyy/aaaa/dddd\x07"), b"");
        assert_eq!(keys(b"\x1bP1$r0;1m\x1b\\"), b"");
        assert_eq!(keys(b"\x1b[200~yes\x1b[201~"), b"");
        assert_eq!(keys(b"\x1b[M yy\x1b[<0;1;1M"), b"");
        assert_eq!(keys(b"\x1b[I\x1b[O"), b"");
        assert_eq!(keys(b"\x1bOA\x1by"), b"");
        assert_eq!(keys(b"\x1b[24;80Rn"), b"n");
    }

    /// An independent reading of the filter's output: every ESC in it
    /// starts a sequence on the allow-list, no other control is there.
    fn only_allowed(out: &[u8]) -> Result<(), String> {
        let mut i = 0;
        while i < out.len() {
            let b = out[i];
            if b == ESC {
                let rest = &out[i + 1..];
                let len = match rest.first() {
                    Some(b'[') => {
                        let end = rest[1..]
                            .iter()
                            .position(|c| (0x40..=0x7e).contains(c))
                            .ok_or("unterminated CSI")?;
                        let seq = &out[i..i + end + 3];
                        if !csi_allowed(seq) {
                            return Err(format!("CSI {:?}", String::from_utf8_lossy(seq)));
                        }
                        seq.len()
                    }
                    Some(b']') => {
                        let end = rest
                            .iter()
                            .position(|c| *c == BEL || *c == ESC)
                            .ok_or("unterminated OSC")?;
                        let seq = &out[i..i + end + 1];
                        if !osc_allowed(seq) {
                            return Err(format!("OSC {:?}", String::from_utf8_lossy(seq)));
                        }
                        seq.len() + if rest[end] == BEL { 1 } else { 2 }
                    }
                    Some(b'(' | b')') if rest.len() >= 2 && esc_allowed(&rest[..2]) => 3,
                    Some(_) if esc_allowed(&rest[..1]) => 2,
                    _ => return Err(format!("ESC {:?}", String::from_utf8_lossy(rest))),
                };
                i += len;
            } else if b < 0x20 && !allowed_c0(b) {
                return Err(format!("control {b:#x}"));
            } else {
                i += 1;
            }
        }
        // No C1 control, raw or as UTF-8.
        for chunk in out.utf8_chunks() {
            if chunk
                .valid()
                .chars()
                .any(|c| ('\u{80}'..='\u{9f}').contains(&c))
                || chunk.invalid().iter().any(|b| (0x80..=0x9f).contains(b))
            {
                return Err("a C1 control".into());
            }
        }
        Ok(())
    }

    #[test]
    fn the_checker_rejects_what_the_filter_must_drop() {
        for bad in [
            &b"\x1b[6n"[..],
            b"\x1b[>c",
            b"\x1bP$qm\x1b\\",
            b"\x1b]11;?\x07",
            b"\x05",
            b"\xc2\x9b",
        ] {
            assert!(
                only_allowed(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(only_allowed(b"\x1b[1mok\x1b[0m\x1b]0;t\x07"), Ok(()));
    }

    /// Input made of pieces a hostile program would write: queries,
    /// drawing, text, broken sequences, raw bytes.
    fn pieces() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"\x1b[6n".to_vec()),
            Just(b"\x1b[c".to_vec()),
            Just(b"\x1b[>0q".to_vec()),
            Just(b"\x1b[?1000h".to_vec()),
            Just(b"\x1b[?2004h".to_vec()),
            Just(b"\x1b]11;?\x07".to_vec()),
            Just(b"\x1bP$qm\x1b\\".to_vec()),
            Just(b"\x1b[1;31m".to_vec()),
            Just(b"\x1b[?1049h".to_vec()),
            Just(b"\x1b]0;t\x07".to_vec()),
            Just(b"\x1b(0".to_vec()),
            Just(b"\x1b".to_vec()),
            Just(b"\x1b[".to_vec()),
            Just(b"\x1b]".to_vec()),
            Just(b"\x9b".to_vec()),
            Just(b"\xc2\x9b".to_vec()),
            "[ -~]{0,8}".prop_map(|s| s.into_bytes()),
            any::<String>().prop_map(|s| s.into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn never_emits_a_sequence_outside_the_allow_list(input in pieces()) {
            let out = filter(&input);
            prop_assert_eq!(only_allowed(&out), Ok(()), "{:?} -> {:?}",
                String::from_utf8_lossy(&input), String::from_utf8_lossy(&out));
        }

        #[test]
        fn plain_text_passes_unchanged(s in any::<String>()) {
            // Plain text: no controls (C0, DEL aside, or C1).
            let s: String = s.chars().filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')).collect();
            prop_assert_eq!(filter(s.as_bytes()), s.as_bytes());
        }

        #[test]
        fn any_split_gives_the_same_output(input in pieces(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            let whole = filter(&input);
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            at.sort();
            let mut f = OutputFilter::new();
            let mut out = Vec::new();
            let mut from = 0;
            for a in at.into_iter().chain([input.len()]) {
                out.extend(f.feed(&input[from..a]));
                from = a;
            }
            prop_assert_eq!(out, whole);
        }
    }
}
