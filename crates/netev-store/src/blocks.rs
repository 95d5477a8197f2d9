//! The counts behind `netev top`, kept as blocks: one row per grouping,
//! minute and host holds every key of that minute with its operations and
//! events, encoded in one value (postcard: each key, then two varints).
//!
//! Why blocks and not a row per key: a key such as `dest` has thousands of
//! values a minute, nearly all seen once. As a row per key, a batch made
//! thousands of upserts, and `top --by dest --since 1h` read and grouped
//! ~200,000 rows (over 100 ms on 10M events). As blocks, a batch writes a
//! handful of rows, and `top` reads one row per minute and sums the keys in
//! a hash table.
//!
//! Each batch writes blocks of its own; once a minute is two minutes old,
//! the store that wrote it merges that host's blocks of the minute into one
//! ([`Compactor`]). A block holds at most [`MAX_KEYS`] keys and about
//! [`MAX_KEY_BYTES`] of keys, so that a very busy minute (or one with very
//! long program paths) becomes several blocks rather than one huge value.

use std::collections::{BTreeSet, HashMap};

use netev_event::Event;

use crate::model::{minute, TopSums};
use crate::{Error, Result, TopBy};

/// Keys per block at most.
pub const MAX_KEYS: usize = 65_536;
/// Bytes of keys per block at most (a block goes over by one key at most).
pub const MAX_KEY_BYTES: usize = 4 << 20;

/// One encoded block of counts.
pub struct Block {
    pub by: TopBy,
    pub minute: i64,
    pub counts: Vec<u8>,
}

/// The blocks of a batch of events: per grouping and minute.
pub fn of_events(events: &[Event]) -> Vec<Block> {
    let mut per: HashMap<(TopBy, i64), HashMap<String, (u64, u64)>> = HashMap::new();
    for ev in events {
        let min = minute(ev.ts);
        for by in TopBy::ALL {
            if let Some(key) = by.key(ev) {
                let e = per.entry((by, min)).or_default().entry(key).or_default();
                e.0 = e.0.saturating_add(u64::from(ev.count));
                e.1 = e.1.saturating_add(1);
            }
        }
    }
    let mut out = Vec::new();
    for ((by, minute), keys) in per {
        let entries: Vec<(&str, u64, u64)> =
            keys.iter().map(|(k, &(o, n))| (k.as_str(), o, n)).collect();
        out.extend(
            encode(&entries)
                .into_iter()
                .map(|counts| Block { by, minute, counts }),
        );
    }
    // Always in the same order, so that writers lock rows alike.
    out.sort_by_key(|b| (b.by.name(), b.minute));
    out
}

/// Encodes entries (key, operations, events) into blocks of at most
/// [`MAX_KEYS`] keys and about [`MAX_KEY_BYTES`] of keys.
pub fn encode(entries: &[(&str, u64, u64)]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (key, _, _)) in entries.iter().enumerate() {
        if i - start == MAX_KEYS || bytes >= MAX_KEY_BYTES {
            out.push(encode_one(&entries[start..i]));
            (start, bytes) = (i, 0);
        }
        bytes += key.len();
    }
    if start < entries.len() {
        out.push(encode_one(&entries[start..]));
    }
    out
}

fn encode_one(entries: &[(&str, u64, u64)]) -> Vec<u8> {
    postcard::to_stdvec(entries).expect("encoding into a Vec cannot fail")
}

/// Adds the counts of a stored block (row `id`) to `sums`.
pub fn add(sums: &mut TopSums, id: i64, counts: &[u8]) -> Result<()> {
    let entries: Vec<(&str, u64, u64)> =
        postcard::from_bytes(counts).map_err(|e| Error::BadCounts {
            id,
            reason: format!("{} bytes, {e}", counts.len()),
        })?;
    for (key, ops, events) in entries {
        sums.add(key, ops, events);
    }
    Ok(())
}

/// The minutes a store has written blocks for and not merged yet.
#[derive(Debug, Default)]
pub struct Compactor {
    pending: BTreeSet<(i64, TopBy)>,
    newest: i64,
}

impl Compactor {
    /// Notes the blocks a batch wrote.
    fn wrote(&mut self, blocks: &[Block]) {
        for b in blocks {
            self.pending.insert((b.minute, b.by));
            self.newest = self.newest.max(b.minute);
        }
    }

    /// Notes the blocks a batch wrote, then merges the minutes now due
    /// with `merge_minute`. The batch is in by then: a merge that fails
    /// leaves correct (only more) blocks behind, so it is logged, not
    /// returned as the batch's error.
    pub fn after_batch(
        &mut self,
        blocks: &[Block],
        mut merge_minute: impl FnMut(TopBy, i64) -> Result<()>,
    ) {
        self.wrote(blocks);
        for (by, min) in self.due() {
            if let Err(e) = merge_minute(by, min) {
                tracing::warn!(
                    "could not merge the counts of minute {min} ({}): {e}",
                    by.name()
                );
            }
        }
    }

    /// The minutes to merge now: two minutes older than the newest written
    /// (events come in time order; a late batch only makes a minute
    /// pending again). They are taken off the list.
    fn due(&mut self) -> Vec<(TopBy, i64)> {
        // (`Exe` is the first grouping, so the split keeps all of `cut`.)
        let cut = self.newest.saturating_sub(1);
        let rest = self.pending.split_off(&(cut, TopBy::Exe));
        std::mem::replace(&mut self.pending, rest)
            .into_iter()
            .map(|(m, by)| (by, m))
            .collect()
    }
}

