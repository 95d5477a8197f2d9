//! Desktop notifications (org.freedesktop.Notifications on the session
//! bus): show one with actions, close one, and hear which action the person
//! chose or that the bubble went away.

use std::collections::HashMap;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use zbus::Connection;
use zbus::Variant as Value;

/// The client side of the notification server.
#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
pub trait Notifications {
    /// Shows (or replaces) a notification; returns its id.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: Vec<&str>,
        hints: HashMap<&str, Value<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;

    /// Closes a notification.
    fn close_notification(&self, id: u32) -> zbus::Result<()>;

    /// The server's name, vendor, version and spec version.
    fn get_server_information(&self) -> zbus::Result<(String, String, String, String)>;

    /// The person chose an action of notification `id`.
    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: String) -> zbus::Result<()>;

    /// Notification `id` went away: 1 expired, 2 dismissed, 3 closed by a
    /// call, 4 other.
    #[zbus(signal)]
    fn notification_closed(&self, id: u32, reason: u32) -> zbus::Result<()>;
}

/// What the notification server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyEvent {
    /// An action was chosen.
    Action(u32, String),
    /// A notification went away, with the reason code.
    Closed(u32, u32),
}

/// Why a notification could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// No session bus.
    #[error("no session bus for notifications: {0}")]
    NoBus(zbus::Error),
    /// The server refused or is missing.
    #[error("the notification server (org.freedesktop.Notifications) did not take it: {0}")]
    Server(zbus::Error),
}

/// A connection to the notification server.
#[derive(Clone)]
pub struct Notifier {
    proxy: NotificationsProxy<'static>,
}

impl Notifier {
    /// Connects on the session bus (or `address`), and forwards actions and
    /// closings to the returned receiver.
    pub async fn connect(
        address: Option<&str>,
    ) -> Result<(Notifier, mpsc::UnboundedReceiver<NotifyEvent>), NotifyError> {
        let conn = match address {
            Some(a) => zbus::connection::Builder::address(a).build().await,
            None => Connection::session().await,
        }
        .map_err(NotifyError::NoBus)?;
        let proxy = NotificationsProxy::new(&conn)
            .await
            .map_err(NotifyError::NoBus)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut actions = proxy
            .receive_action_invoked()
            .await
            .map_err(NotifyError::NoBus)?;
        let mut closed = proxy
            .receive_notification_closed()
            .await
            .map_err(NotifyError::NoBus)?;
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    a = actions.next() => match a.and_then(|s| s.args().ok().map(|a| (a.id, a.action_key))) {
                        Some((id, key)) => NotifyEvent::Action(id, key),
                        None => break,
                    },
                    c = closed.next() => match c.and_then(|s| s.args().ok().map(|a| (a.id, a.reason))) {
                        Some((id, reason)) => NotifyEvent::Closed(id, reason),
                        None => break,
                    },
                };
                if tx.send(ev).is_err() {
                    break;
                }
            }
        });
        Ok((Notifier { proxy }, rx))
    }

    /// Shows a notification that stays until answered or closed, with
    /// `actions` as (key, label); returns its id.
    pub async fn show(
        &self,
        summary: &str,
        body: &str,
        actions: &[(&str, &str)],
    ) -> Result<u32, NotifyError> {
        let flat: Vec<&str> = actions.iter().flat_map(|(k, l)| [*k, *l]).collect();
        let hints = HashMap::from([
            ("urgency", Value::U8(2)),
            ("resident", Value::Bool(true)),
            ("desktop-entry", Value::from("netev-gtk")),
        ]);
        self.proxy
            .notify("netev", 0, "dialog-question", summary, body, flat, hints, 0)
            .await
            .map_err(NotifyError::Server)
    }

    /// Closes a notification (it is fine if it is already gone).
    pub async fn close(&self, id: u32) {
        let _ = self.proxy.close_notification(id).await;
    }
}
