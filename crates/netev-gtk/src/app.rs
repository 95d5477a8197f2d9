//! The application: GTK's main loop on this thread, the D-Bus sides (netevd,
//! notifications, tray) on a tokio runtime beside it, and the glue — prompts
//! to notifications, actions to answers, console actions to calls.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use gtk::prelude::*;
use gtk::{gio, glib};
use netev_dbus::WireStatus;

use crate::bus::{BusChoice, Client, Update};
use crate::console::{Console, ConsoleAction};
use crate::dialog::RuleDialog;
use crate::form::{RuleForm, Submission};
use crate::notify::{Notifier, NotifyEvent};
use crate::prompts::{notification_text, PromptQueue, ACTIONS};
use crate::rules_model::RuleRow;
use crate::state::{CallError, DaemonState};
use crate::tray::{Look, Tray, TrayAction};

/// The application id (also the D-Bus name GTK takes on the session bus).
pub const APP_ID: &str = "org.netev.Gtk";
/// Most prompt notifications on screen at once; the rest wait their turn.
pub const MAX_SHOWN: usize = 3;

/// How netev-gtk runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bus netevd is on.
    pub bus: BusChoice,
    /// Duration of a rule made by Allow/Deny in a notification.
    pub duration: String,
    /// Scope of such a rule (exe, exe+dest, exe+port, exe+dest+port).
    pub scope: String,
    /// Do not serve a tray item.
    pub no_tray: bool,
    /// Open the console at start.
    pub console: bool,
    /// Write what the app shows to this file as JSON on every change (for
    /// tests and scripts).
    pub state_file: Option<PathBuf>,
    /// Export the console's change actions on the session bus too.
    pub export_change_actions: bool,
}

struct App {
    opts: Options,
    gtk_app: gtk::Application,
    rt: tokio::runtime::Handle,
    client: Client,
    state: RefCell<DaemonState>,
    queue: RefCell<PromptQueue>,
    notifier: RefCell<Option<Notifier>>,
    tray: RefCell<Option<Tray>>,
    tray_registered: Cell<bool>,
    console: RefCell<Option<Console>>,
    rules: RefCell<Vec<HashMap<String, String>>>,
    status: RefCell<Option<WireStatus>>,
    placeholder: Cell<u32>,
    status_ticks: Cell<u32>,
    notify_error: RefCell<Option<String>>,
    /// The console's actions that change something (`console.*` in its
    /// window), not exported on the session bus.
    console_actions: gio::SimpleActionGroup,
}

/// Runs netev-gtk until Quit.
pub fn run(opts: Options) -> glib::ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let gtk_app = gtk::Application::builder()
        .application_id(APP_ID)
        .flags(gio::ApplicationFlags::empty())
        .build();
    let app: Rc<RefCell<Option<Rc<App>>>> = Rc::new(RefCell::new(None));
    let handle = rt.handle().clone();
    let a = app.clone();
    gtk_app.connect_activate(move |gtk_app| {
        if let Some(app) = a.borrow().as_ref() {
            // launched again: the console is how to reach us
            app.open_console();
            return;
        }
        let app = App::start(gtk_app, handle.clone(), opts.clone());
        *a.borrow_mut() = Some(app);
    });
    // GTK must not parse our arguments (clap did)
    let code = gtk_app.run_with_args(&["netev-gtk"]);
    drop(app);
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

