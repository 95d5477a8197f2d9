//! `netev rules …`: the rules in netevd, over D-Bus.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Subcommand;
use netev_event::Op;

use crate::bus::{connect, explain, runtime, BusChoice, Failure};

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List the rules in checking order's id order, with hit counts.
    List {
        /// One JSON object per rule.
        #[arg(long)]
        json: bool,
    },
    /// Add a rule: netev rules add deny --op connect --exe /usr/bin/curl --addr 10.0.0.0/8
    Add {
        /// allow, deny or ask.
        action: String,
        /// Op it covers (repeat; default: every op): socket, bind, listen,
        /// connect, accept, sendmsg, recvmsg.
        #[arg(long, value_name = "OP")]
        op: Vec<Op>,
        /// Executable: absolute path or glob (/usr/bin/*).
        #[arg(long, value_name = "PATH")]
        exe: Option<String>,
        /// User name or uid.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// inet, inet6 or unix.
        #[arg(long, value_name = "FAMILY")]
        family: Option<String>,
        /// tcp, udp, icmp or icmpv6.
        #[arg(long, value_name = "PROTO")]
        proto: Option<String>,
        /// Address or CIDR: remote for connect/sendmsg/accept/recvmsg, local for bind/listen.
        #[arg(long, value_name = "CIDR")]
        addr: Option<String>,
        /// Port or range (8000-8080), on the same side as --addr.
        #[arg(long, value_name = "PORTS")]
        port: Option<String>,
        /// once, a length (30s, 5m, 1h, 2d), until-restart, always, or an RFC 3339 time.
        #[arg(long, value_name = "DURATION", default_value = "always")]
        duration: String,
        /// Higher is checked first (ties: older rule first).
        #[arg(
            long,
            value_name = "N",
            default_value = "0",
            allow_hyphen_values = true
        )]
        priority: i32,
        /// Free text.
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        /// Store it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Remove rules.
    Rm {
        /// Rule ids.
        #[arg(required = true)]
        ids: Vec<u32>,
    },
    /// Enable a rule.
    Enable {
        /// Rule id.
        id: u32,
    },
    /// Disable a rule (kept, never matches).
    Disable {
        /// Rule id.
        id: u32,
    },
    /// Add the rules of a TOML rules file (docs/rules.md); all or nothing.
    Import {
        /// The file.
        file: std::path::PathBuf,
        /// Replace every existing rule instead of adding.
        #[arg(long)]
        replace: bool,
    },
    /// Write every rule as a TOML rules file (to standard output by default).
    Export {
        /// Write here instead.
        file: Option<std::path::PathBuf>,
    },
    /// Show the default policy, or set it: netev rules default connect deny.
    Default {
        /// An op, "all", or "ask-fallback".
        op: Option<String>,
        /// allow, deny or ask (ask-fallback: allow or deny).
        action: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(bus: &BusChoice, cmd: RulesCommand) -> ExitCode {
    match runtime().block_on(exec(bus, cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}

fn fail(message: String) -> Failure {
    Failure { code: 1, message }
}

async fn exec(bus: &BusChoice, cmd: RulesCommand) -> Result<(), Failure> {
    let (_conn, d) = connect(bus).await?;
    let e = |err| explain(bus, err);
    match cmd {
        RulesCommand::List { json } => {
            let rules = d.list_rules().await.map_err(e)?;
            if json {
                for r in &rules {
                    println!("{}", serde_json::to_string(&to_json(r)).expect("json"));
                }
            } else {
                print!("{}", table(&rules));
            }
        }
        RulesCommand::Add { action, op, exe, user, family, proto, addr, port, duration, priority, comment, disabled } => {
            let ops = op.iter().map(|o| o.name()).collect::<Vec<_>>().join(",");
            let prio = priority.to_string();
            let mut f: HashMap<&str, &str> = HashMap::new();
            f.insert("action", &action);
            f.insert("duration", &duration);
            f.insert("priority", &prio);
            if !ops.is_empty() {
                f.insert("ops", &ops);
            }
            for (k, v) in [("exe", &exe), ("user", &user), ("family", &family), ("proto", &proto), ("addr", &addr), ("ports", &port), ("comment", &comment)] {
                if let Some(v) = v {
                    f.insert(k, v);
                }
            }
            if disabled {
                f.insert("enabled", "false");
            }
            let id = d.add_rule(f).await.map_err(e)?;
            println!("{id}");
            warn_observe_only(&d, &op).await;
            if let Some(m) = exe.as_deref().and_then(|x| x.parse::<netev_rules::ExeMatch>().ok()) {
                if m.is_expanded() {
                    eprintln!(
                        "netev: warning: {}: this glob is expanded against the files there now; \
                         a program created later is not covered until the rules are next \
                         installed. DIR/* and DIR/** are matched in the kernel as each program \
                         runs and have no such gap",
                        m.as_str().escape_debug()
                    );
                }
            }
        }
        RulesCommand::Rm { ids } => {
            for id in ids {
                d.remove_rule(id).await.map_err(e)?;
            }
        }
        RulesCommand::Enable { id } => d.set_enabled(id, true).await.map_err(e)?,
        RulesCommand::Disable { id } => d.set_enabled(id, false).await.map_err(e)?,
        RulesCommand::Import { file, replace } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|err| fail(format!("cannot read {}: {err}", file.display())))?;
            let n = d.import_rules(&file.display().to_string(), &text, replace).await.map_err(e)?;
            println!("{n} rules imported");
        }
        RulesCommand::Export { file } => {
            let text = d.export_rules().await.map_err(e)?;
            match file {
                Some(f) => std::fs::write(&f, text).map_err(|err| fail(format!("cannot write {}: {err}", f.display())))?,
                None => print!("{text}"),
            }
        }
        RulesCommand::Default { op, action, json } => match (op, action) {
            (Some(op), Some(action)) => d.set_default_policy(&op, &action).await.map_err(e)?,
            (None, None) => {
                let p = d.get_default_policy().await.map_err(e)?;
                if json {
                    println!("{}", serde_json::to_string(&p).expect("json"));
                } else {
                    for op in Op::ALL.iter().map(|o| o.name()).chain(["ask-fallback"]) {
                        println!("{op:<13} {}", p.get(op).map(String::as_str).unwrap_or("?"));
                    }
                }
            }
            _ => return Err(fail("give both an op (or all, ask-fallback) and an action, or neither to show the policy".into())),
        },
    }
    Ok(())
}

/// Rules on ops the running backend can only observe still match (and are
/// logged) but cannot refuse anything: say so.
async fn warn_observe_only(d: &netev_dbus::Daemon1Proxy<'_>, ops: &[Op]) {
    let Ok(status) = d.get_status().await else {
        return;
    };
    let status = netev_event::status::Status::from(status);
    let wanted: Vec<&str> = if ops.is_empty() {
        Op::ALL.iter().map(|o| o.name()).collect()
    } else {
        ops.iter().map(|o| o.name()).collect()
    };
    let observe_only: Vec<&str> = wanted
        .into_iter()
        .filter(|op| {
            let hooks: Vec<_> = status.hooks.iter().filter(|h| h.op == *op).collect();
            !hooks.is_empty() && hooks.iter().all(|h| h.mode == "observe")
        })
        .collect();
    if !observe_only.is_empty() {
        eprintln!(
            "netev: warning: the {} backend can only observe {}: this rule is matched and logged (verdict observe) there, but cannot refuse them",
            status.backend,
            observe_only.join(", ")
        );
    }
}

fn to_json(r: &HashMap<String, String>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    let mut keys: Vec<&String> = r.keys().collect();
    keys.sort();
    for k in keys {
        let v = &r[k];
        let value = match k.as_str() {
            "id" | "hits" | "priority" => v
                .parse::<i64>()
                .map(Into::into)
                .unwrap_or_else(|_| v.clone().into()),
            "enabled" => (v == "true").into(),
            "ops" => v
                .split(',')
                .map(|s| serde_json::Value::from(s.to_string()))
                .collect(),
            _ => v.clone().into(),
        };
        m.insert(k.clone(), value);
    }
    m.into()
}

fn table(rules: &[HashMap<String, String>]) -> String {
    let cols = [
        "id", "action", "ops", "exe", "user", "addr", "ports", "proto", "duration", "priority",
        "enabled", "hits", "comment",
    ];
    let cell = |r: &HashMap<String, String>, c: &str| -> String {
        let v = match c {
            "user" => r.get("user_name").or(r.get("user")).cloned(),
            "ops" => r.get("ops").cloned().or(Some("any".into())),
            _ => r.get(c).cloned(),
        }
        .unwrap_or_else(|| "-".into());
        // one line per rule, whatever a comment holds
        v.chars()
            .map(|ch| if ch.is_control() { ' ' } else { ch })
            .take(40)
            .collect()
    };
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| cols.iter().map(|c| cell(r, c)).collect())
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<String>| {
        let mut l = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        l.truncate(l.trim_end().len());
        l + "\n"
    };
    out.push_str(&line(cols.iter().map(|c| c.to_uppercase()).collect()));
    for r in rows {
        out.push_str(&line(r));
    }
    if rules.is_empty() {
        out.push_str("(no rules: every op gets the default policy; see `netev rules default`)\n");
    }
    out
}
