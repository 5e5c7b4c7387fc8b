//! Many guests at once: `phoenix-ctl -s vm1.sock -s vm2.sock ping`, or a glob
//! (`-s '/run/vms/*/agent.sock'`, `-s 'hvsock:/run/vms/*/vm.vsock:1023'`), runs the
//! command on every guest in parallel, at most `--parallel N` at a time.
//!
//! Each guest gets its own `phoenix-ctl` process (this binary again, with one `-s`), so
//! each command runs exactly as it does against one guest, with its own connection,
//! output and exit status; this module only starts them, bounds them and prints what
//! each said, in the order the targets were given (the matches of a glob sorted),
//! under the guest's name: `== vm1 ==` before its output, or one JSON line per guest
//! with `--json`. The exit status is the worst of the guests' (0 when all succeeded).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::cli::{Cli, Cmd};
use crate::{Result, Usage, EXIT_UNREACHABLE};

/// One guest to run the command on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// What its results are printed under: the parts of the path a glob's wildcards
    /// matched (`vm1` for `/run/vms/*/agent.sock`), else the target as given.
    pub name: String,
    /// The target passed to the child's `-s`; `None` for a pattern that matched
    /// nothing (reported as a failed guest).
    pub target: Option<OsString>,
}

/// Whether the command line asks for many guests: more than one `-s`, or a glob.
pub fn wanted(cli: &Cli) -> bool {
    cli.socket.len() > 1 || cli.socket.iter().any(|s| is_glob(s.as_os_str()))
}

/// Runs the command on every guest; `Ok(status)` is the exit status to use.
pub fn run(cli: &Cli) -> Result<u8> {
    if cli.parallel == 0 {
        return Err(Usage("--parallel must be at least 1".into()).into());
    }
    refuse_single_guest_commands(&cli.command)?;
    let guests: Vec<Guest> = cli
        .socket
        .iter()
        .flat_map(|s| expand(s.as_os_str()))
        .collect();
    let args = child_args(std::env::args_os().skip(1));
    let exe = std::env::current_exe()?;

    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
    let workers = cli.parallel.min(guests.len());
    let mut failed = Vec::new();
    let mut worst = 0u8;
    std::thread::scope(|s| -> Result {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, guests, args, exe) = (&next, &guests, &args, &exe);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(guest) = guests.get(i) else { break };
                let outcome = run_one(exe, args, guest);
                if tx.send((i, outcome)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Printed in the targets' order as soon as each one's turn comes.
        let mut done: Vec<Option<Outcome>> = guests.iter().map(|_| None).collect();
        let mut shown = 0;
        for (i, outcome) in rx {
            done[i] = Some(outcome);
            while let Some(outcome) = done.get_mut(shown).and_then(Option::take) {
                let guest = &guests[shown];
                print(guest, &outcome, cli.json)?;
                if outcome.status != 0 {
                    failed.push(guest.name.clone());
                    worst = worst.max(outcome.status);
                }
                shown += 1;
            }
        }
        Ok(())
    })?;
    if !failed.is_empty() {
        eprintln!(
            "phoenix-ctl: {} of {} guests failed: {}",
            failed.len(),
            guests.len(),
            failed.join(" ")
        );
    }
    Ok(worst)
}

/// What one guest's `phoenix-ctl` did.
#[derive(Debug)]
struct Outcome {
    status: u8,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn run_one(exe: &Path, args: &[OsString], guest: &Guest) -> Outcome {
    let Some(target) = &guest.target else {
        return Outcome {
            status: EXIT_UNREACHABLE,
            stdout: Vec::new(),
            stderr: format!("phoenix-ctl: no socket matches {}\n", guest.name).into_bytes(),
        };
    };
    let out = Command::new(exe)
        .arg("--socket")
        .arg(target)
        .args(args)
        .env_remove("PHOENIX_SOCKET")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(Output {
            status,
            stdout,
            stderr,
        }) => Outcome {
            // Killed by a signal: counted as an error.
            status: status
                .code()
                .map_or(1, |c| u8::try_from(c).unwrap_or(u8::MAX)),
            stdout,
            stderr,
        },
        Err(e) => Outcome {
            status: 1,
            stdout: Vec::new(),
            stderr: format!("phoenix-ctl: start {}: {e}\n", exe.display()).into_bytes(),
        },
    }
}