impl App {
    fn start(gtk_app: &gtk::Application, rt: tokio::runtime::Handle, opts: Options) -> Rc<App> {
        // runs without windows (tray, notifications) until Quit
        std::mem::forget(gtk_app.hold());
        let (client, updates) = Client::start(rt.clone(), opts.bus.clone());
        let app = Rc::new(App {
            opts: opts.clone(),
            gtk_app: gtk_app.clone(),
            rt: rt.clone(),
            client,
            state: RefCell::new(DaemonState::Connecting),
            queue: RefCell::new(PromptQueue::new(MAX_SHOWN)),
            notifier: RefCell::new(None),
            tray: RefCell::new(None),
            tray_registered: Cell::new(false),
            console: RefCell::new(None),
            rules: RefCell::new(Vec::new()),
            status: RefCell::new(None),
            placeholder: Cell::new(u32::MAX),
            status_ticks: Cell::new(0),
            notify_error: RefCell::new(None),
            console_actions: gio::SimpleActionGroup::new(),
        });
        let quit = gio::SimpleAction::new("quit", None);
        let g = gtk_app.clone();
        quit.connect_activate(move |_, _| g.quit());
        gtk_app.add_action(&quit);
        let console = gio::SimpleAction::new("console", None);
        let a = Rc::downgrade(&app);
        console.connect_activate(move |_, _| {
            if let Some(a) = a.upgrade() {
                a.open_console()
            }
        });
        gtk_app.add_action(&console);
        app.add_console_actions(gtk_app);

        // netevd
        let a = app.clone();
        glib::spawn_future_local(async move {
            let mut updates = updates;
            while let Some(u) = updates.recv().await {
                a.on_update(u);
            }
        });
        // notifications
        let a = app.clone();
        glib::spawn_future_local(async move {
            let r = a.on_rt(async { Notifier::connect(None).await }).await;
            match r {
                Ok((n, mut events)) => {
                    *a.notifier.borrow_mut() = Some(n);
                    a.show_prompts();
                    while let Some(ev) = events.recv().await {
                        a.on_notify(ev);
                    }
                }
                Err(e) => {
                    eprintln!("netev-gtk: {e}; prompts are listed in the console instead");
                    *a.notify_error.borrow_mut() = Some(e.to_string());
                }
            }
        });
        // tray
        if !opts.no_tray {
            let a = app.clone();
            glib::spawn_future_local(async move {
                let look = a.look();
                match a.on_rt(async move { Tray::start(None, look).await }).await {
                    Ok((tray, mut actions, mut registered)) => {
                        *a.tray.borrow_mut() = Some(tray);
                        let b = a.clone();
                        glib::spawn_future_local(async move {
                            loop {
                                let up = *registered.borrow_and_update();
                                b.tray_registered.set(up);
                                b.write_state();
                                if registered.changed().await.is_err() {
                                    break;
                                }
                            }
                        });
                        while let Some(act) = actions.recv().await {
                            a.on_tray(act);
                        }
                    }
                    Err(e) => {
                        eprintln!("netev-gtk: {e}; use the console window instead");
                        a.open_console();
                    }
                }
            });
            // no tray took the item shortly after start: the console is the way in
            let a = app.clone();
            glib::timeout_add_seconds_local_once(2, move || {
                if !a.tray_registered.get() {
                    a.open_console();
                }
            });
        }
        if opts.console || opts.no_tray {
            app.open_console();
        }
        app.write_state();
        app
    }

