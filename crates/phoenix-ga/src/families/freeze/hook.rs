//! The fsfreeze hook (qemu-ga's `-F [PATH]`, default `/etc/qemu/fsfreeze-hook`): a
//! program run with `freeze` before a freeze and with `thaw` after the thaw, so that
//! databases can flush and hold still (distributions ship one that runs the scripts
//! of `fsfreeze-hook.d/`). It runs for freezes from either dialect.
//!
//! What qemu-ga 10 does, and what this does:
//! - The freeze hook runs before anything is frozen. If it cannot be started (the file
//!   is missing: ENOENT) or it fails (exit status not 0, killed by a signal), nothing is
//!   frozen and the freeze fails with its output in the message, as in qemu-ga. Unlike
//!   qemu-ga, the thaw hook then runs, so that scripts can undo what they did.
//! - The thaw hook runs after the last filesystem is thawed, once per freeze hook that
//!   was started: on a thaw command, the auto-thaw, the exit path, the rollback of a
//!   failed freeze and the thaw of a previous agent's freeze. qemu-ga runs it on every
//!   thaw command, even with nothing frozen, and not on the rollback. Its failure is
//!   logged; the thaw still succeeds (the filesystems are thawed).
//! - Bounded by `--fsfreeze-hook-timeout` (0: no bound): past it the hook's process
//!   group is killed, a warning logged, and the freeze or thaw goes on without it.
//!   qemu-ga waits for ever.
//! - The child gets its own session and process group (as qemu-ga's, with `setsid`),
//!   `/` as its directory, standard input from `/dev/null`, standard output and error
//!   into a pipe whose lines are logged, no descriptor of the agent's (all are marked
//!   close-on-exec), no blocked signal and every signal at its default action (qemu-ga
//!   leaves SIGPIPE ignored), and the agent's environment.
//! - A thaw command does not wait for the thaw hook: it runs on a thread of its own,
//!   and a later freeze hook waits for it. Only the exit path runs it in place.
//!
//! The freeze hook runs before the frozen gate closes and the thaw hook after it opens:
//! neither can hang on a filesystem the agent froze.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::error::Error;
use crate::sync::{lock, wait_timeout};

/// How long the exit path waits for a hook when no timeout is set.
const EXIT_LIMIT: Duration = Duration::from_secs(60);

/// How long a killed hook may take to go.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Output logged per run; the rest is counted and dropped.
const LOG_LIMIT: usize = 64 << 10;

/// Output kept for an error message: the end of it.
const TAIL: usize = 1024;

/// The hook: its path, its bound, and whether a thaw is owed.
#[derive(Debug)]
pub struct Hook {
    path: PathBuf,
    timeout: Option<Duration>,
    state: Mutex<State>,
    idle: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// A run is in progress or about to start: hooks run one at a time, in the order
    /// they were claimed (a thaw hook before the next freeze hook).
    busy: bool,
    /// The process group of the hook running now, and its argument.
    running: Option<(Pid, &'static str)>,
    /// A freeze hook was started and no thaw hook has been run since.
    owed: bool,
}

/// How a run ended.
#[derive(Debug)]
enum End {
    /// It exited or was killed by a signal; the end of its output.
    Exited(ExitStatus, String),
    /// It ran past the timeout and was killed.
    TimedOut,
}

impl Hook {
    /// The hook at `path`, bounded by `timeout_secs` (0: no bound).
    pub fn new(path: &Path, timeout_secs: u64) -> Self {
        // A relative path with a directory in it is the agent's start directory's (the
        // child runs in `/`); a bare name is looked up in PATH, as qemu-ga's execvp does.
        let path = match path.components().count() > 1 && path.is_relative() {
            true => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            false => path.to_path_buf(),
        };
        Self {
            path,
            timeout: (timeout_secs > 0).then(|| Duration::from_secs(timeout_secs)),
            state: Mutex::new(State::default()),
            idle: Condvar::new(),
        }
    }

    /// Runs the hook with `freeze`, after any thaw hook still running. Fails when it
    /// cannot be started or fails; a timeout is logged and not an error (the freeze
    /// goes on without it). Once it has started, a thaw is owed, whatever its end.
    pub fn freeze(&self) -> Result<(), Error> {
        if !self.claim(self.limit()) {
            return Err(Error::errno(
                Errno::EBUSY,
                format!("fsfreeze hook {}: still running", self.path.display()),
            ));
        }
        let ran = self.run("freeze");
        self.release();
        let failed = match ran {
            Ok(End::Exited(status, _)) if status.success() => return Ok(()),
            Ok(End::TimedOut) => return Ok(()),
            Ok(End::Exited(status, output)) => self.failed("freeze", status, &output),
            Err(e) => e,
        };
        tracing::error!(error = %failed.message(), "fsfreeze hook failed: nothing frozen");
        Err(failed)
    }

