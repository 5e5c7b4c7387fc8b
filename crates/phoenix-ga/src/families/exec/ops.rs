//! The operations of the exec family, in typed Rust: start a process, its status, read
//! its streamed output, write its input, signal it, resize its terminal.
//!
//! A request that waits (a status or read with `wait`, a write waiting for room)
//! sleeps on the process's condition variable, woken by the reactor when something
//! changes: no polling. Each such request holds a worker thread, so at most
//! `max_waiters` wait at once; past it a request answers at once, as with no wait.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::EpollFlags;

use super::input::{Input, PTY_EOF};
use super::output::Output;
use super::proc::{Ended, Kind, Life, Mode, Proc, State, Watched};
use super::spawn::{self, Dest, Plan};
use super::{pump, reactor, Exec, Shared};
use crate::error::Error;

/// What to start.
#[derive(Debug)]
pub struct Start<'a> {
    /// The program.
    pub path: &'a str,
    /// Its arguments.
    pub args: &'a [String],
    /// Its environment (the agent's when `None`).
    pub env: Option<&'a [String]>,
    /// Bytes for its standard input.
    pub input: Vec<u8>,
    /// Capture (or stream) standard output.
    pub out: bool,
    /// Capture (or stream) standard error.
    pub err: bool,
    /// Standard error into standard output's stream.
    pub merged: bool,
    /// Stream the output instead of capturing it.
    pub stream: bool,
    /// Keep standard input open for writes.
    pub stdin: bool,
    /// On a new terminal of (rows, columns).
    pub pty: Option<(u16, u16)>,
    /// Kill the process group after this long.
    pub timeout: Option<Duration>,
}

/// A captured stream, for the status that reports the exit.
#[derive(Debug)]
pub struct Captured {
    /// Its bytes.
    pub data: Vec<u8>,
    /// Whether bytes were dropped.
    pub truncated: bool,
}

/// What `guest-exec-status` reports.
#[derive(Debug)]
pub struct Status {
    /// Whether the process exited (and, captured, its output is complete).
    pub exited: bool,
    /// How it ended.
    pub ended: Option<Ended>,
    /// Captured standard output, when it exited.
    pub out: Option<Captured>,
    /// Captured standard error, when it exited.
    pub err: Option<Captured>,
}

/// What `guest-exec-read` reports.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Standard output from the offset asked.
    pub out: Vec<u8>,
    /// Nothing more will come on standard output.
    pub out_eof: bool,
    /// Standard error from the offset asked.
    pub err: Vec<u8>,
    /// Nothing more will come on standard error.
    pub err_eof: bool,
    /// How the process ended, once it did.
    pub ended: Option<Ended>,
}