    /// Runs a future on the bus runtime and awaits its result here.
    fn on_rt<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> impl std::future::Future<Output = T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        async move { rx.await.expect("the bus runtime is running") }
    }

    fn on_update(self: &Rc<Self>, u: Update) {
        match u {
            Update::State(s) => {
                if !s.running() {
                    // the daemon's prompts went with it
                    let ids = self.queue.borrow_mut().clear();
                    self.close_notifications(ids);
                }
                if let Some(c) = self.console.borrow().as_ref() {
                    c.set_state(&s);
                }
                *self.state.borrow_mut() = s;
                self.refresh_look();
            }
            Update::Status(s) => {
                let open = self.console.borrow().is_some();
                if let Some(c) = self.console.borrow().as_ref() {
                    c.set_status(&s);
                }
                // hit counts change without RulesChanged: refresh them now and then
                let n = self.status_ticks.get().wrapping_add(1);
                self.status_ticks.set(n);
                if open && n % 5 == 0 {
                    self.reload_rules();
                }
                *self.status.borrow_mut() = Some(s);
            }
            Update::Events(batch, lost) => {
                if let Some(c) = self.console.borrow().as_ref() {
                    c.push_events(&batch, lost);
                }
            }
            Update::Prompt(id, ev, asked) => {
                if self.queue.borrow_mut().add(id, ev, asked) {
                    self.show_prompts();
                    self.refresh_look();
                }
            }
            Update::PromptClosed(id, _reason) => {
                let n = self.queue.borrow_mut().remove(id);
                self.close_notifications(n);
                self.show_prompts();
                self.refresh_look();
            }
            Update::RulesChanged => self.reload_rules(),
        }
        self.write_state();
    }

    fn reload_rules(self: &Rc<Self>) {
        let a = self.clone();
        let call = self.client.call(|p| async move { p.list_rules().await });
        glib::spawn_future_local(async move {
            match call.await {
                Ok(rules) => {
                    if let Some(c) = a.console.borrow().as_ref() {
                        c.set_rules(&rules);
                    }
                    *a.rules.borrow_mut() = rules;
                    a.write_state();
                }
                Err(e) => a.report(&format!("cannot list the rules: {e}")),
            }
        });
    }

    fn close_notifications(&self, ids: impl IntoIterator<Item = u32>) {
        let Some(n) = self.notifier.borrow().clone() else {
            return;
        };
        for id in ids {
            let n = n.clone();
            self.rt.spawn(async move { n.close(id).await });
        }
    }

    /// Puts waiting prompts on screen, as many as fit.
    fn show_prompts(self: &Rc<Self>) {
        let Some(notifier) = self.notifier.borrow().clone() else {
            self.refresh_console_prompts();
            return;
        };
        let ids = self.queue.borrow().to_show();
        for id in ids {
            let Some(p) = self.queue.borrow().get(id).cloned() else {
                continue;
            };
            // a placeholder holds the slot while the server answers
            let ph = self.placeholder.get();
            self.placeholder.set(ph - 1);
            self.queue.borrow_mut().shown(id, ph);
            let (summary, body) = notification_text(&p.event);
            let n = notifier.clone();
            let a = self.clone();
            glib::spawn_future_local(async move {
                let r = a
                    .on_rt(async move { n.show(&summary, &body, &ACTIONS).await })
                    .await;
                match r {
                    Ok(nid) => {
                        let still = a.queue.borrow().get(id).is_some();
                        if still {
                            a.queue.borrow_mut().shown(id, nid);
                        } else {
                            // answered or expired meanwhile
                            a.close_notifications([nid]);
                        }
                    }
                    Err(e) => {
                        eprintln!("netev-gtk: {e}");
                        a.queue.borrow_mut().notification_closed(ph);
                        *a.notify_error.borrow_mut() = Some(e.to_string());
                    }
                }
                a.write_state();
            });
        }
        self.refresh_console_prompts();
    }

    fn refresh_console_prompts(&self) {
        if let Some(c) = self.console.borrow().as_ref() {
            let q = self.queue.borrow();
            c.set_prompts(q.iter(), q.paused());
        }
    }

    fn on_notify(self: &Rc<Self>, ev: NotifyEvent) {
        match ev {
            NotifyEvent::Action(nid, key) => {
                let Some(id) = self.queue.borrow().by_notification(nid).map(|p| p.id) else {
                    return;
                };
                match key.as_str() {
                    "allow" | "deny" => {
                        self.answer(id, if key == "allow" { "allow" } else { "deny" })
                    }
                    _ => self.process(id),
                }
            }
            NotifyEvent::Closed(nid, _) => {
                self.queue.borrow_mut().notification_closed(nid);
                self.show_prompts();
            }
        }
        self.write_state();
    }

    /// Answers a prompt with the default duration and scope.
    fn answer(self: &Rc<Self>, id: u64, action: &'static str) {
        let (duration, scope) = (self.opts.duration.clone(), self.opts.scope.clone());
        let call = self
            .client
            .call(move |p| async move { p.answer_prompt(id, action, &duration, &scope).await });
        let a = self.clone();
        glib::spawn_future_local(async move {
            if let Err(e) = call.await {
                // e.g. the program of an unnamed process, or a socket() with a port scope
                a.report(&format!("prompt {id} not answered: {e}"));
                let n = a.queue.borrow_mut().remove(id);
                a.close_notifications(n);
            }
        });
    }

    /// Opens the dialog for a prompt.
    fn process(self: &Rc<Self>, id: u64) {
        let Some(p) = self.queue.borrow().get(id).cloned() else {
            return;
        };
        let asker = self
            .rules
            .borrow()
            .iter()
            .find(|r| r.get("id").and_then(|v| v.parse::<u32>().ok()) == Some(p.event.rule))
            .and_then(|r| r.get("priority").and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        self.open_dialog(RuleForm::from_prompt(id, &p.event, asker, p.asked));
    }

    fn open_dialog(self: &Rc<Self>, form: RuleForm) {
        let parent = self.console.borrow().as_ref().map(|c| c.window.clone());
        let d = RuleDialog::new(parent.as_ref(), form);
        d.window.set_application(Some(&self.gtk_app));
        let a = self.clone();
        d.connect_create(move |d, sub| {
            let prompt = match d.form().origin() {
                crate::form::Origin::Prompt { id, .. } => Some(*id),
                _ => None,
            };
            let call = a.client.call(move |p| async move {
                let to_map = |f: &Vec<(String, String)>| -> Vec<(String, String)> { f.clone() };
                match &sub {
                    Submission::Add(f) => {
                        let f = to_map(f);
                        p.add_rule(f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
                            .await
                    }
                    Submission::Update(id, f) => p
                        .update_rule(
                            *id,
                            f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
                        )
                        .await
                        .map(|_| *id),
                    Submission::Answer {
                        id,
                        action,
                        duration,
                        scope,
                    } => p.answer_prompt(*id, action, duration, scope).await,
                    // the dialog's Create is insensitive then
                    Submission::Refused(why) => Err(zbus::Error::Failure(why.clone())),
                }
            });
            let (a, d) = (a.clone(), d.clone());
            glib::spawn_future_local(async move {
                match call.await {
                    Ok(_) => {
                        if let Some(id) = prompt {
                            // a rule of its own leaves the prompt to expire: stop showing it
                            let n = a.queue.borrow_mut().remove(id);
                            a.close_notifications(n);
                            a.refresh_look();
                            a.refresh_console_prompts();
                        }
                        d.window.close();
                    }
                    Err(e) => d.show_error(&e.to_string()),
                }
            });
        });
        d.window.present();
    }

    fn open_console(self: &Rc<Self>) {
        if let Some(c) = self.console.borrow().as_ref() {
            c.window.present();
            return;
        }
        let weak = Rc::downgrade(self);
        let c = Console::new(Some(&self.gtk_app), move |act| {
            if let Some(a) = weak.upgrade() {
                a.on_console(act);
            }
        });
        c.set_state(&self.state.borrow());
        c.set_rules(&self.rules.borrow());
        if let Some(s) = self.status.borrow().as_ref() {
            c.set_status(s);
        }
        if let Some(e) = self.notify_error.borrow().as_ref() {
            c.show_message(
                &format!("{e}; prompts are listed on the Prompts page"),
                true,
            );
        }
        let weak = Rc::downgrade(self);
        c.window.connect_close_request(move |_| {
            if let Some(a) = weak.upgrade() {
                *a.console.borrow_mut() = None;
                a.client.set_subscribed(false);
                a.write_state();
            }
            glib::Propagation::Proceed
        });
        c.window
            .insert_action_group("console", Some(&self.console_actions));
        c.window.present();
        *self.console.borrow_mut() = Some(c);
        self.refresh_console_prompts();
        self.client.set_subscribed(true);
        self.write_state();
    }

    /// The console's operations as actions too, run the way the console's
    /// buttons run them — without the confirmation and file dialogs, which
    /// are for people. Application actions are exported on the session bus
    /// (`org.gtk.Actions` on `/org/netev/Gtk`), where every process of the
    /// user may activate them — and ride on an authorization polkit keeps
    /// for this process. So only `export-rules` is one; the actions that
    /// change something (rules, whether prompts are shown) are `console.*`
    /// in the console window, not exported, unless
    /// `--export-change-actions` asks for them on the bus (tests, scripts).
    fn add_console_actions(self: &Rc<Self>, gtk_app: &gtk::Application) {
        type Make = fn(&glib::Variant) -> Option<ConsoleAction>;
        let actions: [(&str, &str, Make); 5] = [
            ("import-rules", "s", |v| {
                v.get::<String>()
                    .map(|p| ConsoleAction::Import(PathBuf::from(p)))
            }),
            ("export-rules", "s", |v| {
                v.get::<String>()
                    .map(|p| ConsoleAction::Export(PathBuf::from(p)))
            }),
            ("delete-rules", "au", |v| {
                v.get::<Vec<u32>>().map(ConsoleAction::Delete)
            }),
            ("set-rule-enabled", "(ub)", |v| {
                v.get::<(u32, bool)>()
                    .map(|(id, on)| ConsoleAction::SetEnabled(id, on))
            }),
            ("pause-prompts", "b", |v| {
                v.get::<bool>().map(ConsoleAction::PausePrompts)
            }),
        ];
        for (name, ty, make) in actions {
            let ty = glib::VariantTy::new(ty).expect("a valid variant type");
            let action = gio::SimpleAction::new(name, Some(ty));
            let a = Rc::downgrade(self);
            action.connect_activate(move |_, param| {
                // GIO checks the parameter's type before calling us
                let (Some(a), Some(act)) = (a.upgrade(), param.and_then(make)) else {
                    return;
                };
                a.on_console(act);
            });
            if name == "export-rules" || self.opts.export_change_actions {
                gtk_app.add_action(&action);
            } else {
                self.console_actions.add_action(&action);
            }
        }
    }

    fn on_console(self: &Rc<Self>, act: ConsoleAction) {
        let done = |what: String| {
            let a = self.clone();
            move |r: Result<String, CallError>| match r {
                Ok(msg) => a.report_ok(&msg),
                Err(e) => a.report(&format!("{what}: {e}")),
            }
        };
        match act {
            ConsoleAction::SetEnabled(id, on) => {
                let call = self
                    .client
                    .call(move |p| async move { p.set_enabled(id, on).await });
                let k = done(format!(
                    "rule {id} not {}",
                    if on { "enabled" } else { "disabled" }
                ));
                glib::spawn_future_local(async move {
                    k(call.await.map(|_| String::new()));
                });
                // the table follows RulesChanged; until then show the truth again
                self.reload_rules();
            }
            ConsoleAction::Delete(ids) => {
                let n = ids.len();
                let call = self.client.call(move |p| async move {
                    for id in ids {
                        p.remove_rule(id).await?;
                    }
                    Ok(())
                });
                let k = done("rules not deleted".into());
                glib::spawn_future_local(async move {
                    k(call.await.map(|_| format!("{n} rule(s) deleted")));
                });
            }
            ConsoleAction::Edit(fields) => self.open_dialog(RuleForm::from_rule(&fields)),
            ConsoleAction::NewRule => self.open_dialog(RuleForm::new_rule()),
            ConsoleAction::RuleFromEvent(ev) => self.open_dialog(RuleForm::from_event(&ev)),
            ConsoleAction::Import(path) => {
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => return self.report(&format!("cannot read {}: {e}", path.display())),
                };
                let name = path.display().to_string();
                let call = self
                    .client
                    .call(move |p| async move { p.import_rules(&name, &text, false).await });
                let k = done("nothing imported".into());
                glib::spawn_future_local(async move {
                    k(call.await.map(|n| format!("{n} rule(s) imported")));
                });
            }
            ConsoleAction::Export(path) => {
                let call = self.client.call(|p| async move { p.export_rules().await });
                let a = self.clone();
                glib::spawn_future_local(async move {
                    match call.await {
                        Ok(text) => match std::fs::write(&path, text) {
                            Ok(()) => a.report_ok(&format!("rules exported to {}", path.display())),
                            Err(e) => a.report(&format!("cannot write {}: {e}", path.display())),
                        },
                        Err(e) => a.report(&format!("rules not exported: {e}")),
                    }
                });
            }
            ConsoleAction::Answer(id, action) => self.answer(id, action),
            ConsoleAction::Process(id) => self.process(id),
            ConsoleAction::PausePrompts(p) => self.set_paused(p),
        }
    }

    fn set_paused(self: &Rc<Self>, paused: bool) {
        if self.queue.borrow().paused() == paused {
            return;
        }
        self.queue.borrow_mut().set_paused(paused);
        self.show_prompts();
        self.refresh_look();
        self.write_state();
    }

    fn on_tray(self: &Rc<Self>, act: TrayAction) {
        match act {
            TrayAction::Console => self.open_console(),
            TrayAction::TogglePause => {
                let p = !self.queue.borrow().paused();
                self.set_paused(p);
            }
            TrayAction::Quit => self.gtk_app.quit(),
        }
    }

    fn look(&self) -> Look {
        let state = self.state.borrow();
        let q = self.queue.borrow();
        let waiting = q.len();
        let mut text = state.headline();
        if waiting > 0 {
            text.push_str(&format!("\n{waiting} prompt(s) waiting"));
        }
        if q.paused() {
            text.push_str("\nprompts paused");
        }
        Look {
            icon: state.icon(waiting > 0).to_string(),
            title: "netev".into(),
            text,
            attention: waiting > 0,
            paused: q.paused(),
        }
    }

    fn refresh_look(&self) {
        let look = self.look();
        if let Some(t) = self.tray.borrow().clone() {
            self.rt.spawn(async move {
                let _ = t.set_look(look).await;
            });
        }
    }

    fn report(&self, msg: &str) {
        eprintln!("netev-gtk: {msg}");
        if let Some(c) = self.console.borrow().as_ref() {
            c.show_message(msg, true);
        }
        self.write_state();
    }

    fn report_ok(&self, msg: &str) {
        if let Some(c) = self.console.borrow().as_ref() {
            c.show_message(msg, false);
        }
        self.write_state();
    }

    /// Writes what the app shows (for tests and scripts): the state, the
    /// prompts, the rules as the console's table has them.
    fn write_state(&self) {
        let Some(path) = &self.opts.state_file else {
            return;
        };
        let console = self.console.borrow();
        let rows: Vec<RuleRow> = match console.as_ref() {
            Some(c) => c.visible_rules(),
            None => self
                .rules
                .borrow()
                .iter()
                .map(|f| RuleRow::from_fields(f.clone()))
                .collect(),
        };
        let q = self.queue.borrow();
        let look = self.look();
        let v = serde_json::json!({
            "state": self.state.borrow().headline(),
            "running": self.state.borrow().running(),
            "advice": self.state.borrow().advice(),
            "icon": look.icon,
            "tray_registered": self.tray_registered.get(),
            "console_open": console.is_some(),
            "message": console.as_ref().map(|c| c.message()),
            "prompts_paused": q.paused(),
            "prompts": q.iter().map(|p| serde_json::json!({
                "id": p.id,
                "text": crate::prompts::describe(&p.event),
                "notification": p.notification,
            })).collect::<Vec<_>>(),
            "rules": rows.iter().map(|r| serde_json::json!({
                "id": r.id, "action": r.action, "ops": r.ops, "exe": r.exe,
                "user": r.user, "dest": r.dest, "duration": r.duration,
                "enabled": r.enabled, "comment": r.comment,
            })).collect::<Vec<_>>(),
        });
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, v.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}
