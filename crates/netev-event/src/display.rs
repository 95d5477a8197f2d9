//! Showing strings that other people chose: the one home of how netev
//! escapes them, in every output (terminal lines, prompts, notifications,
//! GTK labels, JSON).
//!
//! A process chooses its own name, its executable's path, its command line
//! and, through `Ask`, what it claims; a user name and a host name come
//! from databases other people write. None of them may forge a line, move
//! the cursor, recolour a terminal or reorder what is shown around them.
//! So these are escaped wherever shown:
//! - control characters (C0, DEL, C1): newlines, ESC, carriage return…
//! - bidirectional formatting characters (U+061C, U+200E/F, U+202A–U+202E,
//!   U+2066–U+2069): they reorder the text that follows them;
//! - the line and paragraph separators U+2028/U+2029 (they break lines in
//!   GTK, notification daemons and some terminals), the zero-width
//!   characters U+200B–U+200D, U+2060–U+2064 and U+FEFF (they hide or
//!   join what is shown);
//! - the backslash itself, so that the escaped form reads back to exactly
//!   the original (nothing is lost: `\u{202e}` shown is a U+202E stored).
//!
//! Escapes use Rust's notation: `\n`, `\t`, `\r`, `\\`, `\u{1b}`.

use std::borrow::Cow;

/// Whether `c` must not reach a screen as itself (see the module).
pub fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `s` with every hostile character (and the backslash) escaped; `s`
/// itself, borrowed, when there is none.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || is_hostile(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if is_hostile(c) => {
            use std::fmt::Write;
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `s` escaped as [`escape`] does, and also `"`: the value of an
/// OpenMetrics (Prometheus) label, between its double quotes. The format
/// knows `\\`, `\"` and `\n`; the other escapes read back as the text
/// they are, so no value can end its label or its line.
pub fn escape_label_value(s: &str) -> String {
    escape(s).replace('"', "\\\"")
}

/// `s` escaped as [`escape`] does, and also with the characters of
/// Pango/notification markup (`&`, `<`, `>`, `'`, `"`) as entities: for
/// notification bodies, which servers may render as markup.
pub fn escape_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in escape(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON output that escapes the hostile characters JSON allows raw (the
/// bidi controls, U+2028/U+2029, the zero-width ones) as `\uXXXX`: the
/// value is the same string, but no line of it can reorder or break a
/// terminal or a log viewer. serde_json escapes the control characters
/// itself.
pub struct SafeJson;

impl serde_json::ser::Formatter for SafeJson {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut rest = fragment;
        while let Some((i, c)) = rest.char_indices().find(|(_, c)| is_hostile(*c)) {
            writer.write_all(&rest.as_bytes()[..i])?;
            // all of them are in the Basic Multilingual Plane
            write!(writer, "\\u{:04x}", c as u32)?;
            rest = &rest[i + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

/// `value` as one line of JSON through [`SafeJson`].
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(256);
    write_json(&mut out, value).expect("writing JSON into memory");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Writes `value` as JSON through [`SafeJson`].
pub fn write_json<W: std::io::Write, T: serde::Serialize + ?Sized>(
    writer: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(writer, SafeJson);
    value.serialize(&mut ser)
}

/// [`to_json`], pretty-printed (two-space indents).
pub fn to_json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // PrettyFormatter's indentation with SafeJson's strings: serialize
    // pretty, then escape what is left raw (only inside strings can any of
    // these characters appear in JSON).
    let pretty = serde_json::to_string_pretty(value).expect("a value always serializes");
    let mut out = String::with_capacity(pretty.len());
    for c in pretty.chars() {
        if is_hostile(c) && !matches!(c, '\n' | ' ') {
            use std::fmt::Write;
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EVIL: &str = "/tmp/\u{1b}[2Jx\nFAKE\u{202e}gpj.exe\u{2028}y\u{200b}\\z";

    #[test]
    fn hostile_characters_are_escaped_and_nothing_else() {
        assert_eq!(
            escape(EVIL),
            "/tmp/\\u{1b}[2Jx\\nFAKE\\u{202e}gpj.exe\\u{2028}y\\u{200b}\\\\z"
        );
        assert!(matches!(escape("/usr/bin/curl ü"), Cow::Borrowed(_)));
    }

    #[test]
    fn label_values_cannot_end_their_label_or_line() {
        assert_eq!(
            escape_label_value("a\"} 1\nfake_total 9\\"),
            "a\\\"} 1\\nfake_total 9\\\\"
        );
        assert_eq!(escape_label_value("/sys/fs/cgroup"), "/sys/fs/cgroup");
    }

    #[test]
    fn markup_is_escaped_for_notifications() {
        assert_eq!(
            escape_markup("<b>a&b</b>\u{202e}"),
            "&lt;b&gt;a&amp;b&lt;/b&gt;\\u{202e}"
        );
    }

    #[test]
    fn json_keeps_the_value_and_escapes_what_json_allows_raw() {
        let j = to_json(&serde_json::json!({ "exe": EVIL }));
        assert!(!j.chars().any(is_hostile), "{j:?}");
        assert!(j.contains("\\u202e") && j.contains("\\u2028"), "{j}");
        let back: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back["exe"], EVIL);
        let p = to_json_pretty(&serde_json::json!({ "exe": EVIL }));
        assert!(!p.chars().any(|c| is_hostile(c) && c != '\n'), "{p:?}");
        let back: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(back["exe"], EVIL);
    }

    /// Reads an escaped string back (the inverse of `escape`).
    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut it = s.chars().peekable();
        while let Some(c) = it.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match it.next().unwrap() {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'u' => {
                    assert_eq!(it.next(), Some('{'));
                    let hex: String = it.by_ref().take_while(|c| *c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                other => panic!("unexpected escape \\{other}"),
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        #[test]
        fn escaping_is_lossless_and_leaves_no_hostile_character(s in any::<String>()) {
            let e = escape(&s);
            prop_assert!(!e.chars().any(is_hostile));
            prop_assert_eq!(unescape(&e), s.clone());
            let j = to_json(&s);
            prop_assert!(!j.chars().any(is_hostile));
            prop_assert_eq!(serde_json::from_str::<String>(&j).unwrap(), s);
        }
    }
}
