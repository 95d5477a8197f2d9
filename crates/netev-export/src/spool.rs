//! The disk spool of one export: batches the receiver could not take yet,
//! oldest first, bounded in bytes.
//!
//! One file per batch (`SEQ.batch`, its meta as one JSON line, then the
//! encoded payload), written to a temporary name, synced and renamed, so a
//! crash leaves whole batches or none; a restarted netevd sends what the
//! last one left. Batches are a few hundred kilobytes, so a file each is
//! cheap and a damaged one costs only itself. The directory is root's
//! alone (mode 0700): it holds every user's command lines.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{io_err, BatchMeta, Error, Result};

pub struct Spool {
    dir: PathBuf,
    max: u64,
    /// (seq, file size, events), oldest first.
    files: VecDeque<(u64, u64, u64)>,
    bytes: u64,
    events: u64,
    next: u64,
}

impl Spool {
    /// Opens (creating) the spool in `dir`, taking up what is already there.
    pub fn open(dir: &Path, max: u64) -> Result<Spool> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(format!(
                "creating the spool directory {}",
                dir.display()
            )))?;
        let meta =
            fs::symlink_metadata(dir).map_err(io_err(format!("reading {}", dir.display())))?;
        if !meta.is_dir() {
            return Err(Error::Config(format!(
                "the spool {} is not a directory",
                dir.display()
            )));
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("making {} private", dir.display())))?;
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))? {
            let entry = entry.map_err(io_err(format!("reading {}", dir.display())))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                // a write that a crash interrupted: never renamed, never counted
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let Some(seq) = name
                .strip_suffix(".batch")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let events = read_meta(&entry.path()).map(|m| m.events).unwrap_or(0);
            found.push((seq, size, events));
        }
        found.sort_unstable();
        let bytes = found.iter().map(|f| f.1).sum();
        let events = found.iter().map(|f| f.2).sum();
        let next = found.last().map_or(1, |f| f.0 + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            max,
            files: found.into(),
            bytes,
            events,
            next,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Events held.
    pub fn events(&self) -> u64 {
        self.events
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.batch"))
    }

    /// Adds a batch at the back; refused when it would pass the limit.
    pub fn push(&mut self, meta: &BatchMeta, payload: &[u8]) -> Result<()> {
        let head = serde_json::to_vec(meta).expect("batch meta serializes");
        let size = (head.len() + 1 + payload.len()) as u64;
        if self.bytes + size > self.max {
            return Err(Error::SpoolFull { max: self.max });
        }
        let seq = self.next;
        let path = self.path(seq);
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            f.write_all(&head)?;
            f.write_all(b"\n")?;
            f.write_all(payload)?;
            f.sync_data()?;
            fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(format!("writing the spool file {}", path.display()))(e));
        }
        self.next += 1;
        self.files.push_back((seq, size, meta.events));
        self.bytes += size;
        self.events += meta.events;
        Ok(())
    }

    /// The oldest batch, if any. An unreadable one is an error; the caller
    /// drops it with `pop_front`.
    pub fn front(&self) -> Result<Option<(BatchMeta, Vec<u8>)>> {
        let Some(&(seq, _, _)) = self.files.front() else {
            return Ok(None);
        };
        let path = self.path(seq);
        let data = fs::read(&path)
            .map_err(io_err(format!("reading the spool file {}", path.display())))?;
        let nl = data.iter().position(|&b| b == b'\n').ok_or_else(|| {
            Error::Delivery(format!(
                "the spool file {} is damaged: no header line; dropped",
                path.display()
            ))
        })?;
        let meta: BatchMeta = serde_json::from_slice(&data[..nl]).map_err(|e| {
            Error::Delivery(format!(
                "the spool file {} is damaged ({e}); dropped",
                path.display()
            ))
        })?;
        Ok(Some((meta, data[nl + 1..].to_vec())))
    }

    /// Drops the oldest batch (it was delivered, or it is damaged).
    pub fn pop_front(&mut self) -> Result<()> {
        let Some((seq, size, events)) = self.files.pop_front() else {
            return Ok(());
        };
        self.bytes -= size;
        self.events -= events;
        let path = self.path(seq);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!(
                "removing the spool file {}",
                path.display()
            ))(e)),
        }
    }
}

fn read_meta(path: &Path) -> Option<BatchMeta> {
    use std::io::BufRead;
    let mut line = Vec::new();
    std::io::BufReader::new(fs::File::open(path).ok()?)
        .read_until(b'\n', &mut line)
        .ok()?;
    serde_json::from_slice(line.strip_suffix(b"\n")?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, events: u64) -> BatchMeta {
        BatchMeta {
            id: id.into(),
            host: "h".into(),
            events,
            gap: None,
        }
    }

    #[test]
    fn batches_come_back_in_order_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("s");
        let mut s = Spool::open(&d, 1 << 20).unwrap();
        s.push(&meta("a", 2), b"one\ntwo").unwrap();
        s.push(&meta("b", 1), b"three").unwrap();
        drop(s);
        std::fs::write(d.join("00000000000000000009.tmp"), b"half").unwrap();
        let mut s = Spool::open(&d, 1 << 20).unwrap();
        assert_eq!(s.events(), 3);
        let (m, p) = s.front().unwrap().unwrap();
        assert_eq!((m.id.as_str(), p.as_slice()), ("a", &b"one\ntwo"[..]));
        s.pop_front().unwrap();
        s.push(&meta("c", 1), b"four").unwrap();
        let (m, _) = s.front().unwrap().unwrap();
        assert_eq!(m.id, "b");
        s.pop_front().unwrap();
        assert_eq!(s.front().unwrap().unwrap().0.id, "c");
        s.pop_front().unwrap();
        assert!(s.is_empty() && s.bytes() == 0 && s.events() == 0);
        assert!(!d.join("00000000000000000009.tmp").exists());
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_full_spool_refuses_and_a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 100).unwrap();
        s.push(&meta("a", 1), &[b'x'; 40]).unwrap();
        assert!(matches!(
            s.push(&meta("b", 1), &[b'x'; 40]),
            Err(Error::SpoolFull { .. })
        ));
        std::fs::write(s.path(1), b"not json\n").unwrap();
        assert!(s.front().is_err());
        s.pop_front().unwrap();
        assert!(s.front().unwrap().is_none());
    }
}
