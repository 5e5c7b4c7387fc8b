//! The Phoenix dialect's freeze commands: `fs-freeze` (with our `mountpoints`
//! extension), `fs-unfreeze`, `get-freeze-status` and `fs-sync` (extension).
//!
//! Thaw and status run inline and while frozen: a thaw must never wait behind other
//! work. `fs-freeze` runs on the pool (the sync inside FIFREEZE may take a while) and
//! is allowed through the frozen gate so that a second freeze gets its own error
//! (EBUSY) rather than the gate's.

use std::path::PathBuf;
use std::time::Instant;

use phoenix_proto::types::freeze::cmd::{FsFreeze, FsSync, FsUnfreeze, GetFreezeStatus};
use phoenix_proto::types::freeze::FsFreezeArgs;
use phoenix_proto::NoArgs;

use super::{freezer, Freeze, Selection};
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run};

/// Freezes every local filesystem, or exactly the `mountpoints` given (extension).
impl Command for FsFreeze {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, a: FsFreezeArgs) -> Outcome {
        Self::run_asked_at(agent, a, Instant::now())
    }

    fn run_asked_at(agent: &Agent, a: FsFreezeArgs, asked_at: Instant) -> Outcome {
        let freeze = agent.family::<Freeze>();
        // Before looking at the arguments: a second freeze is EBUSY whatever it names.
        if freeze.in_force() {
            return Err(freezer::already_frozen());
        }
        let selection = match a.mountpoints {
            None => Selection::All { loop_and_dm: false },
            Some(list) => Selection::Named(list.into_iter().map(PathBuf::from).collect()),
        };
        freeze.freeze(selection, asked_at)?;
        reply::<Self>(&true)
    }
}

/// Thaws what fs-freeze froze; `true` also when nothing was frozen (as the original).
impl Command for FsUnfreeze {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: NoArgs) -> Outcome {
        agent.family::<Freeze>().thaw()?;
        reply::<Self>(&true)
    }
}

/// Whether the guest is frozen (a freeze completed, or a previous agent's marker says
/// so, and no thaw since).
impl Command for GetFreezeStatus {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: NoArgs) -> Outcome {
        reply::<Self>(&agent.family::<Freeze>().in_force())
    }
}

/// Extension: flushes every filesystem (sync(2)). Refused while frozen, where it
/// would hang.
impl Command for FsSync {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, _: NoArgs) -> Outcome {
        agent.family::<Freeze>().sync();
        reply::<Self>(&true)
    }
}
