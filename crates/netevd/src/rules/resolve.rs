//! Where the programs an exe condition names are: the filesystem's answer,
//! now, in the terms the kernel matches by (a file's directory and name, or
//! a directory).
//!
//! The kernel matches the calling process's executable by where it really
//! is (exec has resolved every symlink), so a pattern is resolved to real
//! locations here. Symlinks are followed only when root owns them: a user
//! who can plant a link under a directory a rule names must not be able to
//! point an allow at another binary, or a deny at a system daemon.
//!
//! Patterns the kernel can match as directories (`DIR/**`, `DIR/*`) are not
//! expanded. Any other glob is expanded by a walk that follows no symlink
//! (so a loop cannot hang it) and stops at [`MAX_ENTRIES`] entries or
//! [`MAX_TIME`]: netevd must not stall on `/**/bin/*` over a huge tree.

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use netev_rules::compile::{DirId, ExeDir, ExeFile, ExeTargets, FileContent};
use netev_rules::ExeMatch;
use sha2::{Digest, Sha256};

/// The most entries one glob's expansion visits.
pub const MAX_ENTRIES: usize = 100_000;
/// The longest one glob's expansion runs.
pub const MAX_TIME: Duration = Duration::from_secs(2);
/// Symlinks followed in one path before giving up, as the kernel does
/// (ELOOP after 40).
const MAX_HOPS: usize = 40;
/// The longest name a directory entry can have (NAME_MAX).
const NAME_MAX: usize = 255;
/// The largest file whose content is hashed for an `exe_hash` rule: a
/// larger one gets no content (the rule matches nothing) and a warning.
pub const MAX_HASHED: u64 = 1 << 30;
/// The most contents [`ContentCache`] keeps before it starts afresh.
pub const MAX_CACHED: usize = 4096;

/// A pattern resolved: its targets, and whether its expansion was cut short
/// by a bound (the engine refuses to add such a rule; other warnings are
/// only reported).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// What the kernel is to match.
    pub targets: ExeTargets,
    /// The expansion stopped at [`MAX_ENTRIES`] or [`MAX_TIME`]: files beyond
    /// are not covered.
    pub truncated: bool,
}

/// The kernel's dev_t for a userspace st_dev (MAJOR << 20 | MINOR): what
/// the kernel's `sb->s_dev` holds, which is what it matches directories by.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let (major, minor) = (libc::major(st_dev), libc::minor(st_dev));
    (major << 20) | minor
}

/// Resolves `m` with the standard bounds: an exact path to its directory
/// and name, `DIR/**` and `DIR/*` to directories, any other glob by a
/// bounded expansion. `files` and `dirs` come sorted, without duplicates.
pub fn resolve(m: &ExeMatch) -> Resolved {
    resolve_bounded(m, MAX_ENTRIES, MAX_TIME)
}

fn resolve_bounded(m: &ExeMatch, max_entries: usize, max_time: Duration) -> Resolved {
    let text = m.as_str();
    let mut r = if !m.is_glob() {
        exact(text)
    } else if let Some((dir, deep)) = m.directory_form() {
        directory(text, dir, deep)
    } else {
        expand(text, max_entries, max_time)
    };
    r.targets.files.sort();
    r.targets.files.dedup();
    r.targets.dirs.sort();
    r.targets.dirs.dedup();
    r
}

/// `path` with every symlink resolved, like realpath(3), except that only
/// root-owned symlinks are followed: one owned by anyone else is an error
/// naming it. Every component must exist.
pub fn safe_canonical(path: &Path) -> Result<PathBuf, String> {
    canonical(path, false).map_err(|e| e.to_string())
}

/// The canonical form of an exact exe path, for the userspace matcher to
/// agree with the kernel: as [`safe_canonical`], but the final file need
/// not exist yet. `None` if the path cannot be resolved safely (then the
/// rule keeps the path as written).
pub fn exact_canonical(path: &Path) -> Option<PathBuf> {
    canonical(path, true).ok()
}

/// Why a path could not be resolved.
#[derive(Debug)]
enum CanonError {
    /// A component does not exist.
    Missing(PathBuf),
    /// A symlink owned by a user other than root: not followed.
    UserLink { link: PathBuf, uid: u32 },
    /// Anything else (ELOOP, ENOTDIR, I/O).
    Other(String),
}

impl std::fmt::Display for CanonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CanonError::Missing(p) => write!(f, "{} does not exist", p.display()),
            CanonError::UserLink { link, uid } => write!(
                f,
                "{} is a symbolic link owned by uid {uid}, not root: netev does not follow it \
                 (its owner could point it at any program); name the real file instead",
                link.display()
            ),
            CanonError::Other(s) => f.write_str(s),
        }
    }
}

