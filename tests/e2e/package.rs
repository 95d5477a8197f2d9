//! The Debian packages (netev, netev-gtk): built by scripts/package.sh, installed with dpkg,
//! files in place, the installed programs run, the unit verifies, and it
//! removes and purges cleanly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use netev_tests::root_or_skip;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository")
        .to_path_buf()
}

/// Runs a command to completion under `timeout` (packaging compresses
/// ~300 MB of debug binaries: slower than other commands on a busy machine).
fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new("timeout")
        .args(["--kill-after=10", "600", program])
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert_ne!(out.status.code(), Some(124), "{program} {args:?} timed out");
    out
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Purges the package on every exit path.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["-P", "netev-gtk", "netev"])
            .output();
    }
}

/// Puts netev's polkit actions back (as scripts/setup.sh installs them)
/// once the package is purged.
struct RestoreActions(std::path::PathBuf);

impl Drop for RestoreActions {
    fn drop(&mut self) {
        let _ = netev_testsupport::polkit::install_actions(&self.0);
    }
}

#[test]
fn the_debian_package_installs_runs_and_removes_cleanly() {
    if !root_or_skip("the_debian_package_installs_runs_and_removes_cleanly") {
        return;
    }
    // the package replaces, then removes, netev's polkit actions: not
    // while a polkit test runs, and put back afterwards
    let policy =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/polkit-1/actions/org.netev.policy");
    let _actions = netev_testsupport::polkit::ActionsLock::take(true);
    let _restore = RestoreActions(policy);
    let built = run("env", &["PROFILE=dev", "scripts/package.sh"]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "package.sh failed:\n{stderr}");
    let debs: Vec<String> = String::from_utf8_lossy(&built.stdout)
        .lines()
        .filter(|l| l.trim().ends_with(".deb"))
        .map(|l| l.trim().to_string())
        .collect();
    assert_eq!(
        debs.len(),
        2,
        "package.sh names two packages:\n{debs:?}\n{stderr}"
    );
    assert!(
        debs[0].contains("/netev_") && debs[1].contains("/netev-gtk_"),
        "{debs:?}"
    );

    let installed = Installed;
    let out = run("dpkg", &["-i", &debs[0], &debs[1]]);
    assert!(
        out.status.success(),
        "dpkg -i: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let files = [
        "/usr/sbin/netevd",
        "/usr/bin/netev",
        "/usr/bin/netev-sql",
        "/etc/netev/netev.toml",
        "/usr/lib/systemd/system/netevd.service",
        "/usr/share/dbus-1/system.d/org.netev.Daemon1.conf",
        "/usr/share/polkit-1/actions/org.netev.policy",
        "/usr/lib/sysusers.d/netev.conf",
        "/usr/lib/tmpfiles.d/netev.conf",
        "/usr/share/man/man8/netevd.8.gz",
        "/usr/share/man/man1/netev.1.gz",
        "/usr/share/man/man1/netev-sql.1.gz",
        "/usr/share/bash-completion/completions/netev",
        "/usr/share/zsh/vendor-completions/_netev",
        "/usr/share/fish/vendor_completions.d/netev.fish",
        "/usr/share/doc/netev/operations.md",
        "/var/lib/netev",
        "/usr/bin/netev-gtk",
        "/usr/share/applications/netev-gtk.desktop",
        "/etc/xdg/autostart/netev-gtk.desktop",
        "/usr/share/man/man1/netev-gtk.1.gz",
    ];
    for f in files {
        assert!(Path::new(f).exists(), "{f} is missing after dpkg -i");
    }
    let group = ok("getent", &["group", "netev"]);
    assert!(group.starts_with("netev:"));

    // the installed programs run
    assert_eq!(
        ok("/usr/sbin/netevd", &["--version"]).trim(),
        "netevd 0.1.0"
    );
    let checked = ok("/usr/sbin/netevd", &["--check-config"]);
    assert!(
        checked.starts_with("/etc/netev/netev.toml: ok"),
        "{checked}"
    );
    let doctor = run("/usr/bin/netev", &["doctor", "--json"]);
    let checks: Vec<serde_json::Value> = String::from_utf8_lossy(&doctor.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let config = checks.iter().find(|c| c["name"] == "config").unwrap();
    assert_eq!(
        config["detail"], "/etc/netev/netev.toml is valid",
        "{config}"
    );
    assert_eq!(
        checks.iter().find(|c| c["name"] == "kernel").unwrap()["level"],
        "ok"
    );
    let man = ok("zcat", &["/usr/share/man/man8/netevd.8.gz"]);
    assert!(
        man.contains(".TH netevd 8") && man.contains("check\\-config"),
        "{man}"
    );

    // the unit as installed
    let verify = run(
        "systemd-analyze",
        &["verify", "/usr/lib/systemd/system/netevd.service"],
    );
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // remove: programs go, configuration stays; purge: everything
    ok("dpkg", &["-r", "netev-gtk", "netev"]);
    for f in [
        "/usr/sbin/netevd",
        "/usr/bin/netev",
        "/usr/lib/systemd/system/netevd.service",
        "/usr/bin/netev-gtk",
    ] {
        assert!(!Path::new(f).exists(), "{f} is left after dpkg -r");
    }
    assert!(
        Path::new("/etc/netev/netev.toml").exists(),
        "a conffile stays until purge"
    );
    ok("dpkg", &["-P", "netev-gtk", "netev"]);
    for f in [
        "/etc/netev",
        "/var/lib/netev",
        "/etc/xdg/autostart/netev-gtk.desktop",
    ] {
        assert!(!Path::new(f).exists(), "{f} is left after dpkg -P");
    }
    assert!(!run("dpkg", &["-s", "netev"]).status.success());
    assert!(!run("dpkg", &["-s", "netev-gtk"]).status.success());
    drop(installed);
}

/// The most exposure `systemd-analyze security` may rate the unit at.
const MAX_EXPOSURE: f64 = 2.5;

#[test]
fn the_unit_is_confined_to_an_exposure_of_at_most_2_5() {
    let out = run(
        "systemd-analyze",
        &["security", "--offline=true", "dist/systemd/netevd.service"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for netevd.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(
        level <= MAX_EXPOSURE,
        "dist/systemd/netevd.service rates {level}, more than {MAX_EXPOSURE}:\n{text}"
    );
}
