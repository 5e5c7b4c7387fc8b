//! `phoenix-ga`: the Phoenix guest agent.
//!
//! Reads JSON commands from the host (virtio-serial port, serial tty or UNIX socket),
//! runs them concurrently and writes one reply per request. The layers, from the wire
//! in (docs/architecture.md):
//!
//! * [`listener`]: transports and the [`Connection`](listener::Connection) that frames
//!   what they read;
//! * [`envelope`]: each dialect's request and reply shapes;
//! * [`dispatch`]: from a request to its reply, through the [`registry`] and the
//!   run policy of each [`command`];
//! * [`families`]: the commands' adapters and the operations they call, one folder per
//!   family.
//!
//! A library so that the fuzz targets (`fuzz/`) reach the agent's parsers through
//! [`parsers`]; the binary (`main.rs`) only calls [`run`].

mod agent;
mod child;
mod command;
mod config;
mod dispatch;
mod envelope;
mod error;
mod families;
mod gate;
mod listener;
mod logging;
mod memory;
pub mod parsers;
mod pidfile;
mod pool;
mod registry;
mod reply;
mod signals;
mod sync;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

/// The version `ping` reports. Above the original's 0.7, whose commands we all answer.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The whole agent: reads the configuration, serves the host until told to exit.
pub fn run() -> ExitCode {
    memory::tune_allocator();
    let args = match config::file::args(std::env::args().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("phoenix-ga: {e}");
            return ExitCode::from(2);
        }
    };
    let as_qemu_ga = args.first().is_some_and(|a| config::invoked_as_qemu_ga(a));
    let mut cli = config::Cli::parse_from(args);
    cli.as_qemu_ga = as_qemu_ga;
    if cli.dump_conf {
        print!("{}", cli.dump());
        return ExitCode::SUCCESS;
    }
    let listeners = match cli.listeners() {
        Ok(listeners) => listeners,
        Err(e) => {
            eprintln!("phoenix-ga: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.daemonize {
        // Before any thread exists: only the calling thread survives a fork.
        if let Err(e) = nix::unistd::daemon(false, false) {
            eprintln!("phoenix-ga: cannot become a daemon: {e}");
            return ExitCode::from(1);
        }
    }
    if let Err(e) = logging::init(cli.debug, cli.log_file.as_deref()) {
        eprintln!("phoenix-ga: {e}");
        return ExitCode::from(1);
    }
    let signals = match signals::block() {
        Ok(set) => set,
        Err(e) => {
            tracing::error!(error = %e, "cannot block signals");
            return ExitCode::from(1);
        }
    };
    let pidfile = match cli.pidfile.as_deref().map(pidfile::claim).transpose() {
        Ok(pidfile) => pidfile,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    let agent = match agent::Agent::new(cli) {
        Ok(agent) => Arc::new(agent),
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(pidfile) = pidfile {
        agent.on_exit(move || pidfile.remove());
    }
    if let Err(e) = agent.start() {
        tracing::error!(error = %e, "cannot start the agent's background work");
        return ExitCode::from(1);
    }
    if let Err(e) = signals::spawn(Arc::clone(&agent), signals) {
        tracing::error!(error = %e, "cannot start the signal thread");
        return ExitCode::from(1);
    }
    tracing::info!(
        version = VERSION,
        method = ?agent.config.method,
        path = %agent.config.path().display(),
        "starting"
    );
    if let Err(e) = listener::serve(&agent, listeners) {
        tracing::error!("{e}");
        agent.exit(1);
    }
    ExitCode::SUCCESS
}
