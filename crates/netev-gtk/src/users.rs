//! User names and uids, for the rule dialog's "user" field (the daemon
//! resolves names on the same machine, so the dialog can check them first).
//! The lookups are netev-host's, the daemon's own.

/// The uid of a user name, if the user database has it.
pub fn uid_of(name: &str) -> Option<u32> {
    netev_host::users::uid_of(name)
}

/// The name of the user running this program, if it has one.
pub fn current_user() -> Option<String> {
    netev_host::users::current_user()
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_uid_0_and_nonsense_is_nobody() {
        assert_eq!(super::uid_of("root"), Some(0));
        assert_eq!(super::uid_of("no-such-user-here"), None);
    }
}
