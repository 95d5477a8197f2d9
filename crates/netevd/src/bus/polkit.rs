//! polkit for changes: a non-root member of the access group who changes
//! rules, the default policy or answers a prompt is checked by
//! `org.freedesktop.PolicyKit1` on the bus netevd serves on, for the
//! actions shipped in `dist/polkit-1/actions/org.netev.policy`.
//!
//! The subject is the caller's unique bus name (`system-bus-name`): polkit
//! reads its process and uid from the bus itself, never from the caller.
//! Interaction (an authentication agent asking for a password) is allowed
//! only when the caller's message carries `ALLOW_INTERACTIVE_AUTHORIZATION`.
//! polkit not on the bus, or failing, refuses the call.

use std::collections::HashMap;

use zbus::names::UniqueName;
use zbus::proxy::CacheProperties;
use zbus::Variant as Value;
use zbus::{fdo, Connection};

/// The polkit action a change needs (ids as in `org.netev.policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// AddRule, UpdateRule, RemoveRule, SetEnabled, SetDefaultPolicy,
    /// ImportRules.
    ChangeRules,
    /// AnswerPrompt: it can make lasting rules, and decides for the
    /// process that asked.
    AnswerPrompts,
}

impl Action {
    /// The action id.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Action::ChangeRules => "org.netev.change-rules",
            Action::AnswerPrompts => "org.netev.answer-prompts",
        }
    }
}

/// `CheckAuthorization`'s flag: the agent may ask the user.
const ALLOW_USER_INTERACTION: u32 = 1;

#[zbus::proxy(
    interface = "org.freedesktop.PolicyKit1.Authority",
    default_service = "org.freedesktop.PolicyKit1",
    default_path = "/org/freedesktop/PolicyKit1/Authority"
)]
trait Authority {
    /// (is_authorized, is_challenge, details)
    fn check_authorization(
        &self,
        subject: &(&str, HashMap<&str, Value<'_>>),
        action_id: &str,
        details: HashMap<&str, &str>,
        flags: u32,
        cancellation_id: &str,
    ) -> zbus::Result<(bool, bool, HashMap<String, String>)>;
}

/// What polkit answered, before it becomes the caller's reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Authorized,
    /// Authentication would do, and the caller did not allow interaction.
    NeedsInteraction,
    /// Authentication would do, interaction was allowed, and no agent
    /// authenticated (none registered for the caller, or it was dismissed
    /// or failed).
    NotAuthenticated {
        dismissed: bool,
    },
    /// Not authorized, and authenticating would not change that.
    Refused,
}

/// Reads polkit's answer.
pub(crate) fn verdict(
    authorized: bool,
    challenge: bool,
    details: &HashMap<String, String>,
    interactive: bool,
) -> Verdict {
    let dismissed = details.get("polkit.dismissed").is_some_and(|v| v == "true");
    match (authorized, challenge, interactive) {
        (true, _, _) => Verdict::Authorized,
        (false, true, false) => Verdict::NeedsInteraction,
        (false, true, true) => Verdict::NotAuthenticated { dismissed },
        (false, false, _) if dismissed => Verdict::NotAuthenticated { dismissed },
        (false, false, _) => Verdict::Refused,
    }
}

