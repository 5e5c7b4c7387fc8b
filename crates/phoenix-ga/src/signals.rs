//! Signals. Every asynchronous signal the agent may receive is blocked in all threads
//! and taken by one thread with `sigwait`, so no system call anywhere is interrupted
//! (the original agent died when a signal interrupted its wait) and no signal's
//! default action can kill the agent. SIGTERM, SIGINT and SIGQUIT exit cleanly;
//! SIGHUP reopens the log file; the rest are ignored.

use std::sync::Arc;
use std::thread;

use nix::sys::signal::{SigSet, Signal};

use crate::agent::Agent;
use crate::logging;

const HANDLED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGIO,
    Signal::SIGWINCH,
    Signal::SIGALRM,
    Signal::SIGPIPE,
    Signal::SIGCHLD,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// Blocks the handled signals in this thread (and every thread it starts afterwards).
/// Call before any other thread exists.
pub fn block() -> nix::Result<SigSet> {
    let mut set = SigSet::empty();
    for &s in HANDLED {
        set.add(s);
    }
    set.thread_block()?;
    Ok(set)
}

/// Starts the thread that takes the blocked signals.
pub fn spawn(agent: Arc<Agent>, set: SigSet) -> std::io::Result<()> {
    thread::Builder::new()
        .name("signals".into())
        .stack_size(128 << 10)
        .spawn(move || loop {
            match set.wait() {
                Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => agent.exit(0),
                Ok(Signal::SIGHUP) => logging::reopen(),
                Ok(sig) => tracing::debug!(?sig, "signal ignored"),
                Err(e) => tracing::warn!(error = %e, "sigwait failed"),
            }
        })?;
    Ok(())
}
