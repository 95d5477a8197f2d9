//! `netev rules …`: the rules in netevd, over D-Bus.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Subcommand;
use netev_event::Op;

use crate::bus::{connect, explain, runtime, BusChoice, Failure};

// parsed once per run: the size of `Add` costs nothing worth a box
#[allow(clippy::large_enum_variant)]
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
        /// Pin the rule to the executable's content: sha256:<64 hex digits>
        /// (as `sha256sum` prints them), or `current` for the SHA-256 of the
        /// --exe file as it is now (read here, by netev). Needs an exact
        /// --exe path. The rule matches only while the binary at that path
        /// is the version hashed; netevd checks it in the kernel at every
        /// call (docs/rules.md, "Content").
        #[arg(long, value_name = "HASH")]
        exe_hash: Option<String>,
        /// What a changed binary at --exe gets instead of this rule: ask or
        /// deny (needs --exe-hash). Unset: the rule just does not match it,
        /// and the next rule or the default policy decides.
        #[arg(long, value_name = "ACTION")]
        exe_changed: Option<String>,
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
    let changes = match &cmd {
        RulesCommand::List { .. } | RulesCommand::Export { .. } => false,
        RulesCommand::Default { op, action, .. } => op.is_some() || action.is_some(),
        _ => true,
    };
    // polkit may ask the user to authenticate (docs/dbus.md, Access control)
    let _agent = changes.then(|| crate::bus::tty_agent(bus));
    let e = |err| explain(bus, err);
    match cmd {
        RulesCommand::List { json } => {
            let rules = d.list_rules().await.map_err(e)?;
            if json {
                for r in &rules {
                    println!("{}", netev_event::display::to_json(&to_json(r)));
                }
            } else {
                print!("{}", table(&rules));
            }
        }
        RulesCommand::Add { action, op, exe, exe_hash, exe_changed, user, family, proto, addr, port, duration, priority, comment, disabled } => {
            let exe_hash = match exe_hash.as_deref() {
                Some("current") => Some(current_hash(exe.as_deref())?),
                other => other.map(str::to_string),
            };
            let ops = op.iter().map(|o| o.name()).collect::<Vec<_>>().join(",");
            let prio = priority.to_string();
            let mut f: HashMap<&str, &str> = HashMap::new();
            f.insert("action", &action);
            f.insert("duration", &duration);
            f.insert("priority", &prio);
            if !ops.is_empty() {
                f.insert("ops", &ops);
            }
            for (k, v) in [("exe", &exe), ("exe_hash", &exe_hash), ("exe_changed", &exe_changed), ("user", &user), ("family", &family), ("proto", &proto), ("addr", &addr), ("ports", &port), ("comment", &comment)] {
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
                    println!("{}", netev_event::display::to_json(&p));
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

/// `--exe-hash current`: the `sha256:` form of the SHA-256 of the --exe
/// file, found as netevd finds it (only root-owned symlinks followed).
fn current_hash(exe: Option<&str>) -> Result<String, Failure> {
    let exe = exe.ok_or_else(|| {
        fail("--exe-hash current hashes the --exe file: give --exe with an exact path".into())
    })?;
    if exe
        .parse::<netev_rules::ExeMatch>()
        .is_ok_and(|m| m.is_glob())
    {
        return Err(fail(format!(
            "--exe-hash current: {exe} is a glob; a content names one file: give its exact path"
        )));
    }
    let path = root_canonical(std::path::Path::new(exe))
        .map_err(|why| fail(format!("--exe-hash current: {why}")))?;
    let hash = sha256_file(&path).map_err(|err| {
        fail(format!(
            "--exe-hash current: cannot read {}: {err}",
            path.display()
        ))
    })?;
    Ok(hash)
}

/// `path` with its symlinks resolved, as netevd resolves an exe rule's
/// path: only links root owns are followed (a user's link could point
/// anywhere), and the file must exist and be a regular file.
fn root_canonical(path: &std::path::Path) -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    use std::path::{Component, PathBuf};
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push = |todo: &mut Vec<std::ffi::OsString>, p: &std::path::Path| {
        for c in p.components().rev() {
            match c {
                Component::Normal(s) => todo.push(s.to_os_string()),
                Component::ParentDir => todo.push("..".into()),
                _ => {}
            }
        }
    };
    push(&mut todo, path);
    let mut out = PathBuf::from("/");
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&c);
        let md =
            std::fs::symlink_metadata(&next).map_err(|e| format!("{}: {e}", next.display()))?;
        if md.file_type().is_symlink() {
            if md.uid() != 0 {
                return Err(format!(
                    "{} is a symbolic link owned by uid {}, not root: netev does not follow it; \
                     name the real file",
                    next.display(),
                    md.uid()
                ));
            }
            hops += 1;
            if hops > 40 {
                return Err(format!(
                    "{}: too many levels of symbolic links",
                    path.display()
                ));
            }
            let target =
                std::fs::read_link(&next).map_err(|e| format!("{}: {e}", next.display()))?;
            if target.is_absolute() {
                out = PathBuf::from("/");
            }
            push(&mut todo, &target);
        } else if !todo.is_empty() && !md.is_dir() {
            return Err(format!("{}: not a directory", next.display()));
        } else if todo.is_empty() && !md.is_file() {
            return Err(format!("{} is not a regular file", next.display()));
        } else {
            out = next;
        }
    }
    Ok(out)
}

/// `sha256:` and the hex SHA-256 of the file at `path`, read in chunks.
fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let digest: [u8; 32] = hasher.finalize().into();
    Ok(netev_rules::ExeHash(digest).to_string())
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
        // one line per rule, whatever a field holds; a long comment is cut
        // (visibly), nothing else is
        let v = netev_event::display::escape(&v).into_owned();
        if c == "comment" && v.chars().count() > 40 {
            v.chars().take(39).chain(['…']).collect()
        } else {
            v
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_hash_reads_the_exe_file() {
        let t = std::env::temp_dir().join(format!("netev-hash-{}", std::process::id()));
        std::fs::create_dir_all(&t).unwrap();
        let f = t.join("prog");
        std::fs::write(&f, b"test").unwrap();
        let f_s = f.to_str().unwrap();
        assert_eq!(
            current_hash(Some(f_s)).unwrap(),
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        // through `..`, as netevd resolves it
        let dotted = format!(
            "{}/../{}/prog",
            t.display(),
            t.file_name().unwrap().to_str().unwrap()
        );
        assert!(current_hash(Some(&dotted)).is_ok());
        let no_exe = current_hash(None).unwrap_err().message;
        assert!(no_exe.contains("give --exe"), "{no_exe}");
        let glob = current_hash(Some("/usr/bin/*")).unwrap_err().message;
        assert!(glob.contains("glob"), "{glob}");
        let missing = current_hash(Some(&format!("{}/none", t.display())))
            .unwrap_err()
            .message;
        assert!(missing.contains("none"), "{missing}");
        let dir = current_hash(Some(t.to_str().unwrap())).unwrap_err().message;
        assert!(dir.contains("not a regular file"), "{dir}");
        // a user's link is not followed; a root-owned one is
        std::os::unix::fs::symlink(&f, t.join("link")).unwrap();
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            let link = t.join("link");
            assert!(current_hash(link.to_str()).is_ok());
            std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
            let user = current_hash(link.to_str()).unwrap_err().message;
            assert!(user.contains("owned by uid 65534"), "{user}");
        }
        std::fs::remove_dir_all(&t).unwrap();
    }
}
