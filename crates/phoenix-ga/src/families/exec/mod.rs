//! Running programs: qemu-ga's `guest-exec` and `guest-exec-status`, and the
//! extensions around them (streamed output and input, a pseudo-terminal, timeouts,
//! kill, a status that waits), in both dialects.
//!
//! - [`table`]: the started processes, bounded ([`table::MAX_RUNNING`] running,
//!   [`table::MAX_KEPT`] ended ones kept for a host to collect).
//! - [`proc`]: one process: its lock, its pipes, what it wrote, its deadlines.
//! - [`output`], [`input`]: the bytes held per stream, each with its bound.
//! - [`spawn`]: starting a child (environment, streams, session, terminal).
//! - [`reactor`] and [`pump`]: the thread that reaps, reads and writes for every
//!   child, and its steps.
//! - [`ops`]: the operations the commands call; [`commands`]: the adapters.
//!
//! Memory for output is bounded: captured streams by [`output::CAPTURE_LIMIT`] each and
//! [`output::CAPTURE_TOTAL`] together; streamed ones by [`output::WINDOW`] each (the
//! child waits on its pipe past it); queued input by [`input::QUEUE`] per process.

mod commands;
mod input;
mod ops;
mod output;
mod proc;
mod pspawn;
mod pump;
mod reactor;
mod spawn;
mod table;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};

use phoenix_proto::types::exec::cmd;
use phoenix_proto::Dialect;

use super::{Family, Setup};
use crate::command::{entry, entry_in, Entry};
use crate::error::Error;
use output::{Budget, CAPTURE_TOTAL};
use reactor::Io;
use table::Table;

pub use proc::Ended;

/// What the family's requests and its reactor thread share.
#[derive(Debug)]
pub struct Shared {
    table: Table,
    /// The reactor's epoll set, made with the first child.
    io: OnceLock<Io>,
    /// Captured bytes of all processes.
    budget: Arc<Budget>,
    /// Requests waiting right now (a status, a read, a write with `wait`).
    waiters: AtomicUsize,
    /// At most this many wait at once: each holds a worker thread, and the agent
    /// must keep workers for every other command. A request past it answers at once.
    max_waiters: usize,
}

impl Shared {
    /// The reactor's epoll set, if made.
    fn io(&self) -> Option<&Io> {
        self.io.get()
    }

    /// The reactor's epoll set, made on first use.
    fn io_or_init(&self) -> Result<&Io, Error> {
        if let Some(io) = self.io.get() {
            return Ok(io);
        }
        // Two first callers may both make one; the loser's is closed.
        let _ = self.io.set(Io::new()?);
        Ok(self.io.get().expect("just set"))
    }
}

/// The exec family: its process table and reactor.
#[derive(Debug)]
pub struct Exec {
    shared: Arc<Shared>,
}

impl Family for Exec {
    /// No thread and no descriptor until the first `guest-exec`.
    fn new(setup: &Setup<'_>) -> Self {
        Self {
            shared: Arc::new(Shared {
                table: Table::default(),
                io: OnceLock::new(),
                budget: Arc::new(Budget::new(CAPTURE_TOTAL)),
                waiters: AtomicUsize::new(0),
                max_waiters: (setup.config.max_workers / 2).max(1),
            }),
        }
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 12] = [
            entry::<cmd::GuestExec>(),
            entry::<cmd::GuestExecStatus>(),
            entry::<cmd::GuestExecRead>(),
            entry::<cmd::GuestExecWrite>(),
            entry::<cmd::GuestExecKill>(),
            entry::<cmd::GuestExecResize>(),
            entry_in::<cmd::GuestExec>(Dialect::Phoenix),
            entry_in::<cmd::GuestExecStatus>(Dialect::Phoenix),
            entry_in::<cmd::GuestExecRead>(Dialect::Phoenix),
            entry_in::<cmd::GuestExecWrite>(Dialect::Phoenix),
            entry_in::<cmd::GuestExecKill>(Dialect::Phoenix),
            entry_in::<cmd::GuestExecResize>(Dialect::Phoenix),
        ];
        &COMMANDS
    }
}
