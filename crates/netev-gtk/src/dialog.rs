//! The "Create a rule" dialog: the widgets over a [`RuleForm`]. Every change
//! re-checks the form with netev-rules; Create is only possible when the
//! rule is valid, and the reason is shown under the fields otherwise.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gtk::prelude::*;

use crate::form::{DurationChoice, RuleForm, Scope, Submission};

const ACTIONS: [&str; 3] = ["allow", "deny", "ask"];
const PROTOS: [&str; 5] = ["", "tcp", "udp", "icmp", "icmpv6"];

/// The dialog's input widgets (public so that tests can type into them).
pub struct Widgets {
    /// What the rule is about.
    pub headline: gtk::Label,
    /// Allow / Deny / Ask.
    pub action: gtk::DropDown,
    /// The scope choices ([`Scope::ALL`]).
    pub scope: gtk::DropDown,
    /// Comma-separated ops.
    pub ops: gtk::Entry,
    /// Program path or glob.
    pub exe: gtk::Entry,
    /// Any / tcp / udp / icmp / icmpv6.
    pub proto: gtk::DropDown,
    /// Address or CIDR.
    pub addr: gtk::Entry,
    /// Port or range.
    pub ports: gtk::Entry,
    /// User name or uid.
    pub user: gtk::Entry,
    /// The duration choices ([`DurationChoice::ALL`], plus the rule's own
    /// end time when editing a timed rule).
    pub duration: gtk::DropDown,
    /// Priority.
    pub priority: gtk::Entry,
    /// Comment.
    pub comment: gtk::Entry,
    /// Enabled.
    pub enabled: gtk::CheckButton,
    /// The first problem, or what Create will do.
    pub message: gtk::Label,
    /// Create (or Save).
    pub create: gtk::Button,
    /// Cancel.
    pub cancel: gtk::Button,
}

type CreateFn = Rc<dyn Fn(&RuleDialog, Submission)>;

struct Inner {
    form: RefCell<RuleForm>,
    durations: Vec<String>,
    w: Widgets,
    /// Set while widgets are filled from the form, so that their change
    /// signals do not write back.
    filling: Cell<bool>,
    valid: Cell<bool>,
    on_create: RefCell<Option<CreateFn>>,
}

/// A "Create a rule" window.
#[derive(Clone)]
pub struct RuleDialog {
    /// The window.
    pub window: gtk::Window,
    inner: Rc<Inner>,
}

fn labeled(grid: &gtk::Grid, row: i32, label: &str, w: &impl IsA<gtk::Widget>) {
    let l = gtk::Label::builder()
        .label(label)
        .xalign(1.0)
        .css_classes(["dim-label"])
        .build();
    grid.attach(&l, 0, row, 1, 1);
    w.set_hexpand(true);
    grid.attach(w, 1, row, 1, 1);
}

