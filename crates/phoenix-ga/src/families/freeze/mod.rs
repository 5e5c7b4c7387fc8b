//! The freeze family: filesystem freeze and thaw for consistent snapshots.
//!
//! Hosts freeze a guest to take a consistent disk snapshot. The field's worst bugs are
//! freezes that never end and agents that hang themselves on their own frozen disk;
//! [`freezer`] says how this one avoids both. [`mounts`] picks the filesystems,
//! [`marker`] remembers them across a restart, [`hook`] runs the fsfreeze hook around
//! a freeze. The Phoenix commands (`fs-freeze`, `fs-unfreeze`, `get-freeze-status`, and
//! our extension `fs-sync`) are in [`phoenix`]; qemu-ga's (`guest-fsfreeze-status`,
//! `-freeze`, `-freeze-list`, `-thaw`) in [`qga`]. Both dialects share one freezer: a
//! freeze made in one is seen, and can be thawed, in the other.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;
use phoenix_proto::types::freeze::cmd;
use phoenix_proto::types::freeze::qga::cmd as qga_cmd;

use super::{Family, Setup};
use crate::agent::Agent;
use crate::command::{entry, Entry};
use crate::error::{Context, Error};

pub mod freezer;
pub mod hook;
mod ioctl;
mod marker;
pub mod mounts;
mod phoenix;
mod qga;

pub use freezer::Freezer;
pub use hook::Hook;

/// Which filesystems a freeze takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every local filesystem (see `mounts::select_all`, `select_all_qga`); those that cannot be frozen
    /// (EOPNOTSUPP, EBUSY) are skipped. With `loop_and_dm` (qemu-ga's selection),
    /// filesystems on loop and device-mapper devices (LVM, dm-crypt) are frozen too;
    /// without it (the Phoenix protocol's) they are left out.
    All {
        /// Freeze filesystems on loop and device-mapper devices too.
        loop_and_dm: bool,
    },
    /// Exactly these mount points (absolute paths); every failure is an error.
    Named(Vec<PathBuf>),
    /// These mount points, as qemu-ga takes a list: an entry that is not a mount
    /// point (missing, relative, a directory inside a filesystem) is skipped and
    /// logged, and so is a filesystem that cannot be frozen (EOPNOTSUPP, EBUSY).
    Listed(Vec<PathBuf>),
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
    /// thawed again. A [`Selection::Named`] list is checked before anything is frozen:
    /// absolute paths (else invalid arguments), existing (else the errno of the
    /// lookup, ENOENT), mount points (else EINVAL, as umount(2) says of a path that is
    /// not one). A [`Selection::Listed`] list of nothing freezable freezes nothing and
    /// returns 0 (no hook runs). A freeze that froze nothing otherwise stays in force
    /// until a thaw, as the Phoenix protocol has it (qemu-ga's adapters thaw it at
    /// once).
    ///
    /// `asked_at`: when the request was read (see [`Freezer::freeze`]).
    pub fn freeze(&self, selection: Selection, asked_at: Instant) -> Result<usize, Error> {
        if self.freezer.in_force() {
            return Err(freezer::already_frozen());
        }
        let (targets, strict) = match selection {
            Selection::All { loop_and_dm: false } => {
                (mounts::select_all(&mount_table()?, mounts::resolve), false)
            }
            Selection::All { loop_and_dm: true } => {
                (mounts::select_all_qga(&mount_table()?, mounts::resolve), false)
            }
            Selection::Named(list) => (named(&list)?, true),
            Selection::Listed(list) => {
                let targets = listed(&list)?;
                if targets.is_empty() {
                    return Ok(0);
                }
                (targets, false)
            }
        };
        self.freezer.freeze(&targets, strict, asked_at)
    }

    /// Thaws what [`Freeze::freeze`] froze (and cancels a freeze asked for before
    /// this thaw that has not started yet); how many filesystems this call thawed.
    pub fn thaw(&self) -> Result<usize, Error> {
        self.freezer.note_thaw_asked();
        self.freezer.thaw("thaw command", None)
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
    /// With `-F`, it runs the fsfreeze hook around each freeze, bounded by
    /// `--fsfreeze-hook-timeout`.
    fn new(setup: &Setup<'_>) -> Self {
        let config = setup.config;
        let hook = config
            .fsfreeze_hook
            .as_deref()
            .map(|path| Hook::new(path, config.fsfreeze_hook_timeout));
        Self {
            freezer: Freezer::new(
                &config.state_dir,
                config.freeze_timeout,
                Arc::clone(setup.gate),
                hook,
            ),
        }
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 8] = [
            entry::<cmd::FsFreeze>(),
            entry::<cmd::FsUnfreeze>(),
            entry::<cmd::GetFreezeStatus>(),
            entry::<cmd::FsSync>(),
            entry::<qga_cmd::GuestFsfreezeStatus>(),
            entry::<qga_cmd::GuestFsfreezeFreeze>(),
            entry::<qga_cmd::GuestFsfreezeFreezeList>(),
            entry::<qga_cmd::GuestFsfreezeThaw>(),
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

    /// Thaws, then settles the fsfreeze hook: a freeze hook still running is killed,
    /// a thaw hook still running is waited for, and one still owed is run.
    fn before_exit(&self) {
        self.freezer.emergency_thaw("agent exit", true);
        if let Some(hook) = self.freezer.hook() {
            hook.at_exit();
        }
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

/// Resolves a qemu-ga list to the mount points to freeze: each entry that is an
/// absolute path naming a mount point of the table (after resolving symlinks, `..` and
/// a trailing `/`); the others are skipped and logged, as qemu-ga ignores them.
fn listed(list: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let table = mount_table()?;
    let mut found = Vec::with_capacity(list.len());
    for p in list {
        let canonical = match p.is_absolute().then(|| mounts::canonical(p)) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                tracing::warn!(mountpoint = %p.display(), error = %e, "not a mount point: skipped");
                continue;
            }
            None => {
                tracing::warn!(mountpoint = %p.display(), "not an absolute path: skipped");
                continue;
            }
        };
        if table.iter().any(|m| m.mountpoint == canonical) {
            found.push(canonical);
        } else {
            tracing::warn!(mountpoint = %p.display(), "not a mount point: skipped");
        }
    }
    // Every entry is in the table now: the selection cannot fail.
    mounts::select_named(&table, &found, mounts::resolve).map_err(|p| {
        Error::Internal(format!("{} left the mount table", p.display()))
    })
}

#[cfg(test)]
mod tests;
