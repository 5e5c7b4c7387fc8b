//! Starting a child: its environment, its standard streams (pipes, /dev/null, or a
//! new pseudo-terminal) and what happens between fork and exec.
//!
//! The child leads a session of its own (setsid), so its pid is its process group's id
//! and a timeout or a kill reaches its descendants with one `killpg`; on a terminal it
//! takes it as its controlling terminal (TIOCSCTTY), as a login shell does. It gets
//! none of the agent's descriptors (every one the agent opens is close-on-exec, and
//! the child marks any other close-on-exec too), no blocked or ignored signal, and a
//! `PATH` even when the host's environment has none.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};

use super::pspawn;
use crate::error::Error;

/// `PATH` of a child whose environment has none (what Debian's login gives root).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables of the agent's own environment that are not passed on: they speak to
/// the agent's service manager about the agent.
const PRIVATE: &[&str] = &[
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
];

/// Where an output stream of the child goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// /dev/null.
    Null,
    /// A pipe the agent reads.
    Pipe,
    /// Into standard output's pipe (standard error only).
    Merged,
}

/// What to start, and how.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The program, a path or a name looked up in the child's `PATH`.
    pub path: &'a str,
    /// Its arguments.
    pub args: &'a [String],
    /// Its environment, `NAME=VALUE` each; the agent's when `None`.
    pub env: Option<&'a [String]>,
    /// Standard output.
    pub out: Dest,
    /// Standard error.
    pub err: Dest,
    /// A pipe for standard input (else /dev/null).
    pub stdin: bool,
    /// A new terminal of this size (rows, columns) for all three streams.
    pub pty: Option<(u16, u16)>,
}

/// A started child and the agent's ends of its streams (non-blocking, close-on-exec).
#[derive(Debug, Default)]
pub struct Started {
    /// Its pid.
    pub pid: i32,
    /// Its pidfd, where the kernel has them (Linux 5.3).
    pub pidfd: Option<OwnedFd>,
    /// Standard output's read end, or the terminal's master.
    pub out: Option<OwnedFd>,
    /// Standard error's read end.
    pub err: Option<OwnedFd>,
    /// Standard input's write end, or a duplicate of the terminal's master.
    pub input: Option<OwnedFd>,
}

/// The environment of the child, checked: `NAME=VALUE` entries, and a `PATH`.
pub fn environment(env: Option<&[String]>) -> Result<Vec<(OsString, OsString)>, Error> {
    let mut vars: Vec<(OsString, OsString)> = match env {
        Some(list) => list
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((name, value)) if !name.is_empty() => Ok((name.into(), value.into())),
                _ => Err(Error::invalid(format!(
                    "environment entry '{entry}' is not NAME=VALUE"
                ))),
            })
            .collect::<Result<_, _>>()?,
        None => std::env::vars_os()
            .filter(|(name, _)| !PRIVATE.iter().any(|p| name == p))
            .collect(),
    };
    if !vars.iter().any(|(name, _)| name == "PATH") {
        vars.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    Ok(vars)
}

/// A NUL byte cannot pass through execve: refused with the argument it is in.
fn check_nul(plan: &Plan<'_>) -> Result<(), Error> {
    let what = std::iter::once(("path", plan.path))
        .chain(plan.args.iter().map(|a| ("arg", a.as_str())))
        .chain(plan.env.into_iter().flatten().map(|e| ("env", e.as_str())));
    for (name, text) in what {
        if text.contains('\0') {
            return Err(Error::invalid(format!("'{name}' contains a NUL byte")));
        }
    }
    Ok(())
}

/// Starts the child: through `posix_spawn` ([`pspawn`]) unless it needs a terminal or
/// only `execvp` can start it, else by fork and exec.
pub fn spawn(plan: &Plan<'_>) -> Result<Started, Error> {
    check_nul(plan)?;
    let env = environment(plan.env)?;
    if plan.pty.is_none() {
        if let Some(program) = pspawn::find(plan.path, &env) {
            if let Some(started) = spawn_without_fork(plan, &program, &env)? {
                return Ok(started);
            }
        }
    }
    spawn_forked(plan, env)
}

/// The child through `posix_spawn`, with pipes (or /dev/null) for its streams; `None`
/// when the fork path must start it.
fn spawn_without_fork(
    plan: &Plan<'_>,
    program: &std::path::Path,
    env: &[(OsString, OsString)],
) -> Result<Option<Started>, Error> {
    let mut ours = Started::default();
    let ends = pipes(plan, &mut ours)?;
    let err = match ends.err_is_out {
        true => pspawn::Stream::Stdout,
        false => stream(&ends.err),
    };
    let argv: Vec<&str> = std::iter::once(plan.path)
        .chain(plan.args.iter().map(String::as_str))
        .collect();
    let spawned = pspawn::spawn(&pspawn::Spawn {
        program,
        argv: &argv,
        env,
        streams: [stream(&ends.stdin), stream(&ends.out), err],
    })?;
    // The child's ends close here in the agent: the pipes read end of file once the
    // child (and whoever it gave them to) has closed them.
    drop(ends);
    spawned.map(|pid| started(ours, pid)).transpose()
}

