//! The configuration file, so a provider can ship a locked-down agent (for example
//! `block-commands = file-write,route-add`) without editing the service's command line.
//!
//! Format: one `key = value` per line, keys named like the long flags (`debug = true`
//! for a switch), `#` starts a comment. qemu-ga's file is read the same way: its
//! `[general]` group header is skipped, its key names are the flags' aliases
//! (`statedir`, `logfile`, `verbose`, `daemon`, `block-rpcs`, ...), and its lists may be
//! separated by `;` as GLib writes them. The settings are turned into flags placed
//! before the command line's own, so a flag given on the command line wins.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::cli::{invoked_as_qemu_ga, normalize_args, Cli};

/// Read when present and no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/phoenix-ga.conf";

/// qemu-ga's file, read too when the agent was started as qemu-ga (unless `QGA_CONF`
/// names another).
pub const QEMU_GA_PATH: &str = "/etc/qemu/qemu-ga.conf";

/// The program's arguments with the configuration files' settings put in front.
pub fn args(argv: Vec<String>) -> Result<Vec<String>, String> {
    let argv = normalize_args(argv);
    let files: Vec<(PathBuf, bool)> = match explicit_path(&argv) {
        Some(p) => vec![(p, true)],
        None => {
            let mut files = vec![(PathBuf::from(DEFAULT_PATH), false)];
            if argv.first().is_some_and(|a| invoked_as_qemu_ga(a)) {
                match std::env::var_os("QGA_CONF") {
                    Some(p) => files.push((PathBuf::from(p), true)),
                    None => files.push((PathBuf::from(QEMU_GA_PATH), false)),
                }
            }
            files
        }
    };
    let mut from_files = Vec::new();
    for (path, required) in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        from_files.extend(parse(&text, &path)?);
    }
    let mut out = Vec::with_capacity(argv.len() + from_files.len());
    let mut it = argv.into_iter();
    out.extend(it.next());
    out.extend(from_files);
    out.extend(it);
    Ok(out)
}

fn explicit_path(argv: &[String]) -> Option<PathBuf> {
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--config" || a == "-c" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=").or_else(|| a.strip_prefix("-c")) {
            return Some(PathBuf::from(v.trim_start_matches('=')));
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
        if line.is_empty() || (line.starts_with('[') && line.ends_with(']')) {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let (key, value) = line
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
            .ok_or_else(|| format!("{}: expected `key = value`", at()))?;
        let arg = cmd
            .get_arguments()
            .filter(|a| !matches!(a.get_long(), Some("config" | "version" | "dump-conf")))
            .find(|a| {
                a.get_long() == Some(key)
                    || a.get_all_aliases().is_some_and(|all| all.contains(&key))
            })
            .ok_or_else(|| format!("{}: unknown setting \"{key}\"", at()))?;
        let long = arg.get_long().unwrap_or(key);
        if arg.get_action().takes_values() {
            let value = if arg.get_value_delimiter() == Some(',') {
                let items: Vec<&str> = value
                    .split([',', ';'])
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .collect();
                if items.is_empty() {
                    // qemu-ga's `-D` writes `allow-rpcs=` for no list at all.
                    continue;
                }
                items.join(",")
            } else {
                value.to_string()
            };
            flags.push(format!("--{long}={value}"));
        } else {
            match value {
                "true" | "yes" | "1" => flags.push(format!("--{long}")),
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
    fn qemu_ga_files_are_read_as_they_are() {
        // What `qemu-ga -D` writes.
        let conf = "[general]\ndaemon=false\nmethod=unix-listen\npath=/run/x.sock\n\
                    pidfile=/run/qga.pid\nfsfreeze-hook=/etc/qemu/fsfreeze-hook\n\
                    statedir=/run/st\nverbose=true\nretry-path=false\n\
                    block-rpcs=guest-exec;guest-file-open\nallow-rpcs=\n";
        let c = cli(conf, &[]).unwrap();
        assert_eq!(c.method, super::super::Method::UnixListen);
        assert_eq!(c.state_dir, PathBuf::from("/run/st"));
        assert!(c.debug && !c.daemonize && !c.retry_path);
        assert_eq!(c.block_rpcs, ["guest-exec", "guest-file-open"]);
        assert_eq!(c.allow_rpcs, None);
        assert_eq!(c.pidfile, Some(PathBuf::from("/run/qga.pid")));
        assert_eq!(
            c.fsfreeze_hook,
            Some(PathBuf::from("/etc/qemu/fsfreeze-hook"))
        );
        // And -D's own output reads back to the same settings.
        let again = cli(&c.dump(), &[]).unwrap();
        assert_eq!(again.dump(), c.dump());
    }

    #[test]
    fn vsock_settings() {
        let c = cli(
            "method = vsock-listen\npath = -1:1023\nvsock = 5:qga; 6\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.method, super::super::Method::VsockListen);
        assert_eq!(c.path(), PathBuf::from("-1:1023"));
        let ports: Vec<u32> = c.vsock.iter().map(|v| v.port).collect();
        assert_eq!(ports, [5, 6]);
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let e = args(vec!["x".into(), "--config=/nonexistent/ga.conf".into()]).unwrap_err();
        assert!(e.starts_with("/nonexistent/ga.conf: "), "{e}");
    }
}