/// Asks polkit whether `sender` may do `action`; `what` says what the call
/// does, for the error message.
pub(crate) async fn check(
    conn: &Connection,
    sender: &UniqueName<'_>,
    action: Action,
    what: &str,
    interactive: bool,
) -> fdo::Result<()> {
    let id = action.id();
    let authority = AuthorityProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| unavailable(what, id, &e))?;
    let mut subject = HashMap::new();
    subject.insert("name", Value::from(sender.as_str()));
    let flags = if interactive {
        ALLOW_USER_INTERACTION
    } else {
        0
    };
    let (authorized, challenge, details) = authority
        .check_authorization(&("system-bus-name", subject), id, HashMap::new(), flags, "")
        .await
        .map_err(|e| unavailable(what, id, &e))?;
    let fix = format!(
        "run it as root, or with an authentication agent for your process (`netev` starts \
         `pkttyagent` when run in a terminal; a desktop session has its own), or ask an \
         administrator for a polkit rule granting {id} (docs/dbus.md, Access control)"
    );
    match verdict(authorized, challenge, &details, interactive) {
        Verdict::Authorized => Ok(()),
        Verdict::NeedsInteraction => Err(fdo::Error::InteractiveAuthorizationRequired(format!(
            "{what} needs authentication as an administrator (polkit action {id}), and the \
             call did not allow interactive authorization: call it with the \
             ALLOW_INTERACTIVE_AUTHORIZATION flag and an authentication agent running (as \
             `netev` does), or {fix}"
        ))),
        Verdict::NotAuthenticated { dismissed: true } => Err(fdo::Error::AccessDenied(format!(
            "{what} needs authentication as an administrator (polkit action {id}), and the \
             authentication was refused or cancelled; nothing was changed. Try again, or {fix}"
        ))),
        Verdict::NotAuthenticated { dismissed: false } => Err(fdo::Error::AccessDenied(format!(
            "{what} needs authentication as an administrator (polkit action {id}), and no \
                 authentication agent authenticated you; nothing was changed. {}",
            capitalised(&fix)
        ))),
        Verdict::Refused => Err(fdo::Error::AccessDenied(format!(
            "{what} is not authorized by polkit (action {id}); nothing was changed. {}",
            capitalised(&fix)
        ))),
    }
}

/// polkit is not on the bus, or its call failed: refused.
fn unavailable(what: &str, id: &str, e: &zbus::Error) -> fdo::Error {
    let gone = match e {
        zbus::Error::MethodError(name, _, _) => matches!(
            name.as_str(),
            "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner"
                | "org.freedesktop.DBus.Error.Spawn.ServiceNotFound"
        ),
        zbus::Error::FDO(f) => matches!(
            f.as_ref(),
            fdo::Error::ServiceUnknown(_) | fdo::Error::NameHasNoOwner(_)
        ),
        _ => false,
    };
    if gone {
        fdo::Error::AccessDenied(format!(
            "{what} by a non-root member of the access group is authorized by polkit (action \
             {id}), and polkitd is not running on netevd's bus: install and start polkitd \
             (Debian package polkitd), or run it as root; nothing was changed"
        ))
    } else {
        fdo::Error::AccessDenied(format!(
            "{what} by a non-root member of the access group is authorized by polkit (action \
             {id}), and asking polkit failed: {e}; nothing was changed (run it as root, or \
             check polkitd)"
        ))
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn polkits_answers_read_as_documented() {
        assert_eq!(verdict(true, false, &d(&[]), false), Verdict::Authorized);
        assert_eq!(
            verdict(false, true, &d(&[]), false),
            Verdict::NeedsInteraction
        );
        assert_eq!(
            verdict(false, true, &d(&[]), true),
            Verdict::NotAuthenticated { dismissed: false }
        );
        assert_eq!(
            verdict(false, false, &d(&[("polkit.dismissed", "true")]), true),
            Verdict::NotAuthenticated { dismissed: true }
        );
        assert_eq!(verdict(false, false, &d(&[]), true), Verdict::Refused);
        assert_eq!(verdict(false, false, &d(&[]), false), Verdict::Refused);
    }

    #[test]
    fn action_ids_are_the_shipped_ones() {
        let policy = include_str!("../../../../dist/polkit-1/actions/org.netev.policy");
        for a in [Action::ChangeRules, Action::AnswerPrompts] {
            assert!(
                policy.contains(&format!("<action id=\"{}\">", a.id())),
                "{} is not in dist/polkit-1/actions/org.netev.policy",
                a.id()
            );
        }
    }
}