/// Resolves `path` component by component from `/` with lstat (see
/// [`safe_canonical`]). With `missing_last`, the last component (after
/// every link is followed) may be missing: a rule may name a file not
/// created yet.
fn canonical(path: &Path, missing_last: bool) -> Result<PathBuf, CanonError> {
    let mut todo: VecDeque<OsString> = VecDeque::new();
    push_front(&mut todo, path);
    let mut out = PathBuf::from("/");
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        // `.` and `..` apply to what is resolved so far, as realpath does:
        // `out` holds no symlink, so its parent is the real parent.
        if c == "." {
            continue;
        }
        if c == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&c);
        let md = match std::fs::symlink_metadata(&next) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if missing_last && todo.is_empty() {
                    return Ok(next);
                }
                return Err(CanonError::Missing(next));
            }
            Err(e) => return Err(CanonError::Other(format!("{}: {e}", next.display()))),
        };
        if md.file_type().is_symlink() {
            if md.uid() != 0 {
                return Err(CanonError::UserLink {
                    link: next,
                    uid: md.uid(),
                });
            }
            hops += 1;
            if hops > MAX_HOPS {
                return Err(CanonError::Other(format!(
                    "{}: too many levels of symbolic links (ELOOP): more than {MAX_HOPS} \
                     followed",
                    path.display()
                )));
            }
            let target = std::fs::read_link(&next)
                .map_err(|e| CanonError::Other(format!("{}: {e}", next.display())))?;
            if target.is_absolute() {
                out = PathBuf::from("/");
            }
            push_front(&mut todo, &target);
        } else if !md.is_dir() && !todo.is_empty() {
            return Err(CanonError::Other(format!(
                "{}: not a directory (ENOTDIR)",
                next.display()
            )));
        } else {
            out = next;
        }
    }
    Ok(out)
}

