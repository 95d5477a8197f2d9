//! netevd's prompts waiting for an answer, and which of them are on screen
//! as notifications. Prompts are never dropped: beyond what is shown at
//! once, they wait their turn; one that is answered (here or by another
//! prompter) or expires leaves the queue and its notification is closed.

use netev_dbus::WireEvent;
use netev_event::display;

/// One prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// netevd's prompt id.
    pub id: u64,
    /// The operation that asked.
    pub event: WireEvent,
    /// Asked by a supervisor through `Ask` (netev run): the call is its
    /// word, and answering makes no rule in netevd.
    pub asked: bool,
    /// The notification showing it, if it is on screen.
    pub notification: Option<u32>,
    /// The person closed its notification without answering: it is not
    /// shown again (it stays answerable from the console until it expires).
    pub dismissed: bool,
}

/// The prompts netevd is waiting on, oldest first.
#[derive(Debug, Clone)]
pub struct PromptQueue {
    entries: Vec<Pending>,
    paused: bool,
    max_shown: usize,
}

impl PromptQueue {
    /// A queue that shows at most `max_shown` notifications at once.
    pub fn new(max_shown: usize) -> PromptQueue {
        PromptQueue {
            entries: Vec::new(),
            paused: false,
            max_shown: max_shown.max(1),
        }
    }

    /// Adds a prompt (a repeated id is ignored: the daemon's list and its
    /// signal may both bring one). Returns whether it was new.
    pub fn add(&mut self, id: u64, event: WireEvent, asked: bool) -> bool {
        if self.entries.iter().any(|e| e.id == id) {
            return false;
        }
        self.entries.push(Pending {
            id,
            event,
            asked,
            notification: None,
            dismissed: false,
        });
        true
    }

    /// Removes a prompt (answered or expired); returns the notification to
    /// close, if it was shown.
    pub fn remove(&mut self, id: u64) -> Option<u32> {
        let at = self.entries.iter().position(|e| e.id == id)?;
        self.entries.remove(at).notification
    }

    /// Forgets every prompt (the daemon went away: its prompts with it);
    /// returns the notifications to close.
    pub fn clear(&mut self) -> Vec<u32> {
        self.entries
            .drain(..)
            .filter_map(|e| e.notification)
            .collect()
    }

    /// The prompt with this id.
    pub fn get(&self, id: u64) -> Option<&Pending> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The prompt a notification shows.
    pub fn by_notification(&self, notification: u32) -> Option<&Pending> {
        self.entries
            .iter()
            .find(|e| e.notification == Some(notification))
    }

    /// The prompts to show now, oldest first: none while paused, and no
    /// more than fit beside those already on screen.
    pub fn to_show(&self) -> Vec<u64> {
        if self.paused {
            return Vec::new();
        }
        let shown = self
            .entries
            .iter()
            .filter(|e| e.notification.is_some())
            .count();
        self.entries
            .iter()
            .filter(|e| e.notification.is_none() && !e.dismissed)
            .take(self.max_shown.saturating_sub(shown))
            .map(|e| e.id)
            .collect()
    }

    /// Records that prompt `id` is shown by `notification`.
    pub fn shown(&mut self, id: u64, notification: u32) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.notification = Some(notification);
        }
    }

    /// A notification went away without an answer (closed by the person or
    /// by the notification server): its prompt is not shown again.
    pub fn notification_closed(&mut self, notification: u32) {
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.notification == Some(notification))
        {
            e.notification = None;
            e.dismissed = true;
        }
    }

    /// Pauses or resumes showing prompts; pending ones keep waiting.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Whether showing prompts is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Prompts waiting for an answer.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No prompt waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every pending prompt, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.entries.iter()
    }
}

/// `[IPv6]:port` or `a.b.c.d:port`.
pub fn place(addr: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => netev_event::endpoint(addr, p),
        None => addr.to_string(),
    }
}

/// What a person needs to decide: program, pid, user, op and destination,
/// e.g. `/usr/bin/curl (pid 7114, alice) wants to connect tcp 93.184.215.14:443`.
pub fn describe(ev: &WireEvent) -> String {
    let (addr, port) = crate::form::event_place(ev);
    let place = if addr.is_empty() {
        String::new()
    } else {
        format!(" {}", place(&addr, port))
    };
    let proto = if ev.proto.is_empty() {
        format!(" {}", ev.family)
    } else {
        format!(" {}", ev.proto)
    };
    format!(
        "{} (pid {}, {}) wants to {}{proto}{place}",
        program(ev),
        ev.pid,
        user(ev),
        ev.op
    )
}

/// The program's path, or its task name when the path is unknown; escaped
/// (netev_event::display: processes choose both).
pub fn program(ev: &WireEvent) -> String {
    if ev.exe.is_empty() {
        format!("{} (path unknown)", display::escape(&ev.comm))
    } else {
        display::escape(&ev.exe).into_owned()
    }
}