/// The child by fork and exec (std's `Command` with [`crate::child::setup`] between
/// them).
fn spawn_forked(plan: &Plan<'_>, env: Vec<(OsString, OsString)>) -> Result<Started, Error> {
    let mut cmd = Command::new(plan.path);
    cmd.args(plan.args).env_clear().envs(env);
    let mut ours = Started::default();
    let terminal = match plan.pty {
        Some((rows, cols)) => {
            let (master, slave) = open_pty(rows, cols)?;
            cmd.stdin(Stdio::from(dup(&slave)?))
                .stdout(Stdio::from(dup(&slave)?))
                .stderr(Stdio::from(slave));
            ours.input = Some(dup(&master)?);
            ours.out = Some(master);
            true
        }
        None => {
            let ends = pipes(plan, &mut ours)?;
            let stdio = |fd: Option<OwnedFd>| fd.map_or_else(Stdio::null, Stdio::from);
            let err = match (&ends.out, ends.err_is_out) {
                (Some(out), true) => Stdio::from(dup(out)?),
                _ => stdio(ends.err),
            };
            cmd.stdin(stdio(ends.stdin))
                .stdout(stdio(ends.out))
                .stderr(err);
            false
        }
    };
    // SAFETY: `child::setup` makes only async-signal-safe system calls (setsid, ioctl,
    // sigaction, close_range, fcntl) on values it owns, as a closure run between fork
    // and exec must, and touches no memory shared with the parent.
    unsafe { cmd.pre_exec(move || crate::child::setup(terminal)) };
    let child = cmd.spawn().map_err(|e| spawn_error(plan.path, &e))?;
    // The parent's copies of the child's ends go with `cmd`: the pipes then read end
    // of file once the child (and whoever it gave them to) has closed them.
    drop(cmd);
    let pid = i32::try_from(child.id()).map_err(|e| Error::Internal(e.to_string()))?;
    // The child is never waited for through `child`: the reactor reaps this pid.
    drop(child);
    started(ours, pid)
}

/// The child's end of a stream for `posix_spawn`: a pipe's, or /dev/null.
fn stream(fd: &Option<OwnedFd>) -> pspawn::Stream<'_> {
    fd.as_ref().map_or(pspawn::Stream::Null, pspawn::Stream::Fd)
}

/// The agent's ends once the child runs: its pid, its pidfd, the streams non-blocking.
fn started(mut ours: Started, pid: i32) -> Result<Started, Error> {
    ours.pid = pid;
    ours.pidfd = crate::child::pidfd(pid);
    for fd in [&ours.out, &ours.err, &ours.input].into_iter().flatten() {
        if let Err(e) = set_nonblocking(fd) {
            // A blocking pipe would stall the reactor: the child goes, reaped here.
            let child = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            return Err(e);
        }
    }
    Ok(ours)
}

/// qemu-ga's words for a program that could not be started (GLib's), with the errno.
pub(super) fn spawn_errno(path: &str, errno: Errno) -> Error {
    Error::errno(
        errno,
        format!("Failed to execute child process “{path}” ({})", errno.desc()),
    )
}

/// [`spawn_errno`] for std's error.
fn spawn_error(path: &str, e: &io::Error) -> Error {
    match e.raw_os_error() {
        Some(n) => spawn_errno(path, Errno::from_raw(n)),
        None => Error::os(format!("Failed to execute child process “{path}”"), io::Error::other(e.to_string())),
    }
}

/// The child's ends of its streams without a terminal (`None`: /dev/null); the
/// agent's ends go into `ours`.
#[derive(Debug)]
struct Ends {
    stdin: Option<OwnedFd>,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    /// Standard error goes where standard output goes (`Dest::Merged` with a pipe).
    err_is_out: bool,
}

/// Pipes for the streams `plan` wants.
fn pipes(plan: &Plan<'_>, ours: &mut Started) -> Result<Ends, Error> {
    let mut stdin = None;
    if plan.stdin {
        let (r, w) = pipe()?;
        ours.input = Some(w);
        stdin = Some(r);
    }
    let mut out = None;
    if plan.out == Dest::Pipe {
        let (r, w) = pipe()?;
        ours.out = Some(r);
        out = Some(w);
    }
    let mut err = None;
    if plan.err == Dest::Pipe {
        let (r, w) = pipe()?;
        ours.err = Some(r);
        err = Some(w);
    }
    let err_is_out = plan.err == Dest::Merged && out.is_some();
    Ok(Ends {
        stdin,
        out,
        err,
        err_is_out,
    })
}

fn os_error(what: &str, e: Errno) -> Error {
    Error::os(what, io::Error::from_raw_os_error(e as i32))
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| os_error("pipe", e))
}

