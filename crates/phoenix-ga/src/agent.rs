//! The agent's shared state: configuration, the command table, the families (each
//! with its own state, never behind one big lock), the frozen gate, the worker pool
//! and the exit path. Every listener serves the same agent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Cli;
use crate::families::{self, Families, Family, Setup};
use crate::gate::Gate;
use crate::logging;
use crate::pool::Pool;
use crate::registry::Registry;
use crate::sync::lock;

/// How long a clean exit waits for commands already running to send their replies.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Everything a command can reach.
pub struct Agent {
    /// The command line the agent was started with.
    pub config: Cli,
    /// Every command, by dialect, with the allow and block lists applied.
    pub registry: Registry,
    families: Families,
    /// Whether disk-bound commands are held off (see [`Gate`]).
    pub gate: Arc<Gate>,
    /// Runs worker commands and bounds the work in flight.
    pub pool: Pool,
    shutdown: AtomicBool,
    #[allow(clippy::type_complexity)]
    cleanups: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    exit_lock: Mutex<()>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.config)
            .field("families", &self.families)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Builds the agent from its command line. Fails on a command list that names a
    /// command this agent does not have (a typo must not leave a command enabled).
    pub fn new(config: Cli) -> Result<Self, String> {
        let gate = Arc::new(Gate::default());
        let families = families::build(&Setup {
            config: &config,
            gate: &gate,
        });
        let registry = Registry::new(
            families.iter().flat_map(|f| f.commands()),
            &config.selection(),
        )?;
        Ok(Self {
            pool: Pool::new(config.max_workers, config.max_in_flight),
            registry,
            families,
            gate,
            config,
            shutdown: AtomicBool::new(false),
            cleanups: Mutex::new(Vec::new()),
            exit_lock: Mutex::new(()),
        })
    }

    /// Starts every family's background work (timers, hooks). Call once, before the
    /// agent serves.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        self.families.iter().try_for_each(|f| f.start(self))
    }

    /// The family of type `F` (its state and operations).
    pub fn family<F: Family>(&self) -> &F {
        self.families.get::<F>()
    }

    /// Asks the dispatcher to exit once the current reply has been written.
    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }

    /// Whether `agent-shutdown` was received.
    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Registers work to do on a clean exit (remove a socket file); hooks run in
    /// reverse order of registration, after the families' own, and must be quick.
    pub fn on_exit(&self, f: impl FnOnce() + Send + 'static) {
        lock(&self.cleanups).push(Box::new(f));
    }

    /// Exits the process cleanly: the families first (the freeze family thaws before
    /// anything else can touch a frozen disk: removing a socket file there would hang
    /// the agent for good, with the guest frozen), then the exit hooks; lets running
    /// commands finish and send their replies (briefly), flushes the log. Later callers
    /// block until the first one exits.
    pub fn exit(&self, code: i32) -> ! {
        let _only_one = lock(&self.exit_lock);
        tracing::info!(code, "agent exiting");
        for family in self.families.iter() {
            family.before_exit();
        }
        let hooks = std::mem::take(&mut *lock(&self.cleanups));
        for hook in hooks.into_iter().rev() {
            hook();
        }
        if !self.pool.wait_idle(EXIT_GRACE) {
            tracing::warn!("exiting with commands still running");
        }
        logging::flush();
        std::process::exit(code)
    }
}
