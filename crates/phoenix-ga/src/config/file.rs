//! The configuration file, so a provider can ship a locked-down agent (for example
//! `block-commands = file-write,route-add`) without editing the service's command line.
//!
//! Format: one `key = value` per line, keys named like the long flags (`debug = true`
//! for a switch), `#` starts a comment. The settings are turned into flags placed before
//! the command line's own, so a flag given on the command line wins.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::cli::{normalize_args, Cli};

/// Read when present and no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/phoenix-ga.conf";

/// The program's arguments with the configuration file's settings put in front.
pub fn args(argv: Vec<String>) -> Result<Vec<String>, String> {
    let argv = normalize_args(argv);
    let (path, required) = match explicit_path(&argv) {
        Some(p) => (p, true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let from_file = parse(&text, &path)?;
    let mut out = Vec::with_capacity(argv.len() + from_file.len());
    let mut it = argv.into_iter();
    out.extend(it.next());
    out.extend(from_file);
    out.extend(it);
    Ok(out)
}

fn explicit_path(argv: &[String]) -> Option<PathBuf> {
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// Turns the file's lines into `--key=value` flags, rejecting unknown keys.
fn parse(text: &str, path: &Path) -> Result<Vec<String>, String> {
    let cmd = Cli::command();
    let mut flags = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let (key, value) = line
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
            .ok_or_else(|| format!("{}: expected `key = value`", at()))?;
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key) && key != "config" && key != "version")
            .ok_or_else(|| format!("{}: unknown setting \"{key}\"", at()))?;
        if arg.get_action().takes_values() {
            let value = if arg.get_value_delimiter() == Some(',') {
                value
                    .split(',')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                value.to_string()
            };
            flags.push(format!("--{key}={value}"));
        } else {
            match value {
                "true" | "yes" | "1" => flags.push(format!("--{key}")),
                "false" | "no" | "0" => {}
                _ => return Err(format!("{}: \"{key}\" takes true or false", at())),
            }
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(conf: &str, argv: &[&str]) -> Result<Cli, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ga.conf");
        std::fs::write(&path, conf).unwrap();
        let mut v: Vec<String> = vec!["phoenix-ga".into(), "--config".into()];
        v.push(path.display().to_string());
        v.extend(argv.iter().map(|s| s.to_string()));
        let args = args(v)?;
        Cli::try_parse_from(args).map_err(|e| e.to_string())
    }

    #[test]
    fn settings_become_flags_and_the_command_line_wins() {
        let c = cli(
            "# locked down\nblock-commands = file-write, route-add\ndebug = true\nmax-handles=8\n",
            &["--max-handles", "16"],
        )
        .unwrap();
        assert_eq!(c.block_commands, vec!["file-write", "route-add"]);
        assert!(c.debug);
        assert_eq!(c.max_handles, 16);
    }

    #[test]
    fn bad_files_are_errors_naming_the_line() {
        let e = cli("frobnicate = 1\n", &[]).unwrap_err();
        assert!(e.ends_with(":1: unknown setting \"frobnicate\""), "{e}");
        let e = cli("\n\njust words\n", &[]).unwrap_err();
        assert!(e.ends_with(":3: expected `key = value`"), "{e}");
        let e = cli("debug = maybe\n", &[]).unwrap_err();
        assert!(e.contains("takes true or false"), "{e}");
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let e = args(vec!["x".into(), "--config=/nonexistent/ga.conf".into()]).unwrap_err();
        assert!(e.starts_with("/nonexistent/ga.conf: "), "{e}");
    }
}
