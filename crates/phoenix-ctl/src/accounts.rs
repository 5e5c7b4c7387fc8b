//! `passwd USER` and `ssh-keys list|add|remove USER [FILE]`: a guest user's password
//! and authorized ssh keys, through qemu-ga's commands (which phoenix-ga answers in
//! both dialects, and qemu-ga itself has).
//!
//! The password never goes on the command line (where `ps` would show it): it is read
//! from the terminal with echo off, twice, or from stdin when stdin is not a terminal
//! (`printf '%s\n' "$PW" | phoenix-ctl passwd alice`). With `--crypted`, a crypt(3)
//! hash is read from stdin instead and stored as it is.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::OnceLock;

use nix::libc;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
use phoenix_client::Client;

use crate::{output, Result, Usage};

/// A line read, overwritten when dropped.
struct Line(String);

impl Drop for Line {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// The first line of `input`, without its line end; `None` at end of input.
fn read_line(input: &mut dyn BufRead) -> io::Result<Option<Line>> {
    let mut line = Line(String::new());
    if input.read_line(&mut line.0)? == 0 {
        return Ok(None);
    }
    let end = line.0.trim_end_matches(['\n', '\r']).len();
    line.0.truncate(end);
    Ok(Some(line))
}

/// The terminal's settings, put back when dropped (also when reading fails).
struct EchoOff<'a> {
    tty: std::io::StdinLock<'a>,
    saved: Termios,
}

impl<'a> EchoOff<'a> {
    /// Turns echo off on the terminal on stdin; the newline the user types is still
    /// echoed (ECHONL), so the next prompt starts a line of its own. Until then a
    /// signal that ends the process (Ctrl-C, Ctrl-\\, a hang-up, `kill`) first puts the
    /// terminal's settings back ([`restore_and_die`]).
    fn new(tty: std::io::StdinLock<'a>) -> io::Result<Self> {
        let saved = termios::tcgetattr(tty.as_fd())?;
        let _ = SAVED.set(libc::termios::from(saved.clone()));
        let handler = SigAction::new(
            SigHandler::Handler(restore_and_die),
            SaFlags::SA_RESETHAND,
            SigSet::empty(),
        );
        for sig in ENDING {
            // SAFETY: the handler only calls async-signal-safe functions (tcsetattr,
            // raise) on data set before it is installed and never changed.
            unsafe { sigaction(sig, &handler) }.map_err(io::Error::from)?;
        }
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        termios::tcsetattr(tty.as_fd(), SetArg::TCSAFLUSH, &quiet)?;
        Ok(EchoOff { tty, saved })
    }

    /// Prompts on stderr and reads a line without echo.
    fn ask(&mut self, prompt: &str) -> Result<Line> {
        let mut err = io::stderr();
        err.write_all(prompt.as_bytes())?;
        err.flush()?;
        let line = read_line(&mut self.tty)?;
        let line = line.ok_or_else(|| Usage("no password given; nothing changed".into()))?;
        Ok(line)
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.tty.as_fd(), SetArg::TCSAFLUSH, &self.saved);
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        for sig in ENDING {
            // SAFETY: the default action, as the process started with.
            let _ = unsafe { sigaction(sig, &default) };
        }
    }
}

/// The signals whose default action ends the process that a user sends from a
/// terminal, or that come when it goes away.
const ENDING: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGTERM,
];

/// The terminal's settings before echo was turned off, for [`restore_and_die`].
static SAVED: OnceLock<libc::termios> = OnceLock::new();

/// The handler of [`ENDING`] while echo is off: puts the terminal's settings back,
/// then takes the signal again with its default action (installed with SA_RESETHAND),
/// so the process ends as the signal meant.
extern "C" fn restore_and_die(sig: libc::c_int) {
    if let Some(t) = SAVED.get() {
        // SAFETY: tcsetattr(3) is async-signal-safe; `t` is a valid termios that is
        // never changed once set.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, t) };
    }
    // SAFETY: raise(3) is async-signal-safe; the handler was reset to the default.
    unsafe { libc::raise(sig) };
}

/// `passwd [--crypted] USER`.
pub fn passwd(client: &Client, user: &str, crypted: bool, json: bool) -> Result {
    let stdin = io::stdin();
    let password = if crypted {
        let line = read_line(&mut stdin.lock())?;
        let line = line.ok_or_else(|| Usage("--crypted: no hash on stdin".into()))?;
        Line(line.0.trim().to_string())
    } else if stdin.is_terminal() {
        let mut tty = EchoOff::new(stdin.lock())?;
        let first = tty.ask(&format!("New password for {user}: "))?;
        let again = tty.ask(&format!("Retype the new password for {user}: "))?;
        if first.0 != again.0 {
            return Err(Usage("the passwords do not match; nothing changed".into()).into());
        }
        first
    } else {
        read_line(&mut stdin.lock())?.ok_or_else(|| Usage("no password on stdin".into()))?
    };
    if password.0.is_empty() {
        return Err(Usage("the password is empty; nothing changed".into()).into());
    }
    client.set_user_password(user, password.0.as_bytes(), crypted)?;
    if json {
        output::json(&true)?;
    }
    Ok(())
}

/// The keys of a file (or stdin, for `None` or `-`): one per line, blank lines and
/// `#` comments left out, so an `authorized_keys` or a `.pub` file can be given.
fn keys_from(file: Option<&Path>) -> Result<Vec<String>> {
    let mut text = String::new();
    match file {
        None => io::stdin().read_to_string(&mut text)?,
        Some(p) if p == Path::new("-") => io::stdin().read_to_string(&mut text)?,
        Some(p) => BufReader::new(File::open(p).map_err(|e| format!("open {}: {e}", p.display()))?)
            .read_to_string(&mut text)
            .map_err(|e| format!("read {}: {e}", p.display()))?,
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

/// `ssh-keys list USER`: one key per line (`--json`: the list).
pub fn list(client: &Client, user: &str, json: bool) -> Result {
    let keys = client.ssh_authorized_keys(user)?;
    if json {
        output::json(&keys)?;
    } else {
        let mut out = io::stdout().lock();
        for k in keys {
            writeln!(out, "{k}")?;
        }
    }
    Ok(())
}

/// `ssh-keys add [--reset] USER [FILE]`.
pub fn add(client: &Client, user: &str, file: Option<&Path>, reset: bool, json: bool) -> Result {
    let keys = keys_from(file)?;
    if keys.is_empty() && !reset {
        return Err(Usage("no keys given (use --reset to remove every key)".into()).into());
    }
    client.ssh_add_authorized_keys(user, &keys, reset)?;
    if json {
        output::json(&true)?;
    }
    Ok(())
}

/// `ssh-keys remove USER [FILE]`.
pub fn remove(client: &Client, user: &str, file: Option<&Path>, json: bool) -> Result {
    let keys = keys_from(file)?;
    if keys.is_empty() {
        return Err(Usage("no keys given".into()).into());
    }
    client.ssh_remove_authorized_keys(user, &keys)?;
    if json {
        output::json(&true)?;
    }
    Ok(())
}
