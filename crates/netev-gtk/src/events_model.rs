//! The console's live events without GTK: the rows kept (bounded), pause,
//! the filter by program, op and verdict, and the events-per-second counts
//! by verdict that the chart draws.

use std::collections::VecDeque;

use netev_dbus::WireEvent;

/// Most events the view keeps; older ones scroll away.
pub const MAX_ROWS: usize = 2000;
/// Seconds the chart shows.
pub const CHART_SECONDS: usize = 60;

/// The verdicts the chart counts, in drawing order.
pub const VERDICTS: [&str; 3] = ["allow", "deny", "observe"];

/// What the filter boxes hold; empty means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Part of the program path (case-insensitive).
    pub exe: String,
    /// An op name, or "" for any.
    pub op: String,
    /// A verdict, or "" for any.
    pub verdict: String,
}

impl EventFilter {
    /// Whether an event passes.
    pub fn keeps(&self, ev: &WireEvent) -> bool {
        (self.exe.is_empty()
            || ev.exe.to_lowercase().contains(&self.exe.to_lowercase())
            || ev.comm.to_lowercase().contains(&self.exe.to_lowercase()))
            && (self.op.is_empty() || ev.op == self.op)
            && (self.verdict.is_empty() || ev.verdict == self.verdict)
    }
}

/// The live events view.
#[derive(Debug, Clone, Default)]
pub struct EventsModel {
    rows: VecDeque<WireEvent>,
    held: VecDeque<WireEvent>,
    paused: bool,
    lost: u64,
}

impl EventsModel {
    /// An empty view.
    pub fn new() -> EventsModel {
        EventsModel::default()
    }

    /// Takes a batch. While paused the view does not move: events are held
    /// (the newest [`MAX_ROWS`]) and appear on resume. Returns whether the
    /// rows changed.
    pub fn push(&mut self, batch: &[WireEvent], lost: u64) -> bool {
        self.lost += lost;
        let into = if self.paused {
            &mut self.held
        } else {
            &mut self.rows
        };
        for ev in batch {
            if into.len() == MAX_ROWS {
                into.pop_front();
            }
            into.push_back(ev.clone());
        }
        !self.paused && !batch.is_empty()
    }

    /// Pauses or resumes the view.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if !paused {
            let held: Vec<WireEvent> = self.held.drain(..).collect();
            self.push(&held, 0);
        }
    }

    /// Whether the view is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Events that arrived while paused.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Events the daemon could not send us (we were too slow).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The rows the filter keeps, oldest first.
    pub fn visible(&self, filter: &EventFilter) -> Vec<&WireEvent> {
        self.rows.iter().filter(|e| filter.keeps(e)).collect()
    }

    /// Forgets every row.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.held.clear();
    }
}

/// Events per second by verdict over the last [`CHART_SECONDS`] seconds,
/// by the events' own timestamps.
#[derive(Debug, Clone, Default)]
pub struct RateChart {
    /// (second since the epoch, counts per verdict), oldest first.
    buckets: VecDeque<(i64, [u64; 3])>,
}

impl RateChart {
    /// An empty chart.
    pub fn new() -> RateChart {
        RateChart::default()
    }

    /// Counts a batch (an event stands for `count` calls).
    pub fn add(&mut self, batch: &[WireEvent]) {
        for ev in batch {
            let Some(v) = VERDICTS.iter().position(|v| *v == ev.verdict) else {
                continue;
            };
            let sec = ev.ts_ns.div_euclid(1_000_000_000);
            let at = match self.buckets.iter().rposition(|(s, _)| *s <= sec) {
                Some(i) if self.buckets[i].0 == sec => i,
                Some(i) => {
                    self.buckets.insert(i + 1, (sec, [0; 3]));
                    i + 1
                }
                None => {
                    self.buckets.push_front((sec, [0; 3]));
                    0
                }
            };
            self.buckets[at].1[v] += u64::from(ev.count.max(1));
        }
        if let Some(&(newest, _)) = self.buckets.back() {
            while self
                .buckets
                .front()
                .is_some_and(|(s, _)| *s <= newest - CHART_SECONDS as i64)
            {
                self.buckets.pop_front();
            }
        }
    }

