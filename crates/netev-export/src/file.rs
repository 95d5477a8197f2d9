//! `file:PATH`: newline JSON appended to a file, one event (or gap record)
//! per line, rotated by size.
//!
//! - The file is opened `O_APPEND | O_NOFOLLOW`, created mode 0600; its
//!   directory is created (mode 0700) if missing and refused if others may
//!   write to it without the sticky bit, or if it is not a directory.
//! - Rotation: when the next batch would take the file past `rotate`,
//!   `PATH.keep` is dropped, `PATH.N` becomes `PATH.N+1`, `PATH` becomes
//!   `PATH.1` and a new `PATH` is started. A batch goes whole into one
//!   file: no line is split across files (a batch larger than `rotate`
//!   gets a file to itself). A file renamed away by someone else
//!   (logrotate) is noticed at the next batch and `PATH` made anew.
//! - Each batch is one `write`, then `fdatasync`: a batch is delivered
//!   once it is on disk. A write that fails (disk full) is cut back to the
//!   file's length before it (no half line stays) and returns the error:
//!   the batch is spooled and retried whole.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::format::{event_json, gap_json};
use crate::{
    io_err, Batch, BatchMeta, Body, Destination, Error, ExportTarget, Format, Output, Result,
};

pub(crate) struct JsonFile {
    path: PathBuf,
    format: Format,
    rotate: u64,
    keep: u32,
    open: Option<(File, u64)>,
}

impl JsonFile {
    pub(crate) fn new(target: &ExportTarget) -> Result<JsonFile> {
        let Destination::File { path } = &target.destination else {
            unreachable!("a file target")
        };
        let path = if path.is_absolute() {
            path.clone()
        } else {
            std::env::current_dir()
                .map_err(io_err("the working directory (for a relative file: path)"))?
                .join(path)
        };
        let f = JsonFile {
            path,
            format: target.format,
            rotate: target.options.rotate,
            keep: target.options.keep,
            open: None,
        };
        // a directory that can never work is a configuration error now;
        // one that is merely missing is made at the first batch
        if let Some(dir) = f.path.parent() {
            if let Ok(m) = std::fs::metadata(dir) {
                check_dir(dir, &m)?;
            }
        }
        Ok(f)
    }

    fn ensure_dir(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        match std::fs::metadata(dir) {
            Ok(m) => check_dir(dir, &m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(format!("creating {}", dir.display()))),
            Err(e) => Err(io_err(format!("{}", dir.display()))(e)),
        }
    }

    fn open(&mut self) -> Result<(File, u64)> {
        self.ensure_dir()?;
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.path)
            .map_err(io_err(format!(
                "opening {} (a symlink is refused; give the real path)",
                self.path.display()
            )))?;
        let m = file
            .metadata()
            .map_err(io_err(format!("{}", self.path.display())))?;
        if !m.file_type().is_file() {
            return Err(Error::Config(format!(
                "{}: not a regular file; give a file path",
                self.path.display()
            )));
        }
        let mut size = m.len();
        if size > 0 && !ends_with_newline(&file, size) {
            // a line cut short by a crash: end it, so ours start clean
            file.write_all(b"\n")
                .map_err(io_err(format!("writing {}", self.path.display())))?;
            size += 1;
        }
        Ok((file, size))
    }

    /// The open file, if `PATH` is still it (not rotated away by another program).
    fn current(&mut self) -> Option<&mut (File, u64)> {
        let still = match (&self.open, std::fs::symlink_metadata(&self.path)) {
            (Some((f, _)), Ok(p)) => f
                .metadata()
                .is_ok_and(|m| m.ino() == p.ino() && m.dev() == p.dev()),
            _ => false,
        };
        if !still {
            self.open = None;
        }
        self.open.as_mut()
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate_files(&mut self) -> Result<()> {
        self.open = None;
        let ctx = |p: &Path| format!("rotating {}", p.display());
        if self.keep == 0 {
            return std::fs::remove_file(&self.path).or_else(ignore_missing(ctx(&self.path)));
        }
        let oldest = self.rotated(self.keep);
        std::fs::remove_file(&oldest).or_else(ignore_missing(ctx(&oldest)))?;
        for n in (1..self.keep).rev() {
            let from = self.rotated(n);
            std::fs::rename(&from, self.rotated(n + 1)).or_else(ignore_missing(ctx(&from)))?;
        }
        std::fs::rename(&self.path, self.rotated(1)).or_else(ignore_missing(ctx(&self.path)))?;
        if let Some(dir) = self.path.parent() {
            // the renames survive a crash
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

fn ignore_missing(context: String) -> impl FnOnce(std::io::Error) -> Result<()> {
    move |e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Ok(())
        } else {
            Err(Error::Io { context, source: e })
        }
    }
}

fn ends_with_newline(f: &File, size: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    f.read_at(&mut b, size - 1)
        .is_ok_and(|n| n == 1 && b[0] == b'\n')
}

fn check_dir(dir: &Path, m: &std::fs::Metadata) -> Result<()> {
    if !m.is_dir() {
        return Err(Error::Config(format!(
            "{}: not a directory; file: needs a path in a directory",
            dir.display()
        )));
    }
    let mode = m.permissions().mode();
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(Error::Config(format!(
            "{}: every user may write to this directory (mode {:o}) and replace the file; choose a directory only its owner writes",
            dir.display(),
            mode & 0o7777
        )));
    }
    Ok(())
}