    /// Marks a thaw owed: a previous agent's freeze is taken over, and its freeze hook
    /// probably ran.
    pub fn owe_thaw(&self) {
        lock(&self.state).owed = true;
    }

    /// If a thaw is owed, runs the hook with `thaw`: on a thread of its own, or here
    /// and now with `in_place` (the exit path, or when no thread can be started).
    pub fn thaw(self: &Arc<Self>, in_place: bool) {
        // Claimed now, before any later freeze hook can claim a turn.
        let claimed = {
            let mut st = lock(&self.state);
            if !std::mem::take(&mut st.owed) {
                return;
            }
            !std::mem::replace(&mut st.busy, true)
        };
        let turn = move |hook: &Hook| {
            if claimed || hook.claim(hook.limit()) {
                hook.run_thaw();
                hook.release();
            } else {
                tracing::error!(hook = %hook.path.display(), "thaw hook not run: another run does not end");
            }
        };
        if !in_place {
            let hook = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("fsfreeze-hook".into())
                .stack_size(128 << 10)
                .spawn(move || turn(&hook));
            match spawned {
                Ok(_) => return,
                Err(e) => tracing::warn!(error = %e, "no thread for the thaw hook: running it here"),
            }
        }
        turn(self);
    }

    /// The exit path: ends a freeze hook still running (the freeze is being undone),
    /// waits for a thaw hook still running, then runs the thaw hook if one is owed.
    pub fn at_exit(self: &Arc<Self>) {
        let running = lock(&self.state).running;
        if let Some((pgid, "freeze")) = running {
            tracing::warn!(hook = %self.path.display(), "agent exiting: killing the fsfreeze hook");
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let limit = self.timeout.map_or(EXIT_LIMIT, |t| t.saturating_add(KILL_GRACE));
        if !self.wait_idle(limit) {
            tracing::warn!(hook = %self.path.display(), "exiting with the fsfreeze hook still running");
            return;
        }
        self.thaw(true);
        // A thaw hook another thread claimed meanwhile (the killed freeze's rollback).
        if !self.wait_idle(limit) {
            tracing::warn!(hook = %self.path.display(), "exiting with the fsfreeze hook still running");
        }
    }

    /// How long a run may take, killing included (no bound without a timeout).
    fn limit(&self) -> Duration {
        self.timeout.map_or(Duration::MAX, |t| t.saturating_add(KILL_GRACE))
    }

    /// Waits for the turn to run, at most `limit`; whether it was taken.
    fn claim(&self, limit: Duration) -> bool {
        if !self.wait_idle(limit) {
            return false;
        }
        let mut st = lock(&self.state);
        // Taken by someone else between the wait and here: wait again.
        while st.busy {
            drop(st);
            if !self.wait_idle(limit) {
                return false;
            }
            st = lock(&self.state);
        }
        st.busy = true;
        true
    }

    /// Ends a turn.
    fn release(&self) {
        let mut st = lock(&self.state);
        st.busy = false;
        st.running = None;
        drop(st);
        self.idle.notify_all();
    }

    fn run_thaw(&self) {
        match self.run("thaw") {
            Ok(End::Exited(status, _)) if status.success() => {}
            Ok(End::Exited(status, output)) => {
                let e = self.failed("thaw", status, &output);
                tracing::error!(error = %e.message(), "fsfreeze hook failed (the filesystems are thawed)");
            }
            Ok(End::TimedOut) => {}
            Err(e) => {
                tracing::error!(error = %e.message(), "fsfreeze hook not run (the filesystems are thawed)")
            }
        }
    }

    /// Waits until no hook runs or is about to, at most `limit`; whether none does.
    fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now().checked_add(limit);
        let mut st = lock(&self.state);
        while st.busy {
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                None => Duration::from_secs(3600),
            };
            st = wait_timeout(&self.idle, st, left).0;
        }
        true
    }

