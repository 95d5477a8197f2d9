//! Users and groups, from the system's user database (NSS: /etc/passwd,
//! LDAP, SSSD…): the same source dbus-daemon uses for `<policy group=…>`.
//!
//! Lookups go through nix's `User`/`Group`, which call `getpw*_r` and
//! `getgr*_r` and, when the entry does not fit their buffer (`ERANGE`, as a
//! large LDAP or SSSD entry does), double it and ask again, up to 1 MiB
//! (nix 0.30.1, `unistd.rs`: `from_anything` calls
//! `reserve_double_buffer_size` on `ERANGE`). A fixed buffer would read such
//! a user as "no such user"; the test
//! `an_entry_larger_than_the_first_buffer_is_found` shows it is not.

use nix::unistd::{Gid, Uid};

/// A user of the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

impl From<nix::unistd::User> for User {
    fn from(u: nix::unistd::User) -> User {
        User {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }
    }
}

impl User {
    /// The user with this uid; `None` if the database has none (or cannot
    /// be read).
    pub fn from_uid(uid: u32) -> Option<User> {
        nix::unistd::User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(User::from)
    }

    /// The user with this name.
    pub fn from_name(name: &str) -> Option<User> {
        nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map(User::from)
    }

    /// Whether this user belongs to `group`, as its primary group, as a
    /// listed member, or through a supplementary group the database gives
    /// (`getgrouplist`, which also covers LDAP/SSSD groups that list no
    /// members).
    pub fn is_member(&self, group: &str) -> bool {
        let Some(g) = Group::from_name(group) else {
            return false;
        };
        if self.gid == g.gid || g.members.iter().any(|m| m == &self.name) {
            return true;
        }
        let Ok(name) = std::ffi::CString::new(self.name.as_bytes()) else {
            return false;
        };
        nix::unistd::getgrouplist(&name, Gid::from_raw(self.gid))
            .map(|groups| groups.contains(&Gid::from_raw(g.gid)))
            .unwrap_or(false)
    }
}

/// A group of the group database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// The users listed as its members (not those whose primary group it
    /// is).
    pub members: Vec<String>,
}

impl Group {
    /// The group with this name.
    pub fn from_name(name: &str) -> Option<Group> {
        nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| Group {
                name: g.name,
                gid: g.gid.as_raw(),
                members: g.mem,
            })
    }
}

/// The uid of a user name, if the user database has it.
pub fn uid_of(name: &str) -> Option<u32> {
    User::from_name(name).map(|u| u.uid)
}

/// The name of user `uid`, if the user database has it.
pub fn user_name(uid: u32) -> Option<String> {
    User::from_uid(uid).map(|u| u.name)
}

/// The name of the user running this program (its real uid), if it has one.
pub fn current_user() -> Option<String> {
    user_name(nix::unistd::getuid().as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn root_is_uid_0_and_nonsense_is_nobody() {
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(uid_of("no-such-user-here"), None);
        assert_eq!(uid_of("nul\0inside"), None);
    }

    #[test]
    fn root_is_in_its_primary_group_and_not_in_a_missing_one() {
        let root = User::from_uid(0).unwrap();
        assert_eq!(root.name, "root");
        assert!(root.is_member("root"));
        assert!(!root.is_member("no-such-group-netev-test"));
        assert_eq!(Group::from_name("root").unwrap().gid, 0);
    }

    /// Set in the child that runs inside a mount namespace of its own.
    const BIG_ENTRY_CHILD: &str = "NETEV_HOST_BIG_ENTRY_CHILD";
    const BIG_USER: &str = "netev-big-entry";
    const BIG_UID: u32 = 4_242_424;

    /// A user whose passwd entry (a 64 KiB GECOS field, as a large
    /// directory entry can be) is larger than any first buffer: a lookup
    /// that does not grow its buffer on ERANGE reads it as no such user.
    /// The entry is added to a copy of /etc/passwd bind-mounted over it in
    /// a private mount namespace, where this test runs again.
    #[test]
    fn an_entry_larger_than_the_first_buffer_is_found() {
        if std::env::var_os(BIG_ENTRY_CHILD).is_some() {
            let u = User::from_name(BIG_USER).expect("the large entry is found by name");
            assert_eq!(u.uid, BIG_UID);
            assert_eq!(user_name(BIG_UID).as_deref(), Some(BIG_USER));
            return;
        }
        if !nix::unistd::geteuid().is_root() {
            // a mount namespace needs root
            eprintln!("SKIP an_entry_larger_than_the_first_buffer_is_found: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let mut text = std::fs::read_to_string("/etc/passwd").unwrap();
        text.push_str(&format!(
            "{BIG_USER}:x:{BIG_UID}:{BIG_UID}:{}:/nonexistent:/usr/sbin/nologin\n",
            "g".repeat(64 * 1024)
        ));
        std::fs::write(&passwd, text).unwrap();
        let me = std::env::current_exe().unwrap();
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$1" /etc/passwd && exec "$2" --exact "$3" --nocapture"#)
            .arg("sh")
            .arg(&passwd)
            .arg(&me)
            .arg("users::tests::an_entry_larger_than_the_first_buffer_is_found")
            .env(BIG_ENTRY_CHILD, "1")
            .output()
            .expect("unshare (util-linux)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the lookup in the namespace failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