/// Merges blocks (`(id, counts)`) into new ones; `None` if there is
/// nothing to merge (one block or none).
pub fn merge(blocks: &[(i64, Vec<u8>)]) -> Result<Option<Vec<Vec<u8>>>> {
    if blocks.len() < 2 {
        return Ok(None);
    }
    let mut sums = TopSums::default();
    for (id, counts) in blocks {
        add(&mut sums, *id, counts)?;
    }
    let entries: Vec<(&str, u64, u64)> = sums.entries().collect();
    Ok(Some(encode(&entries)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ev(secs: i64, dest: &str, count: u32) -> Event {
        let mut e = Event::new(netev_event::Op::Connect);
        e.ts = Utc.timestamp_opt(secs, 0).unwrap();
        e.raddr = Some(dest.parse().unwrap());
        e.rport = Some(443);
        e.exe = Some("/usr/bin/curl".into());
        e.count = count;
        e
    }

    fn sums(blocks: &[(i64, Vec<u8>)]) -> Vec<crate::TopRow> {
        let mut s = TopSums::default();
        for (id, c) in blocks {
            add(&mut s, *id, c).unwrap();
        }
        s.top(100)
    }

    #[test]
    fn a_batch_becomes_one_block_per_grouping_and_minute() {
        let blocks = of_events(&[
            ev(0, "192.0.2.1", 1),
            ev(1, "192.0.2.1", 10),
            ev(2, "192.0.2.2", 1),
            ev(61, "192.0.2.2", 1),
        ]);
        let dest: Vec<_> = blocks
            .iter()
            .filter(|b| b.by == TopBy::Dest)
            .map(|b| (b.minute, sums(&[(1, b.counts.clone())])))
            .collect();
        assert_eq!(dest.len(), 2);
        assert_eq!(dest[0].0, 0);
        assert_eq!(
            dest[0]
                .1
                .iter()
                .map(|r| (r.key.as_str(), r.ops, r.events))
                .collect::<Vec<_>>(),
            [("192.0.2.1", 11, 2), ("192.0.2.2", 1, 1)]
        );
        assert_eq!(dest[1].0, 1);
        // each of the four groupings (user: the uid) in both minutes
        assert_eq!(blocks.len(), 8);
    }

    #[test]
    fn big_minutes_split_into_blocks_of_max_keys() {
        let keys: Vec<String> = (0..MAX_KEYS + 5).map(|i| format!("k{i}")).collect();
        let entries: Vec<(&str, u64, u64)> = keys.iter().map(|k| (k.as_str(), 1, 1)).collect();
        let blocks = encode(&entries);
        assert_eq!(blocks.len(), 2);
        let stored: Vec<(i64, Vec<u8>)> = blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| (i as i64, b))
            .collect();
        assert_eq!(sums(&stored).len(), 100);
        let mut s = TopSums::default();
        for (id, c) in &stored {
            add(&mut s, *id, c).unwrap();
        }
        assert_eq!(s.entries().count(), MAX_KEYS + 5);
    }

    #[test]
    fn long_keys_split_blocks_by_bytes_too() {
        let keys: Vec<String> = (0..10)
            .map(|i| format!("/{i}{}", "x".repeat(1 << 20)))
            .collect();
        let entries: Vec<(&str, u64, u64)> = keys.iter().map(|k| (k.as_str(), 1, 1)).collect();
        let blocks = encode(&entries);
        // 4 keys of just over 1 MiB reach 4 MiB: blocks of 4, 4 and 2
        assert_eq!(blocks.len(), 3);
        assert!(blocks.iter().all(|b| b.len() < 5 << 20));
        let mut s = TopSums::default();
        for (id, c) in blocks.iter().enumerate() {
            add(&mut s, id as i64, c).unwrap();
        }
        assert_eq!(s.entries().count(), 10);
        assert!(encode(&[]).is_empty());
    }

    #[test]
    fn merging_keeps_every_count() {
        let a = encode(&[("x", 1, 1), ("y", 2, 1)]).remove(0);
        let b = encode(&[("y", 3, 3), ("z", 1, 1)]).remove(0);
        let merged = merge(&[(1, a.clone()), (2, b)]).unwrap().unwrap();
        assert_eq!(merged.len(), 1);
        let rows = sums(&[(3, merged[0].clone())]);
        assert_eq!(
            rows.iter()
                .map(|r| (r.key.as_str(), r.ops, r.events))
                .collect::<Vec<_>>(),
            [("y", 5, 4), ("x", 1, 1), ("z", 1, 1)]
        );
        assert!(merge(&[(1, a)]).unwrap().is_none());
    }

    #[test]
    fn a_damaged_block_is_an_error_naming_the_row() {
        let mut s = TopSums::default();
        let err = add(&mut s, 42, &[0xff, 0xff, 0xff])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("count block 42 (table count_blocks) does not decode: 3 bytes"),
            "{err}"
        );
    }

    #[test]
    fn minutes_are_due_two_minutes_after_the_newest() {
        let mut c = Compactor::default();
        let block = |m| Block {
            by: TopBy::Dest,
            minute: m,
            counts: Vec::new(),
        };
        c.wrote(&[block(10), block(11)]);
        assert_eq!(c.due(), vec![]);
        c.wrote(&[block(12)]);
        assert_eq!(c.due(), vec![(TopBy::Dest, 10)]);
        assert_eq!(c.due(), vec![]);
        c.wrote(&[block(14)]);
        assert_eq!(c.due(), vec![(TopBy::Dest, 11), (TopBy::Dest, 12)]);
        // a late batch for an old minute makes it pending again
        c.wrote(&[block(5)]);
        assert_eq!(c.due(), vec![(TopBy::Dest, 5)]);
    }
}
