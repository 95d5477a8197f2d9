//! How netevd makes its files: private unless meant to be read by others,
//! and never through a link someone planted.
//!
//! netevd runs as root and its files hold every user's command lines and
//! destinations (the event store) and the firewall's rules. Outside
//! systemd nothing else sets a umask for it, so it sets its own at start;
//! the run directory and the status file, which `netev status` reads as any
//! user, are made readable on purpose. Every directory netevd writes into
//! is checked to be a real directory that only root can write, and files in
//! the run directory are opened with `O_NOFOLLOW`, so that a symlink cannot
//! turn a status write into a write anywhere.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Files and directories netevd creates get no access for group and others
/// unless it grants it explicitly.
pub fn private_umask() {
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0o077) };
}

/// Makes `dir` (and its parents) if missing, and checks that it is a real
/// directory owned by netevd's user that nobody else can write; then gives
/// it `mode`. A link, another owner or a directory others can write into
/// is refused: netevd would otherwise write where someone else chose.
pub fn own_dir(dir: &Path, mode: u32, what: &str) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the {what} {}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("reading the {what} {}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() {
        bail!(
            "the {what} {} is a symbolic link: netevd writes only into a real directory (remove the link, or give another directory)",
            dir.display()
        );
    }
    if !meta.is_dir() {
        bail!("the {what} {} is not a directory", dir.display());
    }
    if meta.uid() != me {
        bail!(
            "the {what} {} belongs to uid {}, not to netevd's uid {me}: `chown {me} {}` it, or give another directory",
            dir.display(),
            meta.uid(),
            dir.display()
        );
    }
    if meta.mode() & 0o1000 != 0 {
        bail!(
            "the {what} {} is a shared (sticky) directory such as /tmp: give netevd a directory of its own",
            dir.display()
        );
    }
    // a directory others could write into, or one made before: netevd's mode
    if meta.mode() & 0o7777 != mode {
        std::fs::set_permissions(dir, Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of the {what} {}", dir.display()))?;
    }
    Ok(())
}

/// Opens (creating if missing, mode 0600) a file in a directory checked
/// by [`own_dir`], never following a link at its name.
pub fn open_private(path: &Path) -> Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| {
            format!(
                "opening {} (a symbolic link there is refused)",
                path.display()
            )
        })
}

/// Replaces `dir/name` with `bytes` at once (a temporary file, then a
/// rename), the file readable by everyone (mode 0644): for what netevd
/// serves to every user anyway (its status). The temporary file is created
/// anew, never through a link.
pub fn write_public(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    // a leftover from a crash, or something planted: removing a link
    // removes the link, not its target
    let _ = std::fs::remove_file(&tmp);
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    // the umask took group and other read away: give them back
    f.set_permissions(Permissions::from_mode(0o644))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    let path = dir.join(name);
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Takes group and other access away from an existing file of netevd's
/// (a database an older netevd, or another umask, left readable); a
/// missing file is fine.
pub fn make_private(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() && m.mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, Permissions::from_mode(m.mode() & 0o700))
                .with_context(|| format!("restricting {} to its owner", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linked_or_shared_directory_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        own_dir(&real, 0o755, "run directory").unwrap();
        assert_eq!(std::fs::metadata(&real).unwrap().mode() & 0o7777, 0o755);
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = own_dir(&link, 0o755, "run directory").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let sticky = t.path().join("tmp");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, Permissions::from_mode(0o1777)).unwrap();
        let e = own_dir(&sticky, 0o700, "state directory").unwrap_err();
        assert!(e.to_string().contains("sticky"), "{e}");
    }

    #[test]
    fn status_writes_do_not_follow_a_planted_link() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, t.path().join(".status.json.tmp")).unwrap();
        write_public(t.path(), "status.json", b"{}").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let m = std::fs::metadata(t.path().join("status.json")).unwrap();
        assert_eq!(m.mode() & 0o777, 0o644);
        std::os::unix::fs::symlink(&victim, t.path().join("netevd.lock")).unwrap();
        assert!(open_private(&t.path().join("netevd.lock")).is_err());
    }

    #[test]
    fn a_readable_database_is_made_private() {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join("netev.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
        make_private(&db).unwrap();
        assert_eq!(std::fs::metadata(&db).unwrap().mode() & 0o777, 0o600);
        make_private(&t.path().join("missing")).unwrap();
    }
}
