//! The agent's shared state: configuration, the enabled command table, the frozen
//! flag, the worker pool and the shutdown path. Command families keep their own state
//! in purpose-named fields, never behind one big lock.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::commands::{self, Command};
use crate::config::Cli;
use crate::logging;
use crate::pool::Pool;

/// How long a clean exit waits for commands already running to send their replies.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Everything a command handler can reach.
pub struct Agent {
    /// The command line the agent was started with.
    pub config: Cli,
    table: HashMap<&'static str, &'static Command>,
    enabled: Vec<&'static str>,
    disabled: HashSet<&'static str>,
    frozen: AtomicBool,
    shutdown: AtomicBool,
    cleanups: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    exit_lock: Mutex<()>,
    /// Runs worker commands and bounds the work in flight.
    pub pool: Pool,
    /// Open file handles of `file-open`.
    pub files: commands::files::Handles,
    /// `sysinfo`'s statvfs calls that may still hang.
    pub sysinfo: commands::sysinfo::State,
    /// What is frozen and how it gets thawed (fs-freeze and friends).
    pub freeze: commands::freeze::Freezer,
}

impl Agent {
    /// Builds the agent from its command line. Fails on a command list that names a
    /// command this agent does not have (a typo must not leave a command enabled).
    pub fn new(config: Cli) -> Result<Self, String> {
        let table: HashMap<_, _> = commands::all().map(|c| (c.name, c)).collect();
        let check = |list: &[String], flag: &str| -> Result<(), String> {
            match list.iter().find(|n| !table.contains_key(n.as_str())) {
                Some(n) => Err(format!("{flag}: unknown command \"{n}\"")),
                None => Ok(()),
            }
        };
        check(&config.block_commands, "--block-commands")?;
        if let Some(allow) = &config.allow_commands {
            check(allow, "--allow-commands")?;
        }
        let is_enabled = |name: &str| {
            !config.block_commands.iter().any(|b| b == name)
                && config
                    .allow_commands
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|x| x == name))
        };
        let (enabled, disabled): (Vec<_>, Vec<_>) =
            commands::all().map(|c| c.name).partition(|n| is_enabled(n));
        let pool = Pool::new(config.max_workers, config.max_in_flight);
        Ok(Self {
            table,
            enabled,
            disabled: disabled.into_iter().collect(),
            frozen: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            cleanups: Mutex::new(Vec::new()),
            exit_lock: Mutex::new(()),
            pool,
            files: commands::files::Handles::new(config.max_handles),
            freeze: commands::freeze::Freezer::new(&config.state_dir, config.freeze_timeout),
            config,
            sysinfo: Default::default(),
        })
    }

    /// Looks a command up; disabled and unknown commands give the matching error.
    pub fn command(&self, name: &str) -> Result<&'static Command, crate::error::Error> {
        use crate::error::Error;
        match self.table.get(name) {
            Some(_) if self.disabled.contains(name) => Err(Error::Disabled(name.to_string())),
            Some(c) => Ok(c),
            None => Err(Error::UnknownCommand(name.to_string())),
        }
    }

    /// The names `get-commands` reports.
    pub fn command_names(&self) -> &[&'static str] {
        &self.enabled
    }

    /// Whether filesystems are frozen (only `while_frozen` commands may run).
    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    /// Records the frozen state; the log file is held in memory while frozen.
    pub fn set_frozen(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
        logging::set_frozen(frozen);
    }

    /// Asks the dispatcher to exit once the current reply has been written.
    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }

    /// Whether `agent-shutdown` was received.
    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Registers work to do first on a clean exit (thaw, remove a socket file); hooks
    /// run in reverse order of registration and must be quick.
    pub fn on_exit(&self, f: impl FnOnce() + Send + 'static) {
        self.cleanups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(f));
    }

    /// Exits the process cleanly: runs the exit hooks (thaw, remove the socket), lets
    /// running commands finish and send their replies (briefly), flushes the log.
    /// Later callers block until the first one exits.
    pub fn exit(&self, code: i32) -> ! {
        let _only_one = self.exit_lock.lock().unwrap_or_else(|p| p.into_inner());
        tracing::info!(code, "agent exiting");
        // Thaw before any hook: a hook may touch a disk the freeze covers (removing a
        // socket file there would hang the agent for good, with the guest frozen).
        self.freeze.emergency_thaw(self, "agent exit", true);
        let hooks = std::mem::take(&mut *self.cleanups.lock().unwrap_or_else(|p| p.into_inner()));
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