    /// One entry per second for the [`CHART_SECONDS`] seconds up to and
    /// including `now` (seconds since the epoch), oldest first; seconds
    /// without events are zero.
    pub fn series(&self, now: i64) -> Vec<[u64; 3]> {
        let first = now - CHART_SECONDS as i64 + 1;
        let mut out = vec![[0u64; 3]; CHART_SECONDS];
        for (s, c) in &self.buckets {
            if (first..=now).contains(s) {
                out[(s - first) as usize] = *c;
            }
        }
        out
    }

    /// The largest total of one second in a series (at least 1), for the
    /// chart's scale.
    pub fn peak(series: &[[u64; 3]]) -> u64 {
        series
            .iter()
            .map(|c| c.iter().sum::<u64>())
            .max()
            .unwrap_or(0)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::connect_event;

    fn ev(exe: &str, op: &str, verdict: &str, sec: i64) -> WireEvent {
        let mut e = connect_event();
        e.exe = exe.into();
        e.comm = exe.rsplit('/').next().unwrap_or("").into();
        e.op = op.into();
        e.verdict = verdict.into();
        e.ts_ns = sec * 1_000_000_000 + 5;
        e
    }

    #[test]
    fn filters_by_program_op_and_verdict() {
        let mut m = EventsModel::new();
        m.push(
            &[
                ev("/usr/bin/curl", "connect", "allow", 1),
                ev("/usr/bin/ssh", "connect", "deny", 1),
                ev("/usr/bin/curl", "socket", "allow", 2),
            ],
            0,
        );
        let f = |exe: &str, op: &str, verdict: &str| {
            m.visible(&EventFilter {
                exe: exe.into(),
                op: op.into(),
                verdict: verdict.into(),
            })
            .len()
        };
        assert_eq!(f("", "", ""), 3);
        assert_eq!(f("CURL", "", ""), 2);
        assert_eq!(f("curl", "connect", ""), 1);
        assert_eq!(f("", "", "deny"), 1);
        assert_eq!(f("ssh", "", "allow"), 0);
    }

    #[test]
    fn a_paused_view_holds_events_until_resumed_and_stays_bounded() {
        let mut m = EventsModel::new();
        m.push(&[ev("/a", "connect", "allow", 1)], 0);
        m.set_paused(true);
        assert!(!m.push(&[ev("/b", "connect", "allow", 2)], 3));
        assert_eq!(m.visible(&EventFilter::default()).len(), 1);
        assert_eq!(m.held(), 1);
        m.set_paused(false);
        assert_eq!(m.visible(&EventFilter::default()).len(), 2);
        assert_eq!(m.lost(), 3);
        let many: Vec<WireEvent> = (0..MAX_ROWS + 10)
            .map(|i| ev("/c", "connect", "allow", i as i64))
            .collect();
        m.push(&many, 0);
        let v = m.visible(&EventFilter::default());
        assert_eq!(v.len(), MAX_ROWS);
        assert_eq!(
            v.last().unwrap().ts_ns,
            (MAX_ROWS as i64 + 9) * 1_000_000_000 + 5
        );
    }

    #[test]
    fn the_chart_counts_calls_per_second_by_verdict() {
        let mut c = RateChart::new();
        let mut coalesced = ev("/a", "sendmsg", "allow", 100);
        coalesced.count = 40;
        c.add(&[
            ev("/a", "connect", "allow", 100),
            coalesced,
            ev("/a", "connect", "deny", 100),
            ev("/a", "accept", "observe", 99),
            ev("/a", "connect", "deny", 102),
        ]);
        // a late event for an earlier second lands in its own second
        c.add(&[ev("/a", "connect", "deny", 101)]);
        let s = c.series(102);
        assert_eq!(s.len(), CHART_SECONDS);
        assert_eq!(s[CHART_SECONDS - 1], [0, 1, 0]);
        assert_eq!(s[CHART_SECONDS - 2], [0, 1, 0]);
        assert_eq!(s[CHART_SECONDS - 3], [41, 1, 0]);
        assert_eq!(s[CHART_SECONDS - 4], [0, 0, 1]);
        assert_eq!(RateChart::peak(&s), 42);
        // old seconds scroll out
        c.add(&[ev("/a", "connect", "allow", 100 + CHART_SECONDS as i64 + 5)]);
        assert!(c.series(102).iter().all(|x| *x == [0, 0, 0]));
    }
}