/// A place among the requests that wait; given back on drop.
struct Ticket<'a>(Option<&'a AtomicUsize>);

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.0 {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// qemu-ga's error for a pid it does not know (its text says `PID ld`, a format bug).
fn unknown(pid: i64) -> Error {
    Error::errno(Errno::ESRCH, format!("PID {pid} does not exist"))
}

impl Exec {
    fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn find(&self, pid: i64) -> Result<Arc<Proc>, Error> {
        self.shared.table.by_pid(pid).ok_or_else(|| unknown(pid))
    }

    /// How long a request may wait: `wait`, or nothing when too many already wait.
    fn ticket(&self, wait: Duration) -> (Ticket<'_>, Instant) {
        let now = Instant::now();
        if wait.is_zero() {
            return (Ticket(None), now);
        }
        let n = &self.shared.waiters;
        if n.fetch_add(1, Ordering::Relaxed) < self.shared.max_waiters {
            (Ticket(Some(n)), now + wait)
        } else {
            n.fetch_sub(1, Ordering::Relaxed);
            (Ticket(None), now)
        }
    }

    /// Starts a process; its pid.
    pub fn start(&self, s: Start<'_>) -> Result<i32, Error> {
        let shared = self.shared();
        let mode = match (s.pty, s.stream) {
            (Some(_), _) => Mode::Pty,
            (None, true) => Mode::Stream,
            (None, false) => Mode::Capture,
        };
        let dest = |on: bool| if on { Dest::Pipe } else { Dest::Null };
        let plan = Plan {
            path: s.path,
            args: s.args,
            env: s.env,
            out: dest(s.out || s.merged),
            err: if s.merged { Dest::Merged } else { dest(s.err) },
            stdin: s.stdin || !s.input.is_empty(),
            pty: s.pty,
        };
        let slot = shared.table.reserve()?;
        let io = shared.io_or_init()?;
        reactor::ensure_running(shared)?;
        let child = spawn::spawn(&plan)?;
        let output = |fd: &Option<_>| match (fd.is_some(), mode) {
            (false, _) => Output::absent(),
            (true, Mode::Capture) => Output::captured(Arc::clone(&shared.budget)),
            (true, _) => Output::streamed(),
        };
        let now = Instant::now();
        let state = State {
            life: Life::Running,
            out: output(&child.out),
            err: output(&child.err),
            pidfd: Watched::new(child.pidfd),
            out_fd: Watched::new(child.out),
            err_fd: Watched::new(child.err),
            in_fd: Watched::new(child.input),
            input: Input::new(s.input, s.stdin || mode == Mode::Pty),
            timeout_at: s.timeout.and_then(|t| now.checked_add(t)),
            kill_at: None,
            drain_until: None,
            touched: now,
        };
        let proc = slot.add(child.pid, mode, state);
        {
            let mut st = proc.lock();
            let st = &mut *st;
            let id = proc.id;
            pump::arm(io, &mut st.pidfd, Kind::Exit.token(id), EpollFlags::EPOLLIN);
            if !st.pidfd.armed {
                // Not watched (epoll out of memory or watches): without it the reactor
                // looks for the exit itself, as on a kernel without pidfds.
                st.pidfd.fd = None;
            }
            pump::arm(io, &mut st.out_fd, Kind::Out.token(id), EpollFlags::EPOLLIN);
            pump::arm(io, &mut st.err_fd, Kind::Err.token(id), EpollFlags::EPOLLIN);
            if !st.input.is_empty() || st.input.close_after {
                pump::arm(io, &mut st.in_fd, Kind::In.token(id), EpollFlags::EPOLLOUT);
            }
        }
        // For its deadlines (and a kernel without pidfds).
        io.wake();
        tracing::info!(pid = child.pid, path = s.path, ?mode, "exec: started");
        Ok(child.pid)
    }

    /// The status of `pid`, after waiting up to `wait` for it to exit. A captured
    /// process that exited is forgotten by the status that reports it (qemu-ga's
    /// contract), with its output in the reply.
    pub fn status(&self, pid: i64, wait: Duration) -> Result<Status, Error> {
        let p = self.find(pid)?;
        let (_ticket, deadline) = self.ticket(wait);
        let done = |st: &State| match p.mode {
            Mode::Capture => st.finished(),
            Mode::Stream | Mode::Pty => st.ended().is_some(),
        };
        let (mut st, exited) = p.wait_until(p.lock(), deadline, done);
        st.touched = Instant::now();
        let mut status = Status {
            exited,
            ended: if exited { st.ended() } else { None },
            out: None,
            err: None,
        };
        if exited && p.mode == Mode::Capture {
            let take = |o: &mut Output| {
                let truncated = o.truncated();
                let data = o.take();
                // Cut to nothing (the agent-wide budget spent) still says it was cut.
            (!data.is_empty() || truncated).then_some(Captured { data, truncated })
            };
            status.out = take(&mut st.out);
            status.err = take(&mut st.err);
            drop(st);
            self.shared.table.remove(p.id);
        }
        Ok(status)
    }

    /// Streamed output of `pid` from the offsets given (the bytes before them are
    /// dropped), at most `count` per stream, after waiting up to `wait` for some.
    pub fn read(
        &self,
        pid: i64,
        offsets: (u64, u64),
        count: usize,
        wait: Duration,
    ) -> Result<Chunk, Error> {
        let p = self.find(pid)?;
        if p.mode == Mode::Capture {
            return Err(Error::errno(
                Errno::EINVAL,
                format!(
                    "process {pid} was started without stream or pty: its output comes \
                     with guest-exec-status"
                ),
            ));
        }
        let (out_at, err_at) = offsets;
        let mut st = p.lock();
        st.touched = Instant::now();
        // Both offsets are checked before either drops anything.
        for (name, o, at) in [("out-offset", &st.out, out_at), ("err-offset", &st.err, err_at)] {
            if !o.holds(at) {
                return Err(Error::errno(
                    Errno::EINVAL,
                    format!("{name} {at} is not among the bytes held (up to {})", o.end()),
                ));
            }
        }
        st.out.ack(out_at)?;
        st.err.ack(err_at)?;
        self.rearm(&p, &mut st);
        let (_ticket, deadline) = self.ticket(wait);
        let (st, _) = p.wait_until(st, deadline, |st| {
            st.out.end() > out_at
                || st.err.end() > err_at
                || (st.out.closed && st.err.closed && st.ended().is_some())
        });
        // Another read of the same process may have moved past the offsets meanwhile.
        for (name, o, at) in [("out-offset", &st.out, out_at), ("err-offset", &st.err, err_at)] {
            if !o.holds(at) {
                return Err(Error::errno(
                    Errno::EINVAL,
                    format!("{name} {at} was read past by another request meanwhile"),
                ));
            }
        }
        let take = |o: &Output, at: u64| {
            let data = o.peek(at, count).to_vec();
            let eof = o.closed && at + data.len() as u64 == o.end();
            (data, eof)
        };
        let (out, out_eof) = take(&st.out, out_at);
        let (err, err_eof) = take(&st.err, err_at);
        let chunk = Chunk {
            out,
            out_eof,
            err,
            err_eof,
            ended: st.ended(),
        };
        drop(st);
        if chunk.ended.is_some() && chunk.out_eof && chunk.err_eof {
            self.shared.table.remove(p.id);
        }
        Ok(chunk)
    }

    /// Watches again the pipes whose window the host just emptied, and wakes the
    /// reactor when the drain is over (a pipe may then be closed).
    fn rearm(&self, p: &Proc, st: &mut State) {
        let Some(io) = self.shared.io() else {
            return;
        };
        for (kind, w, room) in [
            (Kind::Out, &mut st.out_fd, st.out.room()),
            (Kind::Err, &mut st.err_fd, st.err.room()),
        ] {
            if room > 0 {
                pump::arm(io, w, kind.token(p.id), EpollFlags::EPOLLIN);
            }
        }
        if st.ended().is_some() {
            io.wake();
        }
    }

    /// Queues `data` for the standard input of `pid`, waiting up to `wait` for room;
    /// how many bytes were taken. `close` closes the input once all of `data` is
    /// written.
    pub fn write(&self, pid: i64, data: &[u8], close: bool, wait: Duration) -> Result<usize, Error> {
        let p = self.find(pid)?;
        let io = self.shared.io_or_init()?;
        let mut st = p.lock();
        st.touched = Instant::now();
        if !st.input.open {
            let why = if st.input.broken {
                "the process closed its standard input"
            } else if !st.input.kept {
                "the process was started without stdin or pty"
            } else {
                "standard input was closed"
            };
            return Err(Error::errno(Errno::EPIPE, format!("process {pid}: {why}")));
        }
        let (_ticket, deadline) = self.ticket(wait);
        let mut taken = 0;
        loop {
            taken += st.input.push(&data[taken..]);
            if !st.input.is_empty() {
                pump::arm(io, &mut st.in_fd, Kind::In.token(p.id), EpollFlags::EPOLLOUT);
            }
            if taken == data.len() || st.input.broken {
                break;
            }
            let ready;
            (st, ready) = p.wait_until(st, deadline, |st| st.input.room() > 0 || st.input.broken);
            if !ready {
                break;
            }
        }
        if st.input.broken && taken == 0 && !data.is_empty() {
            return Err(Error::errno(
                Errno::EPIPE,
                format!("process {pid}: the process closed its standard input"),
            ));
        }
        if close && taken == data.len() && !st.input.broken {
            st.input.open = false;
            if p.mode == Mode::Pty {
                st.input.push_eof(PTY_EOF);
            } else {
                st.input.close_after = true;
            }
            // The reactor closes the pipe once the queue is written.
            pump::arm(io, &mut st.in_fd, Kind::In.token(p.id), EpollFlags::EPOLLOUT);
        }
        Ok(taken)
    }

    /// Sends `signal` (0: only checks) to `pid`'s process group, or to it alone.
    pub fn kill(&self, pid: i64, signal: i32, group: bool) -> Result<(), Error> {
        let p = self.find(pid)?;
        // Real-time signals included (nix's Signal names only 1 to 31).
        if !(0..=libc::SIGRTMAX()).contains(&signal) {
            return Err(Error::invalid(format!("invalid signal {signal}")));
        }
        let mut st = p.lock();
        st.touched = Instant::now();
        // Under the lock the child cannot be reaped meanwhile: its pid (and group id)
        // is still its own.
        if st.ended().is_some() {
            return Err(Error::errno(Errno::ESRCH, format!("process {pid} has exited")));
        }
        let target = if group { -p.pid } else { p.pid };
        // SAFETY: kill(2) takes plain integers; the pid (or group) is our unreaped
        // child's, and the signal number was checked above.
        if unsafe { libc::kill(target, signal) } == 0 {
            return Ok(());
        }
        let e = Errno::last();
        Err(Error::errno(e, format!("signal process {pid}: {}", e.desc())))
    }

    /// Sets the window size of `pid`'s terminal.
    pub fn resize(&self, pid: i64, rows: u16, cols: u16) -> Result<(), Error> {
        let p = self.find(pid)?;
        if p.mode != Mode::Pty {
            return Err(Error::errno(
                Errno::ENOTTY,
                format!("process {pid} was started without pty"),
            ));
        }
        let mut st = p.lock();
        st.touched = Instant::now();
        let master = st.out_fd.fd.as_ref().or(st.in_fd.fd.as_ref()).ok_or_else(|| {
            Error::errno(Errno::ENOTTY, format!("process {pid}: its terminal is closed"))
        })?;
        spawn::set_window(master, rows, cols)
    }
}
