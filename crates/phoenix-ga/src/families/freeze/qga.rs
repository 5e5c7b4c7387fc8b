//! The qemu-ga dialect's freeze commands: `guest-fsfreeze-status`,
//! `guest-fsfreeze-freeze`, `guest-fsfreeze-freeze-list` and `guest-fsfreeze-thaw`.
//!
//! They drive the same freezer as the Phoenix commands, with qemu-ga's rules: the
//! freeze commands count what they froze, skip what cannot be frozen (and, in a list,
//! what is not a mount point), leave the status "thawed" when they froze nothing, and
//! are refused while frozen (by the frozen gate, as qemu-ga refuses them). Status and
//! thaw run inline and while frozen: a thaw never waits behind other work.

use std::path::PathBuf;
use std::time::Instant;

use phoenix_proto::qga::Empty;
use phoenix_proto::types::freeze::qga::cmd::{
    GuestFsfreezeFreeze, GuestFsfreezeFreezeList, GuestFsfreezeStatus, GuestFsfreezeThaw,
};
use phoenix_proto::types::freeze::qga::{self as wire, GuestFsfreezeFreezeListArgs};

use super::{Freeze, Selection};
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run};
use crate::error::Error;

/// A count as the wire carries it.
fn count(n: usize) -> Result<i64, Error> {
    i64::try_from(n).map_err(|_| Error::Internal(format!("{n} does not fit an int")))
}

/// Freezes what `selection` names; the count. A freeze that froze nothing is ended at
/// once, so the status stays "thawed" (the schema's promise).
fn freeze(agent: &Agent, selection: Selection, asked_at: Instant) -> Result<i64, Error> {
    let freeze = agent.family::<Freeze>();
    let n = freeze.freeze(selection, asked_at)?;
    if n == 0 && freeze.in_force() {
        freeze.thaw()?;
    }
    count(n)
}

/// `"frozen"` while a freeze is in force (also one a previous agent left, or one made
/// with the Phoenix dialect's `fs-freeze`), else `"thawed"`.
impl Command for GuestFsfreezeStatus {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        let status = match agent.family::<Freeze>().in_force() {
            true => wire::GuestFsfreezeStatus::Frozen,
            false => wire::GuestFsfreezeStatus::Thawed,
        };
        reply::<Self>(&status)
    }
}

/// Every local filesystem, those on loop and device-mapper devices included, as
/// qemu-ga selects them; how many were frozen.
impl Command for GuestFsfreezeFreeze {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, args: Empty) -> Outcome {
        Self::run_asked_at(agent, args, Instant::now())
    }

    fn run_asked_at(agent: &Agent, _: Empty, asked_at: Instant) -> Outcome {
        let n = freeze(agent, Selection::All { loop_and_dm: true }, asked_at)?;
        reply::<Self>(&n)
    }
}

/// The mount points listed (entries that are not mount points are skipped), or every
/// local filesystem when `mountpoints` is absent; how many were frozen.
impl Command for GuestFsfreezeFreezeList {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: GuestFsfreezeFreezeListArgs) -> Outcome {
        Self::run_asked_at(agent, a, Instant::now())
    }

    fn run_asked_at(agent: &Agent, a: GuestFsfreezeFreezeListArgs, asked_at: Instant) -> Outcome {
        let selection = match a.mountpoints {
            None => Selection::All { loop_and_dm: true },
            Some(list) => Selection::Listed(list.into_iter().map(PathBuf::from).collect()),
        };
        let n = freeze(agent, selection, asked_at)?;
        reply::<Self>(&n)
    }
}

/// Thaws what a freeze of either dialect froze; how many filesystems this call thawed
/// (0 when nothing was frozen).
impl Command for GuestFsfreezeThaw {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        let n = agent.family::<Freeze>().thaw()?;
        reply::<Self>(&count(n)?)
    }
}
