//! Man pages and shell completions straight from a program's clap
//! definition, so that they cannot drift from `--help`.
//!
//! Each program calls [`generate_if_asked`] first thing in `main`:
//! `PROGRAM --generate man|bash|zsh|fish` prints the page or the completion
//! script and exits. The flag is hidden from `--help`; `scripts/package.sh`
//! uses it to build the files the Debian package installs.

use std::io::Write;
use std::process::ExitCode;

/// What `--generate` can make.
pub const WHAT: &[&str] = &["man", "bash", "zsh", "fish"];

/// If the command line is `--generate WHAT`, writes it to stdout and
/// returns the exit code; else `None` and the program goes on.
/// `section` is the man section: 8 for the daemon, 1 for the rest.
pub fn generate_if_asked(
    command: impl FnOnce() -> clap::Command,
    section: &str,
) -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()?.to_str()? != "--generate" {
        return None;
    }
    let what = args.next().and_then(|w| w.into_string().ok());
    let mut out = std::io::stdout().lock();
    let result = match what.as_deref() {
        Some(what) => generate(command(), section, what, &mut out),
        None => Err(format!("--generate needs one of: {}", WHAT.join(", "))),
    };
    Some(
        match result.and_then(|()| out.flush().map_err(|e| e.to_string())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
    )
}

/// Writes the man page (`man`) or a completion script (`bash`, `zsh`,
/// `fish`) for `command`.
pub fn generate(
    mut command: clap::Command,
    section: &str,
    what: &str,
    out: &mut dyn Write,
) -> Result<(), String> {
    use clap_complete::{Generator, Shell};
    let shell = match what {
        "man" => {
            return clap_mangen::Man::new(command)
                .section(section.to_string())
                .render(out)
                .map_err(|e| format!("writing the man page: {e}"))
        }
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => {
            return Err(format!(
                "cannot generate {other:?}: use one of {}",
                WHAT.join(", ")
            ))
        }
    };
    let name = command.get_name().to_string();
    command.set_bin_name(name);
    command.build();
    shell
        .try_generate(&command, out)
        .map_err(|e| format!("writing the {what} completions: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> clap::Command {
        clap::Command::new("demo").about("A demo").arg(
            clap::Arg::new("store")
                .long("store")
                .help("Where events go"),
        )
    }

    #[test]
    fn man_page_and_completions_name_the_options() {
        let mut man = Vec::new();
        generate(demo(), "1", "man", &mut man).unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(man.contains(".TH demo 1"), "roff: {man}");
        assert!(man.contains("store") && man.contains("Where events go"));
        for shell in ["bash", "zsh", "fish"] {
            let mut out = Vec::new();
            generate(demo(), "1", shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            // fish spells a long option `-l store`
            assert!(
                text.contains("--store") || text.contains("-l store"),
                "{shell}: {text}"
            );
        }
        let e = generate(demo(), "1", "pdf", &mut Vec::new()).unwrap_err();
        assert!(e.contains("man, bash, zsh, fish"));
    }
}
