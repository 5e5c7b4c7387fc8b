//! Filesystem freeze: `fs-freeze`, `fs-unfreeze`, `get-freeze-status`, and our
//! extension `fs-sync`.
//!
//! Hosts freeze a guest to take a consistent disk snapshot. The field's worst bugs are
//! freezes that never end and agents that hang themselves on their own frozen disk;
//! [`freezer`] says how this one avoids both. [`mounts`] picks the filesystems,
//! [`marker`] remembers them across a restart.

use std::path::PathBuf;
use std::sync::Arc;

use nix::errno::Errno;
use phoenix_proto::types::freeze::FsFreezeArgs;

use super::{reply, Args, Command, Outcome, Run};
use crate::agent::Agent;
use crate::error::{Context, Error};

pub mod freezer;
mod ioctl;
mod marker;
pub mod mounts;

pub use freezer::Freezer;

/// The freeze family's table. Thaw and status run inline and while frozen: a thaw
/// must never wait behind other work. fs-freeze runs on a worker (the sync inside
/// FIFREEZE may take a while) and is allowed through the frozen gate so that a second
/// freeze gets its own error (EBUSY) rather than the gate's.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "fs-freeze",
        run: Run::Worker,
        while_frozen: true,
        handler: fs_freeze,
    },
    Command {
        name: "fs-unfreeze",
        run: Run::Inline,
        while_frozen: true,
        handler: fs_unfreeze,
    },
    Command {
        name: "get-freeze-status",
        run: Run::Inline,
        while_frozen: true,
        handler: get_freeze_status,
    },
    Command {
        name: "fs-sync",
        run: Run::Worker,
        while_frozen: false,
        handler: fs_sync,
    },
];

/// Starts what keeps a guest from staying frozen: takes over a previous agent's
/// marker, installs a panic hook that thaws, and starts the auto-thaw timer. (The
/// exit path, for SIGTERM, SIGINT and agent-shutdown, thaws in `Agent::exit` itself,
/// before any exit hook can touch a frozen disk.) Call once, right after the agent
/// is built and before it serves.
pub fn install(agent: &Arc<Agent>) -> std::io::Result<()> {
    agent.freeze.recover(agent);
    let a = Arc::clone(agent);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Conservative: any panic thaws (a caught one in a command too): an early
        // thaw costs a snapshot, a missed one costs the guest.
        a.freeze.emergency_thaw(&a, "panic", false);
        previous(info);
    }));
    if agent.freeze.has_timeout() {
        let a = Arc::clone(agent);
        std::thread::Builder::new()
            .name("freeze-timer".into())
            .stack_size(128 << 10)
            .spawn(move || a.freeze.run_timer(&a))?;
    }
    Ok(())
}

/// Freezes every local filesystem, or exactly the `mountpoints` given (extension).
fn fs_freeze(agent: &Agent, args: &Args<'_>) -> Outcome {
    let a: FsFreezeArgs = args.parse()?;
    // Before looking at the arguments: a second freeze is EBUSY whatever it names.
    if agent.freeze.is_frozen() {
        return Err(freezer::already_frozen());
    }
    let (targets, strict) = match a.mountpoints {
        None => (mounts::select_all(&mount_table()?, mounts::resolve), false),
        Some(list) => (named(args, &list)?, true),
    };
    agent.freeze.freeze(agent, &targets, strict)?;
    reply(&true)
}

fn mount_table() -> Result<Vec<mounts::Mount>, Error> {
    mounts::read().context(|| format!("read {}", mounts::MOUNTS))
}

/// Checks an explicit list before anything is frozen: absolute paths (else invalid
/// arguments), existing (else the errno of the lookup, ENOENT), mount points (else
/// EINVAL, as umount(2) says of a path that is not one).
fn named(args: &Args<'_>, list: &[String]) -> Result<Vec<PathBuf>, Error> {
    if list.is_empty() {
        return Err(args.invalid("\"mountpoints\" must not be empty"));
    }
    let mut canonical = Vec::with_capacity(list.len());
    for p in list {
        let path = PathBuf::from(p);
        if !path.is_absolute() {
            return Err(args.invalid(format!("mountpoint \"{p}\" is not an absolute path")));
        }
        canonical.push(mounts::canonical(&path).context(|| format!("mountpoint {p}"))?);
    }
    mounts::select_named(&mount_table()?, &canonical, mounts::resolve).map_err(|p| {
        Error::errno(
            Errno::EINVAL,
            format!("mountpoint {}: not a mount point", p.display()),
        )
    })
}

/// Thaws what fs-freeze froze; `true` also when nothing was frozen (as the original).
fn fs_unfreeze(agent: &Agent, _: &Args<'_>) -> Outcome {
    agent.freeze.thaw(agent, "fs-unfreeze", None)?;
    reply(&true)
}

/// Whether the guest is frozen (a freeze completed, or a previous agent's marker
/// says so, and no thaw since).
fn get_freeze_status(agent: &Agent, _: &Args<'_>) -> Outcome {
    reply(&agent.freeze.is_frozen())
}

/// Extension: flushes every filesystem (sync(2)). Refused while frozen, where it
/// would hang.
fn fs_sync(_: &Agent, _: &Args<'_>) -> Outcome {
    nix::unistd::sync();
    reply(&true)
}

#[cfg(test)]
mod tests;
