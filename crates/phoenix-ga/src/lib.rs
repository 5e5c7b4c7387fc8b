//! `phoenix-ga`: the Phoenix guest agent.
//!
//! Reads JSON commands from the host (virtio-serial port, serial tty or UNIX socket),
//! runs them concurrently and writes one reply per request. See the README and
//! `docs/commands.md` for the protocol.
//!
//! A library so that the fuzz targets (`fuzz/`) reach the agent's parsers through
//! [`parsers`]; the binary (`main.rs`) only calls [`run`].

mod agent;
mod buffer;
mod commands;
mod conffile;
mod config;
mod dispatch;
mod error;
mod logging;
pub mod parsers;
mod pool;
mod signals;
mod transport;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

/// The version `ping` reports. Above the original's 0.7, whose commands we all answer.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The whole agent: reads the configuration, serves the host until told to exit.
pub fn run() -> ExitCode {
    tune_malloc();
    let args = match conffile::args(std::env::args().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("phoenix-ga: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = config::Cli::parse_from(args);
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
    let agent = match agent::Agent::new(cli) {
        Ok(agent) => Arc::new(agent),
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = commands::freeze::install(&agent) {
        tracing::error!(error = %e, "cannot start the freeze timer");
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
    if let Err(e) = transport::serve(&agent) {
        tracing::error!("{e}");
        agent.exit(1);
    }
    ExitCode::SUCCESS
}

/// A long-lived agent with a few threads: two malloc arenas are plenty, and a fixed
/// 1 MiB mmap threshold sends large buffers (file chunks and their base64) straight
/// back to the kernel when freed, so one big transfer does not leave the RSS high for
/// the agent's life. (Keeping them in the heap was tried: slightly faster 4 MiB
/// downloads, but the RSS after transfers tripled.)
fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes glibc allocator parameters; called before any other
    // thread exists, with valid parameter constants.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