/// Prints one guest's result: `== NAME ==` then its output (its errors on stderr), or
/// with `--json` one line `{"guest", "target", "ok", "status", "result", "error"}`
/// where `result` is the command's own JSON output.
fn print(guest: &Guest, outcome: &Outcome, json: bool) -> Result {
    let stdout = String::from_utf8_lossy(&outcome.stdout);
    let stderr = String::from_utf8_lossy(&outcome.stderr);
    if json {
        let result = match stdout.trim() {
            "" => serde_json::Value::Null,
            text => serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::Value::String(text.to_string())),
        };
        let error = stderr
            .trim()
            .strip_prefix("phoenix-ctl: ")
            .unwrap_or(stderr.trim())
            .to_string();
        let line = serde_json::json!({
            "guest": guest.name,
            "target": guest.target.as_ref().map(|t| t.to_string_lossy()),
            "ok": outcome.status == 0,
            "status": outcome.status,
            "result": result,
            "error": (!error.is_empty()).then_some(error),
        });
        crate::output::json(&line)?;
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "== {} ==", guest.name)?;
    out.write_all(&outcome.stdout)?;
    out.flush()?;
    drop(out);
    let mut err = std::io::stderr().lock();
    err.write_all(&outcome.stderr)?;
    err.flush()?;
    Ok(())
}

/// Commands that make no sense on many guests at once: a `cp` from or to stdin or
/// stdout, or down to one local file (each guest would overwrite the last).
fn refuse_single_guest_commands(cmd: &Cmd) -> Result {
    if let Cmd::Cp { src, dst, .. } = cmd {
        if src == "-" || dst == "-" {
            return Err(Usage("cp with `-` takes one guest".into()).into());
        }
        if src.starts_with("guest:") {
            return Err(Usage(
                "cp from the guest takes one guest (each would overwrite the same local file)"
                    .into(),
            )
            .into());
        }
    }
    if matches!(cmd, Cmd::Completions { .. }) {
        return Err(Usage("completions need no guest".into()).into());
    }
    Ok(())
}

/// The command line for each guest's `phoenix-ctl`: ours without the `-s`/`--socket`
/// options (the guest's own `--socket` goes first) and without `--parallel`.
fn child_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            out.push(arg);
            out.extend(args);
            break;
        }
        if text == "-s" || text == "--socket" || text == "--parallel" {
            args.next();
            continue;
        }
        let glued = ["--socket=", "--parallel="]
            .iter()
            .any(|p| text.starts_with(p))
            || (text.starts_with("-s") && !text.starts_with("--"));
        if glued {
            continue;
        }
        out.push(arg);
    }
    out
}

/// Whether `s` holds a wildcard (`*`, `?` or `[`).
fn is_glob(s: &OsStr) -> bool {
    s.to_string_lossy().contains(['*', '?', '['])
}

/// A target as given, or the sorted matches of a glob in its path (in a `hvsock:`
/// target, the socket's path). A pattern that matches nothing is one guest without a
/// target.
pub fn expand(target: &OsStr) -> Vec<Guest> {
    let text = target.to_string_lossy();
    if !is_glob(target) {
        return vec![Guest {
            name: text.into_owned(),
            target: Some(target.to_owned()),
        }];
    }
    // hvsock:PATH:PORT: the path is the pattern.
    let (prefix, pattern, suffix) = match text.strip_prefix("hvsock:") {
        Some(rest) => match rest.rsplit_once(':') {
            Some((path, port)) => ("hvsock:", path.to_string(), format!(":{port}")),
            None => ("", text.to_string(), String::new()),
        },
        None => ("", text.to_string(), String::new()),
    };
    let matches = glob(&pattern);
    if matches.is_empty() {
        return vec![Guest {
            name: text.into_owned(),
            target: None,
        }];
    }
    matches
        .into_iter()
        .map(|(path, wild)| Guest {
            name: if wild.is_empty() {
                path.display().to_string()
            } else {
                wild.join("/")
            },
            target: Some(OsString::from(format!(
                "{prefix}{}{suffix}",
                path.display()
            ))),
        })
        .collect()
}