/// The user's name, or `uid N`; escaped.
pub fn user(ev: &WireEvent) -> String {
    if ev.user.is_empty() {
        format!("uid {}", ev.uid)
    } else {
        display::escape(&ev.user).into_owned()
    }
}

/// A notification's summary and body for a prompt. The body uses the
/// markup subset notification servers understand, so names taken from
/// processes are escaped.
pub fn notification_text(ev: &WireEvent) -> (String, String) {
    let name = ev.exe.rsplit('/').next().filter(|s| !s.is_empty());
    // the summary is plain text (no markup), still escaped
    let summary = format!(
        "{} wants to {}",
        display::escape(name.unwrap_or(&ev.comm)),
        display::escape(&ev.op)
    );
    let (addr, port) = crate::form::event_place(ev);
    let dest = if addr.is_empty() {
        String::from("no address")
    } else {
        format!(
            "{} {}",
            if ev.proto.is_empty() {
                &ev.family
            } else {
                &ev.proto
            },
            place(&addr, port)
        )
    };
    let body = format!(
        "{}\npid {}, user {}\n{} {}",
        escape(&program(ev)),
        ev.pid,
        escape(&user(ev)),
        escape(&display::escape(&ev.op)),
        escape(&display::escape(&dest))
    );
    (summary, body)
}

/// Escapes text (already escaped by `display::escape`) for notification
/// markup.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
        .replace('"', "&quot;")
}

/// The notification actions: (key, label). `default` is what a click on the
/// bubble does (open the dialog, like Process…).
pub const ACTIONS: [(&str, &str); 4] = [
    ("allow", "Allow"),
    ("deny", "Deny"),
    ("process", "Process…"),
    ("default", "Process…"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::connect_event;

    #[test]
    fn hostile_names_are_escaped_in_notifications_and_labels() {
        let mut ev = connect_event();
        ev.exe = "/tmp/ev\u{1b}[31mil\u{202e}gpj.exe\u{2028}FAKE\n<b>x</b>".into();
        ev.comm = "a\nb\u{202e}".into();
        ev.user = "bob\u{2066}".into();
        let (summary, body) = notification_text(&ev);
        for shown in [&summary, &body, &describe(&ev)] {
            for c in ['\u{1b}', '\u{202e}', '\u{2028}', '\u{2066}'] {
                assert!(!shown.contains(c), "{c:?} raw in {shown:?}");
            }
        }
        assert!(!summary.contains('\n') && !describe(&ev).contains('\n'));
        assert_eq!(
            body.lines().count(),
            3,
            "the body's own three lines: {body:?}"
        );
        assert!(
            body.contains("gpj.exe\\u{2028}FAKE\\n&lt;b&gt;x&lt;/b&gt;"),
            "{body}"
        );
        assert!(body.contains("bob\\u{2066}"), "{body}");
    }

    #[test]
    fn several_prompts_are_queued_not_lost() {
        let mut q = PromptQueue::new(2);
        for id in 1..=4 {
            assert!(q.add(id, connect_event(), false));
        }
        assert!(
            !q.add(2, connect_event(), false),
            "a repeated id is one prompt"
        );
        assert_eq!(q.to_show(), vec![1, 2]);
        q.shown(1, 101);
        q.shown(2, 102);
        assert!(q.to_show().is_empty(), "two on screen at most");
        // prompt 1 answered: its notification closes, the next one shows
        assert_eq!(q.remove(1), Some(101));
        assert_eq!(q.to_show(), vec![3]);
        q.shown(3, 103);
        // the person closes 102 without answering: 4 takes its place, 2 stays pending
        q.notification_closed(102);
        assert_eq!(q.to_show(), vec![4]);
        assert_eq!(q.len(), 3);
        assert_eq!(q.by_notification(103).unwrap().id, 3);
    }

    #[test]
    fn an_expired_prompt_closes_its_notification_and_pausing_holds_new_ones() {
        let mut q = PromptQueue::new(3);
        q.add(5, connect_event(), false);
        q.shown(5, 55);
        q.set_paused(true);
        q.add(6, connect_event(), false);
        assert!(q.to_show().is_empty());
        assert_eq!(q.remove(5), Some(55));
        assert_eq!(q.remove(6), None, "never shown: nothing to close");
        q.add(7, connect_event(), false);
        q.set_paused(false);
        assert_eq!(q.to_show(), vec![7]);
    }

    #[test]
    fn the_notification_names_program_user_op_and_destination() {
        let mut ev = connect_event();
        ev.exe = "/opt/<evil>/bin/x".into();
        let (summary, body) = notification_text(&ev);
        assert_eq!(summary, "x wants to connect");
        assert!(body.contains("/opt/&lt;evil&gt;/bin/x"), "{body}");
        assert!(
            body.contains("pid 4242, user alice") && body.contains("tcp 192.0.2.7:8080"),
            "{body}"
        );
        ev.raddr = "2001:db8::1".into();
        assert_eq!(
            describe(&ev),
            "/opt/<evil>/bin/x (pid 4242, alice) wants to connect tcp [2001:db8::1]:8080"
        );
    }
}