impl RuleDialog {
    /// A dialog over `form`, transient for `parent`.
    pub fn new(parent: Option<&gtk::Window>, form: RuleForm) -> RuleDialog {
        let editing = matches!(form.origin(), crate::form::Origin::Rule(_));
        let window = gtk::Window::builder()
            .title(if editing {
                "Edit rule"
            } else {
                "Create a rule"
            })
            .default_width(520)
            .modal(parent.is_some())
            .build();
        if let Some(p) = parent {
            window.set_transient_for(Some(p));
        }
        let mut durations: Vec<String> = DurationChoice::ALL
            .iter()
            .map(|d| d.value().to_string())
            .collect();
        let mut duration_labels: Vec<String> = DurationChoice::ALL
            .iter()
            .map(|d| d.label().to_string())
            .collect();
        if DurationChoice::from_value(&form.duration).is_none() {
            durations.push(form.duration.clone());
            duration_labels.push(format!("Until {}", form.duration));
        }
        let strs = |v: &[&str]| gtk::DropDown::from_strings(v);
        let dl: Vec<&str> = duration_labels.iter().map(String::as_str).collect();
        let scope_labels: Vec<&str> = Scope::ALL.iter().map(|s| s.label()).collect();
        let entry = |placeholder: &str| gtk::Entry::builder().placeholder_text(placeholder).build();
        let w = Widgets {
            headline: gtk::Label::builder()
                .wrap(true)
                .xalign(0.0)
                .css_classes(["heading"])
                .build(),
            action: strs(&["Allow", "Deny", "Ask"]),
            scope: strs(&scope_labels),
            ops: entry("any op (e.g. connect,sendmsg)"),
            exe: entry("any program (e.g. /usr/bin/curl or /opt/*/bin/*)"),
            proto: strs(&["any", "tcp", "udp", "icmp", "icmpv6"]),
            addr: entry("any address (e.g. 10.0.0.0/8)"),
            ports: entry("any port (e.g. 443 or 8000-8080)"),
            user: entry("any user (a name or a uid)"),
            duration: strs(&dl),
            priority: entry("0"),
            comment: entry("for people"),
            enabled: gtk::CheckButton::with_label("Enabled"),
            message: gtk::Label::builder()
                .wrap(true)
                .xalign(0.0)
                .selectable(true)
                .build(),
            create: gtk::Button::with_label(if editing { "Save" } else { "Create" }),
            cancel: gtk::Button::with_label("Cancel"),
        };
        w.create.add_css_class("suggested-action");
        let grid = gtk::Grid::builder()
            .row_spacing(6)
            .column_spacing(12)
            .build();
        let rows: [(&str, &gtk::Widget); 12] = [
            ("Action", w.action.upcast_ref()),
            ("Applies to", w.scope.upcast_ref()),
            ("Operations", w.ops.upcast_ref()),
            ("Program", w.exe.upcast_ref()),
            ("Protocol", w.proto.upcast_ref()),
            ("Address", w.addr.upcast_ref()),
            ("Ports", w.ports.upcast_ref()),
            ("User", w.user.upcast_ref()),
            ("Duration", w.duration.upcast_ref()),
            ("Priority", w.priority.upcast_ref()),
            ("Comment", w.comment.upcast_ref()),
            ("", w.enabled.upcast_ref()),
        ];
        for (i, (label, widget)) in rows.iter().enumerate() {
            labeled(&grid, i as i32, label, *widget);
        }
        let buttons = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        buttons.set_halign(gtk::Align::End);
        buttons.append(&w.cancel);
        buttons.append(&w.create);
        let body = gtk::Box::builder()
            .orientation(gtk::Orientation::Vertical)
            .spacing(12)
            .margin_top(12)
            .margin_bottom(12)
            .margin_start(12)
            .margin_end(12)
            .build();
        body.append(&w.headline);
        body.append(&grid);
        body.append(&w.message);
        body.append(&buttons);
        window.set_child(Some(&body));
        window.set_default_widget(Some(&w.create));

        let d = RuleDialog {
            window,
            inner: Rc::new(Inner {
                form: RefCell::new(form),
                durations,
                w,
                filling: Cell::new(false),
                valid: Cell::new(false),
                on_create: RefCell::new(None),
            }),
        };
        d.fill();
        d.connect_signals();
        d.check();
        d
    }

    /// The widgets.
    pub fn widgets(&self) -> &Widgets {
        &self.inner.w
    }

    /// The form as the widgets have it now.
    pub fn form(&self) -> RuleForm {
        self.inner.form.borrow().clone()
    }

    /// Whether Create can be pressed (the rule is valid).
    pub fn can_create(&self) -> bool {
        self.inner.valid.get()
    }

    /// The message under the fields: the first problem, or what Create does.
    pub fn message(&self) -> String {
        self.inner.w.message.text().to_string()
    }

    /// What Create sends, if the rule is valid.
    pub fn submission(&self) -> Option<Submission> {
        self.can_create()
            .then(|| self.inner.form.borrow().submission())
    }

    /// Called with what to send when Create is pressed; the caller closes
    /// the dialog on success or calls [`RuleDialog::show_error`].
    pub fn connect_create(&self, f: impl Fn(&RuleDialog, Submission) + 'static) {
        *self.inner.on_create.borrow_mut() = Some(Rc::new(f));
    }

    /// Shows netevd's refusal under the fields (the dialog stays open).
    pub fn show_error(&self, message: &str) {
        let w = &self.inner.w;
        w.message.set_text(message);
        w.message.remove_css_class("dim-label");
        w.message.add_css_class("error");
        w.create.set_sensitive(true);
    }

    /// Presses Create (as a click does).
    pub fn create(&self) {
        let Some(sub) = self.submission() else {
            return;
        };
        let cb = self.inner.on_create.borrow().clone();
        if let Some(cb) = cb {
            self.inner.w.create.set_sensitive(false);
            cb(self, sub);
        }
    }