/// Puts `path`'s components (the root dropped: resolution starts at `/`
/// or at what is resolved so far) ahead of those still to resolve.
fn push_front(todo: &mut VecDeque<OsString>, path: &Path) {
    for c in path.components().rev() {
        match c {
            Component::Normal(s) => todo.push_front(s.to_os_string()),
            Component::ParentDir => todo.push_front("..".into()),
            Component::CurDir => todo.push_front(".".into()),
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
}

/// The kernel's identity of a directory (stat follows a mount point to the
/// mounted root, which is what the kernel's dentry walk meets).
fn dir_id(path: &Path) -> Result<DirId, String> {
    let md = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !md.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    Ok((kernel_dev(md.dev()), md.ino()))
}

fn file(dir: &Path, id: DirId, name: &OsStr) -> ExeFile {
    ExeFile {
        dir: id,
        dir_path: dir.to_string_lossy().into_owned(),
        name: name.as_bytes().to_vec(),
        content: None,
    }
}

fn warned(w: String) -> Resolved {
    Resolved {
        targets: ExeTargets {
            warnings: vec![w],
            ..ExeTargets::default()
        },
        truncated: false,
    }
}

/// An exact path: its directory and name, whether or not the file exists
/// yet (one created there later is covered). A root-owned symlink is
/// followed to the file it leads to.
fn exact(text: &str) -> Resolved {
    let path = Path::new(text);
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return warned(format!("exe {text} does not name a file"));
    };
    let dir = match canonical(parent, false) {
        Ok(d) => d,
        Err(CanonError::Missing(p)) => {
            return warned(format!(
                "exe {text}: the directory {} does not exist, so the rule matches no program",
                p.display()
            ))
        }
        Err(e) => return warned(format!("exe {text}: {e}; the rule matches no program")),
    };
    let mut warnings = Vec::new();
    let full = dir.join(name);
    let (dir, name) = match std::fs::symlink_metadata(&full) {
        Ok(md) if md.file_type().is_symlink() => match canonical(&full, true) {
            Ok(real) => match (real.parent(), real.file_name()) {
                (Some(d), Some(n)) => (d.to_path_buf(), n.to_os_string()),
                _ => (dir, name.to_os_string()),
            },
            // The link itself stays named: the kernel never sees it as an
            // executable's location, so this covers only a real file put
            // there later, which is what the rule's text says.
            Err(e) => {
                warnings.push(format!(
                    "exe {text}: {e}; the rule covers only a real file at that path"
                ));
                (dir, name.to_os_string())
            }
        },
        _ => (dir, name.to_os_string()),
    };
    if name.len() > NAME_MAX {
        return warned(format!(
            "exe {text}: a file name is at most {NAME_MAX} bytes; the rule matches no program"
        ));
    }
    let id = match dir_id(&dir) {
        Ok(id) => id,
        Err(e) => return warned(format!("exe {text}: {e}; the rule matches no program")),
    };
    Resolved {
        targets: ExeTargets {
            files: vec![file(&dir, id, &name)],
            dirs: vec![],
            warnings,
        },
        truncated: false,
    }
}

/// The SHA-256 of files already read, by (st_dev, inode, ctime in ns): the
/// version of a file the kernel tells from another by its inode and change
/// time, so an install of unchanged binaries reads none of them. Bounded by
/// [`MAX_CACHED`] entries (cleared when full).
#[derive(Debug)]
pub struct ContentCache {
    known: HashMap<(u64, u64, u64), [u8; 32]>,
    /// Files read and hashed (not answered from the cache).
    pub reads: u64,
    /// The largest file hashed ([`MAX_HASHED`]; lowered by tests).
    pub max_size: u64,
}

impl Default for ContentCache {
    fn default() -> ContentCache {
        ContentCache {
            known: HashMap::new(),
            reads: 0,
            max_size: MAX_HASHED,
        }
    }
}

/// A change time as the kernel's rule check compares it: st_ctime in ns
/// since the epoch (u64 arithmetic, as the BPF side does it).
fn ctime_ns(md: &std::fs::Metadata) -> u64 {
    (md.ctime() as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(md.ctime_nsec() as u64)
}

impl ContentCache {
    /// What the regular file `name` in the canonical directory `dir` (with
    /// the kernel's id `dir_id`) holds now. `Ok(None)`: there is no file
    /// there (a rule may name one not created yet). A symlink is never
    /// followed (a root-owned one was resolved before; a user's is not a
    /// program's location), nor anything but a regular file read.
    pub fn content(
        &mut self,
        dir: &Path,
        dir_id: DirId,
        name: &OsStr,
    ) -> Result<Option<FileContent>, String> {
        let path = dir.join(name);
        let shown = path.display();
        let md = match std::fs::symlink_metadata(&path) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{shown}: {e}")),
        };
        if md.file_type().is_symlink() {
            return Err(format!(
                "{shown} is a symbolic link not followed: no content read"
            ));
        }
        if !md.is_file() {
            return Err(format!("{shown} is not a regular file: no content read"));
        }
        // O_NOFOLLOW: not a link swapped in since; O_NONBLOCK: not stalled
        // by a FIFO swapped in since (checked again on the open file)
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
            .map_err(|e| format!("{shown}: {e}"))?;
        let before = f.metadata().map_err(|e| format!("{shown}: {e}"))?;
        if !before.is_file() {
            return Err(format!("{shown} is not a regular file: no content read"));
        }
        // the kernel tells a version by its inode alone on the directory's
        // filesystem: a file from another one (a bind mount swapped in)
        // could share the number
        if kernel_dev(before.dev()) != dir_id.0 {
            return Err(format!(
                "{shown} is not on its directory's filesystem: no content read"
            ));
        }
        let key = (before.dev(), before.ino(), ctime_ns(&before));
        let content = |sha256| FileContent {
            ino: before.ino(),
            ctime_ns: key.2,
            sha256,
        };
        if let Some(sha) = self.known.get(&key) {
            return Ok(Some(content(*sha)));
        }
        if before.len() > self.max_size {
            return Err(format!(
                "{shown} is larger than {} MiB: its content is not hashed",
                self.max_size >> 20
            ));
        }
        self.reads += 1;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = match io::Read::read(&mut f, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("{shown}: {e}")),
            };
            total += n as u64;
            if total > self.max_size {
                return Err(format!(
                    "{shown} grew beyond {} MiB while read: no content",
                    self.max_size >> 20
                ));
            }
            hasher.update(&buf[..n]);
        }
        // written while read: what was hashed is no one version
        let after = f.metadata().map_err(|e| format!("{shown}: {e}"))?;
        if ctime_ns(&after) != key.2 || after.len() != total {
            return Err(format!(
                "{shown} changed while it was read: no content; it is read again at the next \
                 change of the rules"
            ));
        }
        let sha: [u8; 32] = hasher.finalize().into();
        if self.known.len() >= MAX_CACHED {
            self.known.clear();
        }
        self.known.insert(key, sha);
        Ok(Some(content(sha)))
    }

    /// Fills in the content of an exact path's file (see [`Self::content`]):
    /// for the rules that pin it with `exe_hash`. What cannot be read is
    /// added to the warnings; a glob's files are left as they are.
    pub fn fill(&mut self, m: &ExeMatch, r: &mut Resolved) {
        if m.is_glob() {
            return;
        }
        for f in &mut r.targets.files {
            let name = OsStr::from_bytes(&f.name);
            match self.content(Path::new(&f.dir_path), f.dir, name) {
                Ok(Some(c)) => f.content = Some(c),
                Ok(None) => {
                    f.content = None;
                    r.targets.warnings.push(format!(
                        "exe {m}: no file there yet, so a rule pinned to its content (exe_hash) \
                         holds for no binary there until the rules are installed again after one \
                         is"
                    ));
                }
                Err(e) => {
                    f.content = None;
                    r.targets
                        .warnings
                        .push(format!("exe {m}: {e}; a rule pinned to its content (exe_hash) holds for no binary there"));
                }
            }
        }
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A directory pattern: the directory, and for `**` the root of every
/// filesystem mounted below it, since the kernel's walk up an executable's
/// dentries stops at its own filesystem's root.
fn directory(text: &str, dir: &str, deep: bool) -> Resolved {
    let canon = match safe_canonical(Path::new(dir)) {
        Ok(d) => d,
        Err(e) => return warned(format!("exe {text}: {e}; the rule matches no program")),
    };
    let id = match dir_id(&canon) {
        Ok(id) => id,
        Err(e) => return warned(format!("exe {text}: {e}; the rule matches no program")),
    };
    let mut dirs = vec![ExeDir {
        dir: id,
        path: canon.to_string_lossy().into_owned(),
        deep,
    }];
    if deep {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in mounts_below(&mount_points(&mounts), &canon) {
            // A mount point that cannot be stat'ed (gone since, or a stale
            // network mount) has no files anyone can run.
            if let Ok(id) = dir_id(&m) {
                dirs.push(ExeDir {
                    dir: id,
                    path: m.to_string_lossy().into_owned(),
                    deep: true,
                });
            }
        }
    }
    Resolved {
        targets: ExeTargets {
            files: vec![],
            dirs,
            warnings: vec![],
        },
        truncated: false,
    }
}

/// The mount points in a /proc/PID/mountinfo text (its 5th field, with the
/// kernel's octal escapes of space, tab, newline and backslash decoded).
fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split_ascii_whitespace().nth(4))
        .map(|f| PathBuf::from(OsString::from_vec(unescape_octal(f.as_bytes()))))
        .collect()
}

fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let oct = s
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (s[i], oct) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The mount points strictly below `dir`.
fn mounts_below(mounts: &[PathBuf], dir: &Path) -> Vec<PathBuf> {
    mounts
        .iter()
        .filter(|m| m.starts_with(dir) && m.as_path() != dir)
        .cloned()
        .collect()
}

/// `*` stays within one path component, `**` crosses them: as the
/// userspace matcher (netev_rules' ExeMatch) matches.
const GLOB_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Any other glob: a walk from its literal prefix directory, following no
/// symlink, bounded by `max_entries` and `max_time`.
fn expand(text: &str, max_entries: usize, max_time: Duration) -> Resolved {
    let comps: Vec<&str> = text.split('/').filter(|c| !c.is_empty()).collect();
    let lit = comps.iter().take_while(|c| !has_glob(c)).count();
    let rest = &comps[lit..];
    let prefix = format!("/{}", comps[..lit].join("/"));
    let root = match safe_canonical(Path::new(&prefix)) {
        Ok(d) => d,
        Err(e) => return warned(format!("exe {text}: {e}; the rule matches no program")),
    };
    // Entries are named from the canonical prefix, so the pattern is too
    // (a link in the prefix, `..`, doubled slashes).
    let root_text = root.to_string_lossy();
    let sep = if root_text.ends_with('/') { "" } else { "/" };
    let pattern_text = format!(
        "{}{sep}{}",
        glob::Pattern::escape(&root_text),
        rest.join("/")
    );
    let pattern = match glob::Pattern::new(&pattern_text) {
        Ok(p) => p,
        Err(e) => return warned(format!("exe {text}: bad glob: {e}")),
    };
    let deep = rest.iter().any(|c| c.contains("**"));
    let max_depth = if deep { usize::MAX } else { rest.len() };

    let mut r = Resolved::default();
    let mut dirs: HashMap<PathBuf, Option<DirId>> = HashMap::new();
    let mut skipped_links = 0usize;
    let start = Instant::now();
    let walk = walkdir::WalkDir::new(&root)
        .follow_links(false)
        .min_depth(1)
        .max_depth(max_depth);
    // `visited` entries were looked at before this one
    for (visited, entry) in walk.into_iter().enumerate() {
        if visited == max_entries || start.elapsed() > max_time {
            let bound = if visited == max_entries {
                format!("{visited} entries")
            } else {
                format!("{} s ({visited} entries)", max_time.as_secs_f64())
            };
            r.targets.warnings.push(format!(
                "the expansion of {text} stopped after {bound}: files beyond are not covered; \
                 name a directory instead (DIR/** or DIR/*, matched in the kernel without \
                 expansion)"
            ));
            r.truncated = true;
            break;
        }
        // An unreadable directory has nothing anyone runs from it but root,
        // who can read it: skip it.
        let Ok(entry) = entry else { continue };
        if !pattern.matches_path_with(entry.path(), GLOB_OPTIONS) {
            continue;
        }
        let ft = entry.file_type();
        let real = if ft.is_file() {
            entry.path().to_path_buf()
        } else if ft.is_symlink() {
            let root_link = entry.metadata().is_ok_and(|md| md.uid() == 0);
            match root_link.then(|| canonical(entry.path(), false)) {
                Some(Ok(p)) if std::fs::metadata(&p).is_ok_and(|md| md.is_file()) => p,
                _ => {
                    skipped_links += 1;
                    continue;
                }
            }
        } else {
            continue;
        };
        let (Some(dir), Some(name)) = (real.parent(), real.file_name()) else {
            continue;
        };
        let id = *dirs
            .entry(dir.to_path_buf())
            .or_insert_with(|| dir_id(dir).ok());
        if let Some(id) = id {
            r.targets.files.push(file(dir, id, name));
        }
    }
    if skipped_links > 0 {
        r.targets.warnings.push(format!(
            "exe {text}: {skipped_links} symbolic link(s) it matches were not followed (owned \
             by a user other than root, or not leading to a regular file): name the real files"
        ));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{lchown, symlink};

    fn em(s: &str) -> ExeMatch {
        s.parse().unwrap()
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    /// A tempdir by its canonical path (/tmp may itself be a link).
    fn tmp() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let p = std::fs::canonicalize(t.path()).unwrap();
        (t, p)
    }

    fn id(p: &Path) -> DirId {
        dir_id(p).unwrap()
    }

    fn names(r: &Resolved) -> Vec<String> {
        r.targets
            .files
            .iter()
            .map(|f| format!("{}/{}", f.dir_path, String::from_utf8_lossy(&f.name)))
            .collect()
    }

    /// Makes a symlink owned by someone else than root (as root: lchown
    /// to nobody; otherwise it is already the user's).
    fn user_link(target: &Path, link: &Path) {
        symlink(target, link).unwrap();
        if is_root() {
            lchown(link, Some(65534), None).unwrap();
        }
    }

    fn touch(p: &Path) {
        std::fs::write(p, b"").unwrap();
    }

    #[test]
    fn kernel_dev_is_major_shifted_20_or_minor() {
        assert_eq!(kernel_dev(libc::makedev(8, 1)), (8 << 20) | 1);
        assert_eq!(kernel_dev(libc::makedev(0, 0x2f)), 0x2f);
        // minor numbers above 255 sit in the high bits of st_dev
        assert_eq!(
            kernel_dev(libc::makedev(259, 0x12345)),
            (259 << 20) | 0x12345
        );
    }

    #[test]
    fn exact_existing_file() {
        let (_t, d) = tmp();
        touch(&d.join("curl"));
        let r = resolve(&em(&format!("{}/curl", d.display())));
        assert_eq!(
            r.targets.files,
            vec![ExeFile {
                dir: id(&d),
                dir_path: d.to_string_lossy().into(),
                name: b"curl".to_vec(),
                content: None,
            }]
        );
        assert!(r.targets.dirs.is_empty() && r.targets.warnings.is_empty() && !r.truncated);
    }

    #[test]
    fn exact_file_not_yet_created_is_still_named() {
        let (_t, d) = tmp();
        let r = resolve(&em(&format!("{}/later", d.display())));
        assert_eq!(names(&r), vec![format!("{}/later", d.display())]);
        assert_eq!(r.targets.files[0].dir, id(&d));
        assert!(r.targets.warnings.is_empty());
    }

    #[test]
    fn exact_with_missing_directory_names_nothing_and_warns() {
        let (_t, d) = tmp();
        let r = resolve(&em(&format!("{}/nodir/x", d.display())));
        assert!(r.targets.files.is_empty());
        assert_eq!(r.targets.warnings.len(), 1);
        assert!(
            r.targets.warnings[0].contains("does not exist"),
            "{:?}",
            r.targets.warnings
        );
    }

    #[test]
    fn exact_dot_dot_resolves_like_realpath() {
        let (_t, d) = tmp();
        std::fs::create_dir(d.join("a")).unwrap();
        touch(&d.join("x"));
        let r = resolve(&em(&format!("{}/a/../x", d.display())));
        assert_eq!(names(&r), vec![format!("{}/x", d.display())]);
    }

    #[test]
    fn root_owned_symlink_is_followed() {
        if !is_root() {
            eprintln!("skipped: only root can own a link by root");
            return;
        }
        let (_t, d) = tmp();
        std::fs::create_dir(d.join("usr")).unwrap();
        touch(&d.join("usr/python3.11"));
        // a link to a link, one relative through `..`: /bin -> usr/bin style
        symlink("python3.11", d.join("usr/python3")).unwrap();
        symlink("usr", d.join("bin")).unwrap();
        let r = resolve(&em(&format!("{}/bin/python3", d.display())));
        assert_eq!(names(&r), vec![format!("{}/usr/python3.11", d.display())]);
        assert_eq!(r.targets.files[0].dir, id(&d.join("usr")));
        assert!(r.targets.warnings.is_empty());
        assert_eq!(
            exact_canonical(&d.join("bin/new")),
            Some(d.join("usr/new")),
            "a file not created yet, under a root link"
        );
    }

    #[test]
    fn user_owned_symlink_is_not_followed() {
        let (_t, d) = tmp();
        std::fs::create_dir(d.join("real")).unwrap();
        touch(&d.join("real/prog"));
        std::fs::create_dir(d.join("home")).unwrap();
        user_link(&d.join("real/prog"), &d.join("home/prog"));
        let text = format!("{}/home/prog", d.display());
        let r = resolve(&em(&text));
        // the literal (dir, name): the link, never an executable's real
        // location, so only a real file put there later is covered
        assert_eq!(names(&r), vec![text.clone()]);
        assert_eq!(r.targets.files[0].dir, id(&d.join("home")));
        let w = &r.targets.warnings;
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("owned by uid") && w[0].contains("name the real file"),
            "{w:?}"
        );
        assert!(!r.truncated);
        let e = safe_canonical(Path::new(&text)).unwrap_err();
        assert!(e.contains(&text) && e.contains("name the real file"), "{e}");
    }

    #[test]
    fn user_owned_symlink_as_a_directory_is_not_followed() {
        let (_t, d) = tmp();
        std::fs::create_dir(d.join("real")).unwrap();
        touch(&d.join("real/prog"));
        user_link(&d.join("real"), &d.join("via"));
        let r = resolve(&em(&format!("{}/via/prog", d.display())));
        assert!(r.targets.files.is_empty(), "{:?}", r.targets.files);
        assert!(r.targets.warnings[0].contains("owned by uid"));
        // nor in a glob's literal prefix
        let r = resolve(&em(&format!("{}/via/pr?g", d.display())));
        assert!(r.targets.files.is_empty());
        assert!(r.targets.warnings[0].contains("owned by uid"));
        // nor a directory rule's directory
        let r = resolve(&em(&format!("{}/via/**", d.display())));
        assert!(r.targets.dirs.is_empty());
        assert!(r.targets.warnings[0].contains("owned by uid"));
        assert!(safe_canonical(&d.join("via/prog")).is_err());
        assert_eq!(exact_canonical(&d.join("via/prog")), None);
    }

    #[test]
    fn symlink_loops_are_bounded() {
        if !is_root() {
            eprintln!("skipped: only root can own a link by root");
            return;
        }
        let (_t, d) = tmp();
        symlink("b", d.join("a")).unwrap();
        symlink("a", d.join("b")).unwrap();
        let e = safe_canonical(&d.join("a/x")).unwrap_err();
        assert!(e.contains("ELOOP"), "{e}");
    }

    #[test]
    fn glob_expansion_follows_root_links_to_files_and_skips_others() {
        let (_t, d) = tmp();
        std::fs::create_dir_all(d.join("opt/a/bin")).unwrap();
        std::fs::create_dir_all(d.join("opt/b/c/bin")).unwrap();
        touch(&d.join("opt/a/bin/x"));
        touch(&d.join("opt/b/c/bin/y"));
        touch(&d.join("opt/b/c/bin/y")); // twice: deduplicated anyway
        std::fs::create_dir(d.join("opt/a/bin/sub")).unwrap(); // a directory: not a file
        user_link(&d.join("opt/a/bin/x"), &d.join("opt/b/c/bin/mine"));
        let root_link = is_root();
        if root_link {
            symlink("../../../a/bin/x", d.join("opt/b/c/bin/z")).unwrap();
        }
        let r = resolve(&em(&format!("{}/opt/**/bin/*", d.display())));
        let mut want = vec![
            format!("{}/opt/a/bin/x", d.display()),
            format!("{}/opt/b/c/bin/y", d.display()),
        ];
        want.sort();
        assert_eq!(names(&r), want, "the root link's target is deduplicated");
        assert_eq!(r.targets.warnings.len(), 1, "{:?}", r.targets.warnings);
        assert!(
            r.targets.warnings[0].contains(": 1 symbolic link"),
            "{:?}",
            r.targets.warnings
        );
        assert!(!r.truncated);
        // `*` stays in one component: max depth from the prefix
        let r = resolve(&em(&format!("{}/opt/*/bin/?", d.display())));
        assert_eq!(names(&r), vec![format!("{}/opt/a/bin/x", d.display())]);
    }

    #[test]
    fn glob_prefix_through_a_root_link_is_matched_canonically() {
        if !is_root() {
            eprintln!("skipped: only root can own a link by root");
            return;
        }
        let (_t, d) = tmp();
        std::fs::create_dir_all(d.join("usr/bin")).unwrap();
        touch(&d.join("usr/bin/python3.11"));
        touch(&d.join("usr/bin/perl"));
        symlink("usr/bin", d.join("bin")).unwrap();
        let r = resolve(&em(&format!("{}/bin/python3*", d.display())));
        assert_eq!(
            names(&r),
            vec![format!("{}/usr/bin/python3.11", d.display())]
        );
    }

    #[test]
    fn a_symlink_loop_under_a_deep_glob_finishes() {
        let (_t, d) = tmp();
        std::fs::create_dir_all(d.join("a/b/bin")).unwrap();
        touch(&d.join("a/b/bin/x"));
        // loops both ways: to an ancestor and to itself
        symlink(&d, d.join("a/b/up")).unwrap();
        symlink("self", d.join("a/self")).unwrap();
        if is_root() {
            lchown(d.join("a/self"), Some(0), None).unwrap();
        }
        let start = Instant::now();
        let r = resolve(&em(&format!("{}/**/bin/*", d.display())));
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(names(&r), vec![format!("{}/a/b/bin/x", d.display())]);
        assert!(!r.truncated);
        let r = resolve(&em(&format!("{}/a/**/s*", d.display())));
        assert!(r.targets.files.is_empty());
        assert!(r.targets.warnings[0].contains("not followed"));
    }

    #[test]
    fn a_huge_tree_stops_the_expansion_at_the_bound() {
        // in memory where there is a tmpfs: 100_000 files on a journalled
        // disk take half a minute to create
        let t = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let d = std::fs::canonicalize(t.path()).unwrap();
        // 100 directories of 1001 files: 100_200 entries
        for i in 0..100 {
            let sub = d.join(format!("d{i}"));
            std::fs::create_dir(&sub).unwrap();
            for j in 0..1001 {
                std::fs::File::create(sub.join(j.to_string())).unwrap();
            }
        }
        let r = resolve(&em(&format!("{}/**/[0-9]*", d.display())));
        assert!(r.truncated);
        let w = &r.targets.warnings;
        assert_eq!(w.len(), 1, "{w:?}");
        // the entry bound, unless this machine took longer than the time bound
        assert!(
            w[0].contains("stopped after 100000 entries") || w[0].contains("stopped after 2 s"),
            "{w:?}"
        );
        assert!(
            w[0].contains("not covered") && w[0].contains("DIR/**"),
            "{w:?}"
        );
        assert!(r.targets.files.len() < 100_100);
        // the time bound, on the same tree
        let r = resolve_bounded(
            &em(&format!("{}/**/[0-9]*", d.display())),
            MAX_ENTRIES,
            Duration::ZERO,
        );
        assert!(r.truncated);
        assert!(
            r.targets.warnings[0].contains("stopped after 0 s"),
            "{:?}",
            r.targets.warnings
        );
        // a tree within the bound is expanded in full
        let r = resolve(&em(&format!("{}/d7/[0-9]*", d.display())));
        assert!(!r.truncated && r.targets.warnings.is_empty());
        assert_eq!(r.targets.files.len(), 1001);
    }

    #[test]
    fn directory_patterns_are_not_expanded() {
        let (_t, d) = tmp();
        std::fs::create_dir(d.join("sub")).unwrap();
        touch(&d.join("sub/x"));
        let dir = |deep| ExeDir {
            dir: id(&d),
            path: d.to_string_lossy().into(),
            deep,
        };
        for (p, deep) in [("/**", true), ("/**/*", true), ("/*", false)] {
            let r = resolve(&em(&format!("{}{p}", d.display())));
            assert_eq!(r.targets.dirs, vec![dir(deep)], "{p}");
            assert!(r.targets.files.is_empty() && r.targets.warnings.is_empty());
        }
        assert_eq!(em("/**").directory_form(), Some(("/", true)));
        assert_eq!(em("/*").directory_form(), Some(("/", false)));
        assert_eq!(em("/a/*/**").directory_form(), None);
        assert_eq!(em("/a/b*").directory_form(), None);
        let r = resolve(&em(&format!("{}/none/**", d.display())));
        assert!(r.targets.dirs.is_empty());
        assert!(r.targets.warnings[0].contains("does not exist"));
    }

    #[test]
    fn mountinfo_mount_points_are_decoded() {
        let info = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid shared:2 - proc proc rw
40 22 0:35 / /home/u/my\\040disk rw - tmpfs tmpfs rw
41 22 0:36 / /srv/a\\134b\\011c rw - tmpfs tmpfs rw
42 22 0:37 / /srv/bad\\9 rw - tmpfs tmpfs rw
";
        let m = mount_points(info);
        assert_eq!(
            m,
            [
                "/",
                "/proc",
                "/home/u/my disk",
                "/srv/a\\b\tc",
                "/srv/bad\\9"
            ]
            .map(PathBuf::from)
            .to_vec()
        );
        assert_eq!(
            mounts_below(&m, Path::new("/home")),
            vec![PathBuf::from("/home/u/my disk")]
        );
        // strictly below, by whole components
        assert_eq!(mounts_below(&m, Path::new("/proc")), Vec::<PathBuf>::new());
        assert_eq!(mounts_below(&m, Path::new("/pro")), Vec::<PathBuf>::new());
        assert_eq!(mounts_below(&m, Path::new("/")).len(), 4);
    }

    fn cstr(p: &Path) -> std::ffi::CString {
        std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
    }

    fn mount_tmpfs(at: &Path) -> io::Result<()> {
        let (target, fs) = (cstr(at), cstr(Path::new("tmpfs")));
        // SAFETY: NUL-terminated strings that outlive the call; no data.
        let rc = unsafe {
            libc::mount(
                fs.as_ptr(),
                target.as_ptr(),
                fs.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Unmounts when dropped, so the test cleans up however it ends
    /// (declared after the tempdir: dropped, so unmounted, before it).
    struct Mounted(PathBuf);
    impl Drop for Mounted {
        fn drop(&mut self) {
            let target = cstr(&self.0);
            // SAFETY: a NUL-terminated string that outlives the call.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }

    #[test]
    fn a_deep_directory_covers_the_mounts_below_it() {
        if !is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return;
        }
        let (_t, d) = tmp();
        let mnt = d.join("a/mnt point");
        std::fs::create_dir_all(&mnt).unwrap();
        let under = id(&mnt);
        if let Err(e) = mount_tmpfs(&mnt) {
            eprintln!("skipped: cannot mount a tmpfs here: {e}");
            return;
        }
        let _m = Mounted(mnt.clone());
        let root = id(&mnt);
        assert_ne!(root, under, "stat gives the mounted root");
        let r = resolve(&em(&format!("{}/**", d.display())));
        let mut want = vec![
            ExeDir {
                dir: id(&d),
                path: d.to_string_lossy().into(),
                deep: true,
            },
            ExeDir {
                dir: root,
                path: mnt.to_string_lossy().into(),
                deep: true,
            },
        ];
        want.sort();
        assert_eq!(r.targets.dirs, want);
        // a shallow one does not: the mount's files are not directly in it
        let r = resolve(&em(&format!("{}/*", d.display())));
        assert_eq!(r.targets.dirs.len(), 1);
    }

    /// SHA-256 of "test".
    const TEST_SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn hex(b: &[u8; 32]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Rewrites `p` in place with `text` until its change time moves (a
    /// coarse clock may give a rewrite within one tick the same ctime).
    fn rewrite(p: &Path, text: &[u8]) {
        let before = std::fs::metadata(p).unwrap();
        for _ in 0..200 {
            std::fs::write(p, text).unwrap();
            if ctime_ns(&std::fs::metadata(p).unwrap()) != ctime_ns(&before) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("the change time of {} never moved", p.display());
    }

    #[test]
    fn an_exact_file_gets_its_content_once_per_version() {
        let (_t, d) = tmp();
        let p = d.join("prog");
        std::fs::write(&p, b"test").unwrap();
        let m = em(&p.to_string_lossy());
        let mut cache = ContentCache::default();
        let mut r = resolve(&m);
        assert_eq!(r.targets.files[0].content, None, "not read unless asked");
        cache.fill(&m, &mut r);
        let md = std::fs::metadata(&p).unwrap();
        let c = r.targets.files[0].content.expect("content");
        assert_eq!(hex(&c.sha256), TEST_SHA);
        assert_eq!(c.ino, md.ino());
        assert_eq!(
            c.ctime_ns,
            md.ctime() as u64 * 1_000_000_000 + md.ctime_nsec() as u64
        );
        assert!(r.targets.warnings.is_empty(), "{:?}", r.targets.warnings);
        assert_eq!(cache.reads, 1);
        // the same version again: from the cache
        let mut again = resolve(&m);
        cache.fill(&m, &mut again);
        assert_eq!(again.targets.files[0].content, Some(c));
        assert_eq!(cache.reads, 1, "not read again");
        // rewritten in place: another change time, another hash
        rewrite(&p, b"other");
        let mut changed = resolve(&m);
        cache.fill(&m, &mut changed);
        let c2 = changed.targets.files[0].content.unwrap();
        assert_eq!(cache.reads, 2);
        assert_eq!(c2.ino, c.ino);
        assert_ne!(c2.ctime_ns, c.ctime_ns);
        assert_ne!(c2.sha256, c.sha256);
        // replaced by mv: another inode
        let tmp_new = d.join("prog.new");
        std::fs::write(&tmp_new, b"test").unwrap();
        std::fs::rename(&tmp_new, &p).unwrap();
        let mut moved = resolve(&m);
        cache.fill(&m, &mut moved);
        let c3 = moved.targets.files[0].content.unwrap();
        assert_ne!(c3.ino, c.ino);
        assert_eq!(hex(&c3.sha256), TEST_SHA);
        // a glob's files are not read
        let g = em(&format!("{}/pr?g", d.display()));
        let mut gr = resolve(&g);
        cache.fill(&g, &mut gr);
        assert_eq!(gr.targets.files[0].content, None);
        assert_eq!(cache.reads, 3);
    }

    #[test]
    fn the_cache_is_bounded() {
        let (_t, d) = tmp();
        let mut cache = ContentCache::default();
        let id = id(&d);
        for i in 0..=MAX_CACHED {
            let name = format!("f{i}");
            std::fs::write(d.join(&name), i.to_string()).unwrap();
            cache.content(&d, id, OsStr::new(&name)).unwrap().unwrap();
        }
        assert!(cache.known.len() <= MAX_CACHED);
        assert_eq!(cache.known.len(), 1, "cleared when full, then the last one");
    }

    #[test]
    fn what_is_not_a_regular_file_within_bounds_gets_no_content() {
        let (_t, d) = tmp();
        let mut cache = ContentCache {
            max_size: 3,
            ..ContentCache::default()
        };
        std::fs::write(d.join("big"), b"four").unwrap();
        std::fs::write(d.join("real"), b"x").unwrap();
        std::fs::create_dir(d.join("dir")).unwrap();
        user_link(&d.join("real"), &d.join("link"));
        let fill = |cache: &mut ContentCache, name: &str| {
            let m = em(&format!("{}/{name}", d.display()));
            let mut r = resolve(&m);
            cache.fill(&m, &mut r);
            (
                r.targets.files.first().and_then(|f| f.content),
                r.targets.warnings,
            )
        };
        let (c, w) = fill(&mut cache, "big");
        assert_eq!(c, None);
        assert!(w.iter().any(|w| w.contains("larger than")), "{w:?}");
        let (c, w) = fill(&mut cache, "link");
        assert_eq!(c, None);
        assert!(
            w.iter().any(|w| w.contains("symbolic link not followed")),
            "{w:?}"
        );
        let (c, w) = fill(&mut cache, "dir");
        assert_eq!(c, None);
        assert!(w.iter().any(|w| w.contains("not a regular file")), "{w:?}");
        let (c, w) = fill(&mut cache, "later");
        assert_eq!(c, None);
        assert!(w.iter().any(|w| w.contains("no file there yet")), "{w:?}");
        let (c, w) = fill(&mut cache, "real");
        assert!(c.is_some() && w.is_empty(), "{w:?}");
        assert_eq!(cache.reads, 1, "only the file within bounds was read");
    }
}
