//! The configuration file: `--check-config`, and SIGHUP reloading the
//! policy and the rules file, or refusing a bad file and keeping what runs.

use std::path::Path;
use std::process::Command;

use netev_tests::OutputBounded;
use netev_tests::{root_or_skip, wait_until, workspace_bin, Daemon, TestCgroup};
use serde_json::json;

use crate::rules::{connect, free_port, probe_in};

fn deny_connect_rule(port: u16) -> String {
    format!(
        "[[rule]]\naction = \"deny\"\nops = \"connect\"\naddr = \"127.0.0.1\"\nports = {port}\n"
    )
}

/// Sends SIGHUP and waits for the daemon to say how it went (the n-th time).
fn reload(daemon: &Daemon, n: usize) -> String {
    let outcomes = |log: &str| {
        log.lines()
            .filter(|l| {
                l.contains("configuration and rules reloaded")
                    || l.contains("configuration not reloaded")
            })
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    daemon.signal(libc::SIGHUP);
    wait_until("the daemon's answer to SIGHUP", || {
        outcomes(&daemon.log()).len() >= n
    });
    outcomes(&daemon.log())[n - 1].clone()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn sighup_applies_policy_and_rules_file_and_a_bad_reload_keeps_the_running_ones() {
    if !root_or_skip("sighup_applies_policy_and_rules_file_and_a_bad_reload_keeps_the_running_ones")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (conf, rules) = (dir.path().join("netev.toml"), dir.path().join("rules.toml"));
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let good = format!(
        "[policy]\nconnect = \"allow\"\n[rules]\nfile = \"{}\"\n",
        rules.display()
    );
    write(&conf, &good);
    write(&rules, &deny_connect_rule(p1));
    let cg = TestCgroup::new("config-reload");
    let daemon = Daemon::start(&cg, &["--config", conf.to_str().unwrap()]);
    let ports = json!([
        connect("127.0.0.1", p1),
        connect("127.0.0.1", p2),
        connect("127.0.0.1", p3)
    ]);
    assert_eq!(
        probe_in(&cg, &ports),
        ["EPERM", "ECONNREFUSED", "ECONNREFUSED"],
        "the rules file is in force from the start"
    );

    // a new rules file replaces the old rules
    write(&rules, &deny_connect_rule(p2));
    let said = reload(&daemon, 1);
    assert!(said.contains("configuration and rules reloaded"), "{said}");
    assert_eq!(
        probe_in(&cg, &ports),
        ["ECONNREFUSED", "EPERM", "ECONNREFUSED"]
    );

    // the policy in the file applies on reload
    write(&conf, &good.replace("\"allow\"", "\"deny\""));
    let said = reload(&daemon, 2);
    assert!(said.contains("configuration and rules reloaded"), "{said}");
    assert_eq!(probe_in(&cg, &ports), ["EPERM", "EPERM", "EPERM"]);

    // a typo in the file: refused, with the line and key; nothing changes
    write(
        &conf,
        &good.replace("connect = \"allow\"", "conect = \"allow\""),
    );
    let said = reload(&daemon, 3);
    assert!(said.contains("configuration not reloaded"), "{said}");
    assert!(
        said.contains("netev.toml:2: policy.conect: unknown key"),
        "{said}"
    );
    assert_eq!(
        probe_in(&cg, &ports),
        ["EPERM", "EPERM", "EPERM"],
        "the running policy stays"
    );

    // a good config but a bad rules file: the whole reload is refused
    write(&conf, &good);
    write(
        &rules,
        &format!("{}\n[[rule]]\naction = \"maybe\"\n", deny_connect_rule(p3)),
    );
    let said = reload(&daemon, 4);
    assert!(said.contains("configuration not reloaded"), "{said}");
    assert!(said.contains("rules.toml:"), "names the rules file: {said}");
    assert_eq!(
        probe_in(&cg, &ports),
        ["EPERM", "EPERM", "EPERM"],
        "neither the policy nor the rules changed"
    );
    assert!(daemon.stop().success);
}

#[test]
fn check_config_names_file_line_and_key_and_prints_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("netev.toml");
    let check = |extra: &[&str]| {
        Command::new(workspace_bin("netevd"))
            .args(["--check-config", "--config"])
            .arg(&conf)
            .args(extra)
            .output_bounded()
    };
    write(&conf, "bus = \"none\"\n\n[store]\nmax_rows = \"many\"\n");
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("netev.toml:4: store.max_rows: expected a whole number"),
        "{err}"
    );

    write(&conf, "bus = \"none\"\n[store]\nmax_rows = 5\n");
    let out = check(&["--store-max-rows", "7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("bus = none"), "{said}");
    assert!(said.contains("store.max_rows = 7"), "the flag wins: {said}");

    let out = Command::new(workspace_bin("netevd"))
        .args(["--check-config", "--config", "/nonexistent/netev.toml"])
        .output_bounded();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read it"));
}