/// The paths matching `pattern` (wildcards within path components, as the shell's),
/// sorted, each with the components its wildcards matched.
fn glob(pattern: &str) -> Vec<(PathBuf, Vec<String>)> {
    let absolute = pattern.starts_with('/');
    let mut found = vec![(PathBuf::from(if absolute { "/" } else { "." }), Vec::new())];
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for part in &parts {
        let mut next = Vec::new();
        for (dir, wild) in found {
            if !is_glob(OsStr::new(part)) {
                let path = dir.join(part);
                if path.symlink_metadata().is_ok() {
                    next.push((path, wild));
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| (!n.starts_with('.') || part.starts_with('.')) && matches(part, n))
                .collect();
            names.sort();
            for name in names {
                let mut wild = wild.clone();
                wild.push(name.clone());
                next.push((dir.join(&name), wild));
            }
        }
        found = next;
    }
    if !absolute {
        for (path, _) in &mut found {
            if let Ok(rest) = path.strip_prefix(".") {
                *path = rest.to_path_buf();
            }
        }
    }
    found
}

/// Whether `name` matches the shell pattern `pat` (`*`, `?`, `[abc]`, `[a-z]`,
/// `[!a]`).
fn matches(pat: &str, name: &str) -> bool {
    let pat: Vec<char> = pat.chars().collect();
    let name: Vec<char> = name.chars().collect();
    match_from(&pat, &name)
}

fn match_from(pat: &[char], name: &[char]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some('*') => (0..=name.len()).any(|skip| match_from(&pat[1..], &name[skip..])),
        Some('?') => !name.is_empty() && match_from(&pat[1..], &name[1..]),
        Some('[') => {
            let Some(&c) = name.first() else { return false };
            match class(&pat[1..], c) {
                Some((hit, len)) => hit && match_from(&pat[1 + len..], &name[1..]),
                // No closing `]`: a plain `[`.
                None => c == '[' && match_from(&pat[1..], &name[1..]),
            }
        }
        Some(&p) => name.first() == Some(&p) && match_from(&pat[1..], &name[1..]),
    }
}

/// A bracket class after its `[`: whether `c` is in it, and its length with the `]`.
fn class(pat: &[char], c: char) -> Option<(bool, usize)> {
    let (negate, start) = match pat.first() {
        Some('!' | '^') => (true, 1),
        _ => (false, 0),
    };
    let mut i = start;
    let mut hit = false;
    while i < pat.len() {
        if pat[i] == ']' && i > start {
            return Some((hit != negate, i + 1));
        }
        if i + 2 < pat.len() && pat[i + 1] == '-' && pat[i + 2] != ']' {
            hit |= pat[i] <= c && c <= pat[i + 2];
            i += 3;
        } else {
            hit |= pat[i] == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn child_args_drop_the_sockets_and_the_bound() {
        let got = child_args(os(&[
            "-s",
            "a",
            "--socket=b",
            "-sc",
            "--json",
            "--parallel",
            "4",
            "--socket",
            "d",
            "cat",
            "--",
            "-s",
        ]));
        assert_eq!(got, os(&["--json", "cat", "--", "-s"]));
    }

    #[test]
    fn shell_patterns() {
        assert!(matches("*", "vm1"));
        assert!(matches("vm?", "vm1"));
        assert!(!matches("vm?", "vm10"));
        assert!(matches("vm[0-9]", "vm7"));
        assert!(!matches("vm[!0-9]", "vm7"));
        assert!(matches("*.sock", "a.b.sock"));
        assert!(!matches("*.sock", "a.sockx"));
        assert!(matches("[", "["));
        assert!(matches("a*b*c", "aXXbYYc"));
    }

    #[test]
    fn globs_name_guests_by_their_wildcards() {
        let dir = tempfile::tempdir().unwrap();
        for vm in ["vm2", "vm1", "other"] {
            std::fs::create_dir(dir.path().join(vm)).unwrap();
            std::fs::write(dir.path().join(vm).join("agent.sock"), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("vm3")).unwrap();
        let pattern = format!("{}/vm*/agent.sock", dir.path().display());
        let got = expand(OsStr::new(&pattern));
        let names: Vec<&str> = got.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["vm1", "vm2"]);
        assert_eq!(
            got[0].target,
            Some(dir.path().join("vm1/agent.sock").into_os_string())
        );
        let hv = format!("hvsock:{}/*/agent.sock:1023", dir.path().display());
        let got = expand(OsStr::new(&hv));
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0].target,
            Some(OsString::from(format!(
                "hvsock:{}/other/agent.sock:1023",
                dir.path().display()
            )))
        );
        let none = format!("{}/nothing-*", dir.path().display());
        assert_eq!(
            expand(OsStr::new(&none)),
            [Guest {
                name: none.clone(),
                target: None
            }]
        );
        assert_eq!(expand(OsStr::new("vsock:3:1023"))[0].name, "vsock:3:1023");
    }
}