    /// The error of a hook that failed: how, and the end of what it said.
    fn failed(&self, arg: &str, status: ExitStatus, output: &str) -> Error {
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => format!("{status}"),
        };
        let said = match output {
            "" => String::new(),
            out => format!(": {out}"),
        };
        Error::errno(
            Errno::ECANCELED,
            format!("fsfreeze hook {} {arg} failed ({how}){said}", self.path.display()),
        )
    }

    /// Runs the hook with `arg` to its end or its timeout, logging its output. The
    /// caller holds the turn ([`Hook::claim`]) and releases it afterwards.
    fn run(&self, arg: &'static str) -> Result<End, Error> {
        let what = || format!("fsfreeze hook {}", self.path.display());
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| {
            Error::os(what(), io::Error::from_raw_os_error(e as i32))
        })?;
        let err_w = out_w.try_clone().map_err(|e| Error::os(what(), e))?;
        let mut cmd = Command::new(&self.path);
        cmd.arg(arg)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w));
        // SAFETY: `crate::child::setup` makes only async-signal-safe system calls and touches
        // no memory shared with the parent, as a closure run between fork and exec must.
        unsafe { cmd.pre_exec(|| crate::child::setup(false)) };
        tracing::info!(hook = %self.path.display(), arg, "running the fsfreeze hook");
        let child = cmd.spawn().map_err(|e| Error::os(what(), e))?;
        // The parent's copies of the pipe's write end go with `cmd`.
        drop(cmd);
        let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        {
            let mut st = lock(&self.state);
            st.running = Some((pgid, arg));
            if arg == "freeze" {
                st.owed = true;
            }
        }
        Ok(self.wait(child, pgid, out_r, arg))
    }

    /// Waits for `child` while logging what it writes to `out`; kills its process group
    /// past the timeout.
    fn wait(&self, mut child: Child, pgid: Pid, out: OwnedFd, arg: &'static str) -> End {
        let started = Instant::now();
        let deadline = self.timeout.and_then(|t| started.checked_add(t));
        let mut output = Output::new(&self.path, arg, out);
        let exited = crate::child::pidfd(pgid.as_raw());
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "fsfreeze hook: waitpid failed");
                    break None;
                }
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => break None,
                },
                None => Duration::from_secs(3600),
            };
            // Without a pidfd (a kernel before 5.3) the exit is looked for every 50 ms.
            let step = if exited.is_some() {
                left
            } else {
                left.min(Duration::from_millis(50))
            };
            output.poll(exited.as_ref(), step);
        };
        let end = match status {
            Some(status) => {
                output.drain();
                End::Exited(status, String::new())
            }
            None => {
                tracing::warn!(
                    hook = %self.path.display(),
                    arg,
                    timeout_secs = self.timeout.map_or(0, |t| t.as_secs()),
                    "fsfreeze hook timed out: killing its process group; going on without it"
                );
                let _ = killpg(pgid, Signal::SIGKILL);
                reap(child);
                End::TimedOut
            }
        };
        output.finish();
        match end {
            End::Exited(status, _) => {
                tracing::info!(hook = %self.path.display(), arg, %status, elapsed_ms = started.elapsed().as_millis(), "fsfreeze hook ended");
                End::Exited(status, output.tail())
            }
            timed_out => timed_out,
        }
    }
}

/// Waits for a killed hook to go, at most [`KILL_GRACE`]; one stuck in the kernel
/// (blocked on a frozen filesystem it was not supposed to touch) is left to a thread
/// that reaps it whenever it goes.
fn reap(mut child: Child) {
    let deadline = Instant::now() + KILL_GRACE;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::error!(pid = child.id(), "the killed fsfreeze hook does not go; reaping it later");
    let _ = std::thread::Builder::new()
        .name("hook-reaper".into())
        .stack_size(64 << 10)
        .spawn(move || {
            let _ = child.wait();
        });
}

/// The hook's output: read as it comes, logged line by line (up to [`LOG_LIMIT`]),
/// its end kept for an error message.
struct Output<'a> {
    path: &'a Path,
    arg: &'static str,
    pipe: Option<File>,
    line: Vec<u8>,
    logged: usize,
    dropped: usize,
    tail: Vec<u8>,
}

impl<'a> Output<'a> {
    fn new(path: &'a Path, arg: &'static str, pipe: OwnedFd) -> Self {
        let _ = nix::fcntl::fcntl(
            pipe.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
        );
        Self {
            path,
            arg,
            pipe: Some(File::from(pipe)),
            line: Vec::new(),
            logged: 0,
            dropped: 0,
            tail: Vec::new(),
        }
    }

    /// Waits up to `step` for output or for `exited` to become readable; reads what
    /// came.
    fn poll(&mut self, exited: Option<&OwnedFd>, step: Duration) {
        let timeout = PollTimeout::try_from(step.as_millis().clamp(1, 60_000))
            .unwrap_or(PollTimeout::MAX);
        let mut fds = Vec::with_capacity(2);
        if let Some(p) = &self.pipe {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        if let Some(e) = exited {
            fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
        }
        if fds.is_empty() {
            std::thread::sleep(step);
            return;
        }
        let ready = poll(&mut fds, timeout);
        let pipe_ready = self.pipe.is_some()
            && fds[0]
                .revents()
                .is_some_and(|r| !r.is_empty());
        drop(fds);
        if matches!(ready, Ok(n) if n > 0) && pipe_ready {
            self.drain();
        }
    }

    /// Reads everything there is now; at end of file (every writer gone) stops
    /// watching the pipe.
    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        // Bounded: a process the hook left behind may write without end.
        for _ in 0..64 {
            let Some(pipe) = self.pipe.as_mut() else {
                return;
            };
            match pipe.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => self.take(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock: nothing more now. Anything else: give up on the output.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.pipe = None;
                    return;
                }
            }
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > TAIL {
            let cut = self.tail.len() - TAIL;
            self.tail.drain(..cut);
        }
        for &b in bytes {
            if b == b'\n' {
                self.emit();
            } else if self.line.len() < 4096 {
                self.line.push(b);
            }
        }
    }