    /// Puts the form's values into the widgets.
    fn fill(&self) {
        let i = &self.inner;
        let f = i.form.borrow().clone();
        i.filling.set(true);
        i.w.headline.set_text(&f.headline());
        i.w.action
            .set_selected(ACTIONS.iter().position(|a| *a == f.action).unwrap_or(0) as u32);
        i.w.scope
            .set_selected(Scope::ALL.iter().position(|s| *s == f.scope).unwrap_or(0) as u32);
        i.w.scope.set_sensitive(f.event().is_some());
        set_text(&i.w.ops, &f.ops);
        set_text(&i.w.exe, &f.exe);
        i.w.proto
            .set_selected(PROTOS.iter().position(|p| *p == f.proto).unwrap_or(0) as u32);
        set_text(&i.w.addr, &f.addr);
        set_text(&i.w.ports, &f.ports);
        set_text(&i.w.user, &f.user);
        i.w.duration.set_selected(
            i.durations
                .iter()
                .position(|d| *d == f.duration)
                .unwrap_or(DurationChoice::ALL.len() - 1) as u32,
        );
        set_text(&i.w.priority, &f.priority);
        set_text(&i.w.comment, &f.comment);
        i.w.enabled.set_active(f.enabled);
        i.filling.set(false);
    }

    /// Reads the widgets into the form (the scope follows the fields).
    fn read(&self) {
        let i = &self.inner;
        if i.filling.get() {
            return;
        }
        {
            let mut f = i.form.borrow_mut();
            f.action = ACTIONS[(i.w.action.selected() as usize).min(2)].to_string();
            f.ops = i.w.ops.text().to_string();
            f.exe = i.w.exe.text().to_string();
            f.proto = PROTOS
                .get(i.w.proto.selected() as usize)
                .copied()
                .unwrap_or("")
                .to_string();
            f.addr = i.w.addr.text().to_string();
            f.ports = i.w.ports.text().to_string();
            f.user = i.w.user.text().to_string();
            f.duration = i
                .durations
                .get(i.w.duration.selected() as usize)
                .cloned()
                .unwrap_or_else(|| "always".into());
            f.priority = i.w.priority.text().to_string();
            f.comment = i.w.comment.text().to_string();
            f.enabled = i.w.enabled.is_active();
            f.scope = f.effective_scope();
        }
        let scope = i.form.borrow().scope;
        i.filling.set(true);
        i.w.scope
            .set_selected(Scope::ALL.iter().position(|s| *s == scope).unwrap_or(0) as u32);
        i.filling.set(false);
        self.check();
    }

    /// Validates and shows the outcome.
    fn check(&self) {
        let i = &self.inner;
        let f = i.form.borrow();
        let (ok, text) = match f.validate(&crate::users::uid_of) {
            Ok(rule) => {
                let sub = f.submission();
                (
                    !matches!(sub, Submission::Refused(_)),
                    describe_submission(&sub, &rule),
                )
            }
            Err(e) => (false, e.to_string()),
        };
        i.valid.set(ok);
        i.w.create.set_sensitive(ok);
        i.w.message.set_text(&text);
        if ok {
            i.w.message.remove_css_class("error");
            i.w.message.add_css_class("dim-label");
        } else {
            i.w.message.remove_css_class("dim-label");
            i.w.message.add_css_class("error");
        }
    }

    fn connect_signals(&self) {
        let i = &self.inner;
        for e in [
            &i.w.ops,
            &i.w.exe,
            &i.w.addr,
            &i.w.ports,
            &i.w.user,
            &i.w.priority,
            &i.w.comment,
        ] {
            let d = self.clone();
            e.connect_changed(move |_| d.read());
            let d = self.clone();
            e.connect_activate(move |_| d.create());
        }
        for dd in [&i.w.action, &i.w.proto, &i.w.duration] {
            let d = self.clone();
            dd.connect_selected_notify(move |_| d.read());
        }
        let d = self.clone();
        i.w.enabled.connect_toggled(move |_| d.read());
        let d = self.clone();
        i.w.scope.connect_selected_notify(move |dd| {
            if d.inner.filling.get() {
                return;
            }
            let scope = Scope::ALL[(dd.selected() as usize).min(Scope::ALL.len() - 1)];
            d.inner.form.borrow_mut().set_scope(scope);
            d.fill();
            d.read();
        });
        let d = self.clone();
        i.w.create.connect_clicked(move |_| d.create());
        let win = self.window.clone();
        i.w.cancel.connect_clicked(move |_| win.close());
    }
}

fn set_text(e: &gtk::Entry, s: &str) {
    if e.text() != s {
        e.set_text(s);
    }
}

fn describe_submission(sub: &Submission, rule: &netev_rules::Rule) -> String {
    match sub {
        Submission::Answer { id, .. } => format!(
            "Answers prompt {id} with the rule: {} ({})",
            rule.summary(),
            rule.duration
        ),
        Submission::Update(id, _) => format!("Saves rule {id} as: {}", rule.summary()),
        Submission::Add(_) => format!("Adds the rule: {} ({})", rule.summary(), rule.duration),
        Submission::Refused(why) => why.clone(),
    }
}
