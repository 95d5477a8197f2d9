//! Who may call what: root or the access group for everything but
//! GetStatus and Ask; an unprivileged `Ask` only about the caller's own
//! processes; a change (rules, policy, answers) by a non-root member also
//! authorized by polkit (`polkit.rs`); no answer from the tree of the
//! process that asked. Checked on the caller's credentials
//! as the bus daemon reports them, never on anything the caller says.

use netev_event::Event;
use netev_host::proc_status::{ancestor_among, ProcId};
use zbus::message::{Flags, Header};
use zbus::names::BusName;
use zbus::{fdo, Connection};

pub(crate) use super::polkit::Action;

/// Checks that the caller is root or in the access group.
pub(crate) async fn authorize(
    access_group: &str,
    conn: &Connection,
    hdr: &Header<'_>,
    what: &str,
) -> fdo::Result<()> {
    member_uid(access_group, conn, hdr, what).await.map(|_| ())
}

/// Checks a call that changes something: root, or a member of the access
/// group whom polkit authorizes for `action` (interactively only if the
/// caller's message allows interactive authorization).
pub(crate) async fn authorize_change(
    access_group: &str,
    conn: &Connection,
    hdr: &Header<'_>,
    what: &str,
    action: Action,
) -> fdo::Result<()> {
    if member_uid(access_group, conn, hdr, what).await? == 0 {
        return Ok(());
    }
    let sender = hdr
        .sender()
        .expect("member_uid refuses calls without a sender");
    let interactive = hdr
        .primary()
        .flags()
        .contains(Flags::ALLOW_INTERACTIVE_AUTH);
    super::polkit::check(conn, sender, action, what, interactive).await?;
    // Authentication can take minutes. A caller gone meanwhile gets no
    // reply, so nothing is done in its name (its unique name is never
    // handed to another connection).
    let dbus = fdo::DBusProxy::new(conn).await?;
    if !dbus.name_has_owner(BusName::Unique(sender.clone())).await? {
        return Err(fdo::Error::AccessDenied(format!(
            "{what}: the caller left the bus while polkit authorized it; nothing was changed"
        )));
    }
    Ok(())
}

/// The caller's uid if it is root or in the access group.
async fn member_uid(
    access_group: &str,
    conn: &Connection,
    hdr: &Header<'_>,
    what: &str,
) -> fdo::Result<u32> {
    let sender = hdr.sender().ok_or_else(|| {
        fdo::Error::AccessDenied("a call without a sender is not accepted".into())
    })?;
    let dbus = fdo::DBusProxy::new(conn).await?;
    let uid = dbus
        .get_connection_unix_user(BusName::Unique(sender.clone()))
        .await?;
    if uid == 0 {
        return Ok(0);
    }
    let group = access_group;
    // the group database, as dbus-daemon reads it for `<policy group=…>`
    let user = netev_host::users::User::from_uid(uid);
    let member = user.as_ref().is_some_and(|u| u.is_member(group));
    if member {
        return Ok(uid);
    }
    let name = user.map(|u| u.name).unwrap_or_else(|| format!("uid {uid}"));
    Err(fdo::Error::AccessDenied(format!(
        "{what} needs root or membership of the group '{group}'; {name} (uid {uid}) is not a member. \
         Add it with `usermod -aG {group} {name}` and log in again."
    )))
}

/// An unprivileged caller may ask only about its own processes: the event
/// must name the caller's uid and a live process whose real uid that is.
pub(crate) fn own_process(uid: u32, ev: &Event) -> fdo::Result<()> {
    let refuse = |why: String| {
        Err(fdo::Error::AccessDenied(format!(
            "asking about pid {} needs root or membership of the access group, or the process \
             must be your own: {why}",
            ev.pid
        )))
    };
    if ev.uid != uid {
        return refuse(format!("the event names uid {}, you are uid {uid}", ev.uid));
    }
    let Some(status) = netev_host::proc_status::ProcStatus::read(ev.pid) else {
        return refuse("no such process".into());
    };
    let real = status.real_uid();
    match real {
        Some(r) if r == uid => Ok(()),
        Some(r) => refuse(format!("it runs as uid {r}")),
        None => refuse("its owner cannot be read".into()),
    }
}

/// The caller's process, as the bus daemon reports its pid (the process
/// that opened the connection); `None` if it cannot be read.
pub(crate) async fn caller_process(
    conn: &Connection,
    sender: &zbus::names::UniqueName<'_>,
) -> Option<ProcId> {
    ProcId::of(caller_pid(conn, sender).await.ok()?)
}

/// The pid of the process that opened the caller's connection.
async fn caller_pid(conn: &Connection, sender: &zbus::names::UniqueName<'_>) -> fdo::Result<u32> {
    fdo::DBusProxy::new(conn)
        .await?
        .get_connection_unix_process_id(BusName::Unique(sender.clone()))
        .await
}

/// Refuses an answer to prompt `id` from a process that asked it (or that
/// it is about), or from one they started: a supervised program would
/// otherwise answer its own question. Root is no exception: the tree of a
/// program run as root is still that program.
pub(crate) async fn not_the_askers(
    conn: &Connection,
    hdr: &Header<'_>,
    id: u64,
    askers: &[ProcId],
) -> fdo::Result<()> {
    if askers.is_empty() {
        return Ok(());
    }
    let sender = hdr.sender().ok_or_else(|| {
        fdo::Error::AccessDenied("a call without a sender is not accepted".into())
    })?;
    let pid = caller_pid(conn, sender).await?;
    // /proc reads, as many as the caller's line of parents is long: off
    // the bus thread.
    let roots = askers.to_vec();
    let found = tokio::task::spawn_blocking(move || ancestor_among(pid, &roots))
        .await
        .map_err(|_| fdo::Error::Failed("the process check failed".into()))?;
    match found {
        Ok(None) => Ok(()),
        Ok(Some(asker)) => Err(fdo::Error::AccessDenied(format!(
            "prompt {id} was raised by or about process {}, and your process (pid {pid}) is {}: \
             a program cannot answer its own questions. Answer it from a prompter outside that \
             program (another terminal, the desktop)",
            asker.pid,
            if asker.pid == pid {
                "that process"
            } else {
                "one it started"
            }
        ))),
        Err(e) => Err(fdo::Error::AccessDenied(format!(
            "prompt {id}: cannot tell whether your process (pid {pid}) is part of the program \
             that asked ({e}), so the answer is refused; answer from a process that stays on the \
             bus it connected from"
        ))),
    }
}