    fn emit(&mut self) {
        let line = std::mem::take(&mut self.line);
        if self.logged + line.len() > LOG_LIMIT {
            self.dropped += line.len() + 1;
            return;
        }
        self.logged += line.len() + 1;
        tracing::info!(
            hook = %self.path.display(),
            arg = self.arg,
            "fsfreeze hook: {}",
            String::from_utf8_lossy(&line)
        );
    }

    /// Logs a last line without its newline and what was dropped. A background
    /// process the hook left holding the pipe is not waited for: the pipe is closed.
    fn finish(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
        if self.dropped > 0 {
            tracing::warn!(hook = %self.path.display(), bytes = self.dropped, "fsfreeze hook output not logged (too long)");
        }
        self.pipe = None;
    }

    /// The end of the output, for an error message.
    fn tail(&self) -> String {
        String::from_utf8_lossy(&self.tail).trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn log_of(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("log")).unwrap_or_default()
    }

    #[test]
    fn a_thaw_is_owed_once_per_freeze_hook_started() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("echo $1 >> '{}/log'\n", dir.path().display());
        let hook = Arc::new(Hook::new(&script(dir.path(), "h", &body), 5));
        hook.thaw(true);
        assert_eq!(log_of(dir.path()), "", "nothing owed, nothing run");
        hook.freeze().unwrap();
        assert_eq!(log_of(dir.path()), "freeze\n");
        hook.thaw(true);
        hook.thaw(true);
        assert_eq!(log_of(dir.path()), "freeze\nthaw\n");
        // Owed by a previous agent's freeze.
        hook.owe_thaw();
        hook.thaw(false);
        assert!(hook.wait_idle(Duration::from_secs(10)));
        assert_eq!(log_of(dir.path()), "freeze\nthaw\nthaw\n");
    }

    #[test]
    fn a_hook_that_cannot_start_is_an_error_with_its_errno_and_owes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let hook = Arc::new(Hook::new(&dir.path().join("missing"), 5));
        let e = hook.freeze().unwrap_err();
        assert_eq!(e.code(), libc::ENOENT);
        assert!(e.message().ends_with(": No such file or directory"), "{}", e.message());
        assert!(!lock(&hook.state).owed);
        let not_exec = dir.path().join("plain");
        std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
        let e = Hook::new(&not_exec, 5).freeze().unwrap_err();
        assert_eq!(e.code(), libc::EACCES);
    }

    #[test]
    fn a_failure_says_how_with_the_end_of_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let noisy = script(
            dir.path(),
            "noisy",
            "i=0; while [ $i -lt 300 ]; do echo \"line $i of noise\"; i=$((i+1)); done\necho 'last words' >&2\nexit 5\n",
        );
        let e = Hook::new(&noisy, 5).freeze().unwrap_err();
        let msg = e.message();
        assert_eq!(e.code(), libc::ECANCELED);
        assert!(msg.contains("freeze failed (exit status 5): "), "{msg}");
        assert!(msg.ends_with("line 299 of noise\nlast words"), "{msg}");
        assert!(msg.len() < TAIL + 200, "the whole output in the message: {}", msg.len());
        let killed = script(dir.path(), "killed", "kill -9 $$\n");
        let msg = Hook::new(&killed, 5).freeze().unwrap_err().message();
        assert!(msg.contains("(killed by signal 9)"), "{msg}");
    }

    #[test]
    fn past_the_timeout_the_group_is_killed_and_the_freeze_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!(
            "sleep 30 &\necho $! > '{}/child'\nwait\n",
            dir.path().display()
        );
        let hook = Arc::new(Hook::new(&script(dir.path(), "slow", &body), 1));
        let t = Instant::now();
        hook.freeze().unwrap();
        assert!(t.elapsed() >= Duration::from_secs(1) && t.elapsed() < Duration::from_secs(8));
        let child = std::fs::read_to_string(dir.path().join("child")).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.trim()));
        // Gone, or a zombie its new parent has not reaped yet.
        assert!(stat.map_or(true, |s| s.contains(") Z ")), "the hook's child still runs");
        // The thaw it owes is bounded the same way.
        let t = Instant::now();
        hook.thaw(true);
        assert!(t.elapsed() < Duration::from_secs(8));
    }
}