impl Output for JsonFile {
    fn encode(&mut self, batch: &Batch) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 * batch.meta.events.max(1) as usize);
        match &batch.body {
            Body::Events(evs) => {
                for ev in evs {
                    event_json(self.format, &batch.meta.host, ev, &mut out);
                    out.push(b'\n');
                }
            }
            Body::Gap(g) => {
                gap_json(self.format, g, &mut out);
                out.push(b'\n');
            }
        }
        out
    }

    fn deliver(&mut self, _meta: &BatchMeta, payload: &[u8]) -> Result<()> {
        if self.current().is_none() {
            self.open = Some(self.open()?);
        }
        let size = self.open.as_ref().map_or(0, |(_, s)| *s);
        if size > 0 && size + payload.len() as u64 > self.rotate {
            self.rotate_files()?;
            self.open = Some(self.open()?);
        }
        let path = self.path.display().to_string();
        let (file, size) = self.open.as_mut().expect("opened above");
        let written = file.write_all(payload).and_then(|()| file.sync_data());
        match written {
            Ok(()) => {
                *size += payload.len() as u64;
                Ok(())
            }
            Err(e) => {
                // no half batch stays: the retry writes it whole
                if file.set_len(*size).is_err() {
                    self.open = None;
                }
                Err(io_err(format!(
                    "writing {path} (the batch is spooled until it can be written)"
                ))(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_event::{Event, Op};

    fn target(path: &Path, rotate: u64, keep: u32) -> ExportTarget {
        let mut t: ExportTarget = format!("file:{}", path.display()).parse().unwrap();
        t.options.rotate = rotate;
        t.options.keep = keep;
        t
    }

    fn batch(seq: u64, n: usize) -> Batch {
        let events = (0..n)
            .map(|i| {
                let mut ev = Event::new(Op::Connect);
                ev.pid = (seq * 1000 + i as u64) as u32;
                ev.comm = "a\nb\"]".into();
                ev
            })
            .collect();
        Batch {
            meta: BatchMeta {
                id: format!("h:i:{seq}"),
                host: "h".into(),
                events: n as u64,
                gap: None,
            },
            body: Body::Events(events),
        }
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotation_keeps_keep_files_and_every_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.json");
        let mut f = JsonFile::new(&target(&path, 4096, 3)).unwrap();
        let mut pids = Vec::new();
        for seq in 0..40 {
            let b = batch(seq, 1 + (seq as usize % 7));
            if let Body::Events(evs) = &b.body {
                pids.extend(evs.iter().map(|e| e.pid));
            }
            let bytes = f.encode(&b);
            f.deliver(&b.meta, &bytes).unwrap();
        }
        let all = files(path.parent().unwrap());
        let names: Vec<_> = all
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "events.json",
                "events.json.1",
                "events.json.2",
                "events.json.3"
            ]
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // oldest first: PATH.3, PATH.2, PATH.1, PATH
        let mut seen = Vec::new();
        for p in all[1..].iter().rev().chain(&all[..1]) {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.ends_with('\n'), "{p:?} ends mid-line");
            assert!(text.len() as u64 <= 4096, "{p:?} past rotate");
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["comm"], "a\nb\"]");
                seen.push(v["pid"].as_u64().unwrap() as u32);
            }
        }
        // the oldest files were dropped: what is kept is the newest events, each once, in order
        assert_eq!(seen, pids[pids.len() - seen.len()..]);
        assert!(seen.len() > 10);
    }

    #[test]
    fn without_rotation_every_event_is_there_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.json");
        let mut f = JsonFile::new(&target(&path, 1 << 30, 5)).unwrap();
        for seq in 0..10 {
            let b = batch(seq, 10);
            let bytes = f.encode(&b);
            f.deliver(&b.meta, &bytes).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let pids: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["pid"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        let want: Vec<u64> = (0..10)
            .flat_map(|s| (0..10).map(move |i| s * 1000 + i))
            .collect();
        assert_eq!(pids, want);
    }

    #[test]
    fn a_batch_larger_than_rotate_is_not_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.json");
        let mut f = JsonFile::new(&target(&path, 4096, 2)).unwrap();
        for seq in 0..3 {
            let b = batch(seq, 40);
            let bytes = f.encode(&b);
            assert!(bytes.len() > 4096);
            f.deliver(&b.meta, &bytes).unwrap();
        }
        for p in files(dir.path()) {
            assert_eq!(
                std::fs::read_to_string(&p).unwrap().lines().count(),
                40,
                "{p:?}"
            );
        }
    }

    #[test]
    fn a_symlink_and_an_open_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, "").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut f = JsonFile::new(&target(&link, 4096, 2)).unwrap();
        let b = batch(0, 1);
        let bytes = f.encode(&b);
        let e = f.deliver(&b.meta, &bytes).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");

        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = JsonFile::new(&target(&open.join("e.json"), 4096, 2))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("every user may write"), "{e}");
    }

    #[test]
    fn a_file_renamed_away_is_made_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.json");
        let mut f = JsonFile::new(&target(&path, 1 << 20, 2)).unwrap();
        let b = batch(0, 2);
        let bytes = f.encode(&b);
        f.deliver(&b.meta, &bytes).unwrap();
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        f.deliver(&b.meta, &bytes).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }
}
