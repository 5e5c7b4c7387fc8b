//! The freeze family: filesystem freeze and thaw for consistent snapshots.
//!
//! Hosts freeze a guest to take a consistent disk snapshot. The field's worst bugs are
//! freezes that never end and agents that hang themselves on their own frozen disk;
//! [`freezer`] says how this one avoids both. [`mounts`] picks the filesystems,
//! [`marker`] remembers them across a restart. The Phoenix commands (`fs-freeze`,
//! `fs-unfreeze`, `get-freeze-status`, and our extension `fs-sync`) are in
//! [`phoenix`].

use std::path::PathBuf;
use std::sync::Arc;

use nix::errno::Errno;
use phoenix_proto::types::freeze::cmd;

use super::{Family, Setup};
use crate::agent::Agent;
use crate::command::{entry, Entry};
use crate::error::{Context, Error};

pub mod freezer;
mod ioctl;
mod marker;
pub mod mounts;
mod phoenix;

pub use freezer::Freezer;

/// Which filesystems a freeze takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every local filesystem; those that cannot be frozen (EOPNOTSUPP, EBUSY) are
    /// skipped.
    All,
    /// Exactly these mount points (absolute paths); every failure is an error.
    Named(Vec<PathBuf>),
}

/// The freeze family: its freezer.
#[derive(Debug)]
pub struct Freeze {
    freezer: Freezer,
}

impl Freeze {
    /// The freezer (tests of the paths the wire cannot reach).
    #[cfg(test)]
    pub fn freezer(&self) -> &Freezer {
        &self.freezer
    }

    /// Freezes the filesystems `selection` names; how many were frozen. A second
    /// freeze is EBUSY whatever it names; on any error everything this call froze is
    /// thawed again. An explicit list is checked before anything is frozen: absolute
    /// paths (else invalid arguments), existing (else the errno of the lookup, ENOENT),
    /// mount points (else EINVAL, as umount(2) says of a path that is not one).
    pub fn freeze(&self, selection: Selection) -> Result<usize, Error> {
        if self.freezer.in_force() {
            return Err(freezer::already_frozen());
        }
        let (targets, strict) = match selection {
            Selection::All => (mounts::select_all(&mount_table()?, mounts::resolve), false),
            Selection::Named(list) => (named(&list)?, true),
        };
        self.freezer.freeze(&targets, strict)
    }

    /// Thaws what [`Freeze::freeze`] froze; whether anything was frozen.
    pub fn thaw(&self) -> Result<bool, Error> {
        self.freezer.thaw("fs-unfreeze", None)
    }

    /// Whether a freeze is in force.
    pub fn in_force(&self) -> bool {
        self.freezer.in_force()
    }

    /// Flushes every filesystem (sync(2)); the frozen gate keeps it from running
    /// while frozen, where it would hang.
    pub fn sync(&self) {
        nix::unistd::sync();
    }
}

impl Family for Freeze {
    /// The family of an agent, keeping its marker in `--state-dir` and thawing by itself
    /// after `--freeze-timeout`; it is the one that closes the frozen gate.
    fn new(setup: &Setup<'_>) -> Self {
        let config = setup.config;
        Self {
            freezer: Freezer::new(
                &config.state_dir,
                config.freeze_timeout,
                Arc::clone(setup.gate),
            ),
        }
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 4] = [
            entry::<cmd::FsFreeze>(),
            entry::<cmd::FsUnfreeze>(),
            entry::<cmd::GetFreezeStatus>(),
            entry::<cmd::FsSync>(),
        ];
        &COMMANDS
    }

    /// Starts what keeps a guest from staying frozen: takes over a previous agent's
    /// marker, installs a panic hook that thaws, and starts the auto-thaw timer. (The
    /// exit path, for SIGTERM, SIGINT and agent-shutdown, thaws in
    /// [`Family::before_exit`], before any exit hook can touch a frozen disk.)
    fn start(&self, agent: &Arc<Agent>) -> std::io::Result<()> {
        self.freezer.recover();
        let a = Arc::clone(agent);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Conservative: any panic thaws (a caught one in a command too): an early
            // thaw costs a snapshot, a missed one costs the guest.
            a.family::<Freeze>().freezer.emergency_thaw("panic", false);
            previous(info);
        }));
        if self.freezer.has_timeout() {
            let a = Arc::clone(agent);
            std::thread::Builder::new()
                .name("freeze-timer".into())
                .stack_size(128 << 10)
                .spawn(move || a.family::<Freeze>().freezer.run_timer())?;
        }
        Ok(())
    }

    fn before_exit(&self) {
        self.freezer.emergency_thaw("agent exit", true);
    }
}

fn mount_table() -> Result<Vec<mounts::Mount>, Error> {
    mounts::read().context(|| format!("read {}", mounts::MOUNTS))
}

/// Resolves an explicit list to the mount points to freeze: not empty, absolute paths
/// (else invalid arguments), existing, mount points.
fn named(list: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    if list.is_empty() {
        return Err(Error::invalid("\"mountpoints\" must not be empty"));
    }
    let mut canonical = Vec::with_capacity(list.len());
    for p in list {
        if !p.is_absolute() {
            return Err(Error::invalid(format!(
                "mountpoint \"{}\" is not an absolute path",
                p.display()
            )));
        }
        canonical.push(mounts::canonical(p).context(|| format!("mountpoint {}", p.display()))?);
    }
    mounts::select_named(&mount_table()?, &canonical, mounts::resolve).map_err(|p| {
        Error::errno(
            Errno::EINVAL,
            format!("mountpoint {}: not a mount point", p.display()),
        )
    })
}

#[cfg(test)]
mod tests;