/// A close-on-exec duplicate.
fn dup(fd: &OwnedFd) -> Result<OwnedFd, Error> {
    fd.try_clone().map_err(|e| Error::os("dup", e))
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), Error> {
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(|e| os_error("fcntl", e))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(|e| os_error("fcntl", e))?;
    Ok(())
}

/// A new terminal of `rows` by `cols`: its master and its slave, both close-on-exec
/// and neither the agent's controlling terminal.
fn open_pty(rows: u16, cols: u16) -> Result<(OwnedFd, OwnedFd), Error> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| os_error("posix_openpt", e))?;
    grantpt(&master).map_err(|e| os_error("grantpt", e))?;
    unlockpt(&master).map_err(|e| os_error("unlockpt", e))?;
    let name = ptsname_r(&master).map_err(|e| os_error("ptsname", e))?;
    // std opens close-on-exec.
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)
        .map_err(|e| Error::os(format!("open {name}"), e))?;
    // SAFETY: PtyMaster owns the descriptor; into_raw_fd hands its ownership over.
    let master = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    set_window(&master, rows, cols)?;
    Ok((master, slave.into()))
}

nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

/// Sets a terminal's window size (the kernel sends SIGWINCH to its foreground group).
pub fn set_window(master: &OwnedFd, rows: u16, cols: u16) -> Result<(), Error> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize, which `size` is, from the pointer.
    unsafe { tiocswinsz(master.as_raw_fd(), &size) }
        .map(drop)
        .map_err(|e| os_error("TIOCSWINSZ", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_checked_and_has_a_path() {
        let given = ["A=1".to_string(), "B==x=".to_string()];
        let vars = environment(Some(&given)).unwrap();
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "=x=".into()),
                ("PATH".into(), DEFAULT_PATH.into())
            ]
        );
        let given = ["PATH=/x".to_string()];
        assert_eq!(environment(Some(&given)).unwrap().len(), 1);
        for bad in ["NOEQUALS", "=v"] {
            let e = environment(Some(&[bad.to_string()])).unwrap_err();
            assert!(e.message().contains("is not NAME=VALUE"), "{}", e.message());
        }
        let inherited = environment(None).unwrap();
        assert!(inherited.iter().any(|(n, _)| n == "PATH"));
        assert!(!inherited.iter().any(|(n, _)| n == "NOTIFY_SOCKET"));
    }

    #[test]
    fn nul_bytes_are_refused_by_name() {
        let args = ["a\0b".to_string()];
        let plan = Plan {
            path: "/bin/true",
            args: &args,
            env: None,
            out: Dest::Null,
            err: Dest::Null,
            stdin: false,
            pty: None,
        };
        let e = spawn(&plan).unwrap_err();
        assert_eq!(e.message(), "invalid arguments: 'arg' contains a NUL byte");
    }

    #[test]
    fn a_missing_program_is_worded_as_qemu_ga_words_it() {
        let plan = Plan {
            path: "/nonexistent/x",
            args: &[],
            env: None,
            out: Dest::Null,
            err: Dest::Null,
            stdin: false,
            pty: None,
        };
        let e = spawn(&plan).unwrap_err();
        assert_eq!(e.code(), 2);
        assert_eq!(
            e.message(),
            "Failed to execute child process “/nonexistent/x” (No such file or directory)"
        );
    }

    /// Runs `plan` to its end; its standard output and its wait status.
    fn run(plan: &Plan<'_>) -> (String, nix::sys::wait::WaitStatus) {
        use std::io::Read;
        let started = spawn(plan).unwrap();
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(started.pid), None)
            .unwrap();
        let mut out = String::new();
        std::fs::File::from(started.out.unwrap())
            .read_to_string(&mut out)
            .unwrap();
        (out, status)
    }

    #[test]
    fn a_script_without_an_interpreter_line_runs_in_sh_as_execvp_runs_it() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "echo from sh \"$1\"\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let args = ["x".to_string()];
        let plan = Plan {
            path: script.to_str().unwrap(),
            args: &args,
            env: None,
            out: Dest::Pipe,
            err: Dest::Merged,
            stdin: false,
            pty: None,
        };
        let (out, status) = run(&plan);
        assert_eq!(out, "from sh x\n");
        assert!(matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)));
    }

    #[test]
    fn a_name_is_found_in_the_childs_path_and_keeps_its_name_as_argument_zero() {
        let env = ["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        let args = ["-c".to_string(), "echo \"$0\"; exit 3".to_string()];
        let plan = Plan {
            path: "sh",
            args: &args,
            env: Some(&env),
            out: Dest::Pipe,
            err: Dest::Null,
            stdin: false,
            pty: None,
        };
        let (out, status) = run(&plan);
        assert_eq!(out, "sh\n");
        assert!(matches!(status, nix::sys::wait::WaitStatus::Exited(_, 3)));
    }
}
