//! One started process as the agent keeps it: its pid, its pipes, what it wrote that
//! the host has not taken, its standard input queue, its deadlines, and how it ended.
//!
//! Everything of a process is under its own lock ([`Proc::lock`]), taken only for
//! steps that never block (a non-blocking read or write of a pipe, a `waitpid` with
//! `WNOHANG`, a copy); [`Proc::changed`] wakes the requests that wait on it (a status
//! with `wait`, a read, a write waiting for room). The reactor thread and the requests
//! are the only ones that take it, one process at a time.

use std::os::fd::OwnedFd;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::input::Input;
use super::output::Output;
use crate::sync::{lock, wait_timeout};

/// How long the output is still read after the child exited, for a grandchild that
/// holds the pipes (qemu-ga waits for them for ever).
pub const DRAIN: Duration = Duration::from_millis(200);

/// Between the SIGTERM of a timeout and the SIGKILL of the process group.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// What the host asked for the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// qemu-ga's: captured, delivered whole with the status that reports the exit.
    Capture,
    /// Streamed: read with `guest-exec-read` while the process runs.
    Stream,
    /// On a pseudo-terminal, streamed.
    Pty,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Running (or exited and not yet seen).
    Running,
    /// Exited, but not reaped before the SIGKILL of a timeout: while it is a zombie
    /// its pid, and so its process group's id, cannot be reused, so the group can be
    /// killed without hitting a stranger.
    Zombie,
    /// Reaped.
    Ended(Ended),
}

/// A descriptor the reactor may watch.
#[derive(Debug, Default)]
pub struct Watched {
    /// The descriptor; `None` once closed.
    pub fd: Option<OwnedFd>,
    /// Whether it is in the reactor's epoll set.
    pub armed: bool,
}

impl Watched {
    /// A descriptor, not yet watched.
    pub fn new(fd: Option<OwnedFd>) -> Self {
        Self { fd, armed: false }
    }
}

/// The kinds of descriptors of a process, which name its reactor tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The pidfd: readable once the child exited.
    Exit = 0,
    /// Standard output (or the terminal).
    Out = 1,
    /// Standard error.
    Err = 2,
    /// Standard input (or the terminal).
    In = 3,
}

impl Kind {
    /// The reactor's token for this descriptor of process `id`.
    pub fn token(self, id: u64) -> u64 {
        id << 2 | self as u64
    }

    /// The process id and kind of a token.
    pub fn of(token: u64) -> (u64, Kind) {
        let kind = match token & 3 {
            0 => Kind::Exit,
            1 => Kind::Out,
            2 => Kind::Err,
            _ => Kind::In,
        };
        (token >> 2, kind)
    }
}

/// The mutable part of a process.
#[derive(Debug)]
pub struct State {
    /// Where it is in its life.
    pub life: Life,
    /// Readable when the child exits; `None` on kernels without pidfds (the reactor
    /// then looks with `waitpid(pid, WNOHANG)` every [`NO_PIDFD_POLL`]).
    pub pidfd: Watched,
    /// Standard output's pipe (or the terminal's master) and what it brought.
    pub out_fd: Watched,
    /// What standard output brought.
    pub out: Output,
    /// Standard error's pipe.
    pub err_fd: Watched,
    /// What standard error brought.
    pub err: Output,
    /// Standard input's pipe (or a duplicate of the terminal's master).
    pub in_fd: Watched,
    /// What is queued for it.
    pub input: Input,
    /// When the timeout sends SIGTERM.
    pub timeout_at: Option<Instant>,
    /// When the SIGKILL follows (set by the SIGTERM).
    pub kill_at: Option<Instant>,
    /// When the drain after the exit ends.
    pub drain_until: Option<Instant>,
    /// The last time the host asked about it (or it exited).
    pub touched: Instant,
}

/// Between two looks at the exit on kernels without pidfds (before Linux 5.3).
pub const NO_PIDFD_POLL: Duration = Duration::from_millis(100);

/// A started process.
#[derive(Debug)]
pub struct Proc {
    /// The agent's own number for it (never reused; names its reactor tokens).
    pub id: u64,
    /// Its pid, which is also its session and process group id.
    pub pid: i32,
    /// What the host asked for the output.
    pub mode: Mode,
    state: Mutex<State>,
    /// Signalled when anything a request may wait for changes.
    pub changed: Condvar,
}

impl Proc {
    /// A process just started.
    pub fn new(id: u64, pid: i32, mode: Mode, state: State) -> Self {
        Self {
            id,
            pid,
            mode,
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    /// Its state, locked.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Waits on [`Proc::changed`] until `ready` holds or `deadline` passes; the state
    /// and whether `ready` held.
    pub fn wait_until<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        deadline: Instant,
        mut ready: impl FnMut(&State) -> bool,
    ) -> (MutexGuard<'a, State>, bool) {
        loop {
            if ready(&st) {
                return (st, true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (st, false);
            }
            st = wait_timeout(&self.changed, st, left).0;
        }
    }
}

impl State {
    /// How it ended, once reaped.
    pub fn ended(&self) -> Option<Ended> {
        match self.life {
            Life::Ended(e) => Some(e),
            _ => None,
        }
    }

    /// Reaped, and both output streams complete: qemu-ga's "exited".
    pub fn finished(&self) -> bool {
        self.ended().is_some() && self.out.closed && self.err.closed
    }

    /// Whether the drain after the exit is over.
    pub fn drained(&self, now: Instant) -> bool {
        self.drain_until.is_some_and(|d| now >= d)
    }

    /// Whether the process waits for the host: a streamed window is full, so the
    /// child is held on its pipe until the host reads.
    pub fn waits_for_host(&self) -> bool {
        (self.out_fd.fd.is_some() && self.out.room() == 0)
            || (self.err_fd.fd.is_some() && self.err.room() == 0)
    }
}
