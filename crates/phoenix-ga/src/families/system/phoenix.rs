//! The Phoenix dialect's `sysinfo`.
//!
//! It may run while the filesystems are frozen: everything it reads lives in /proc,
//! /sys or /run (tmpfs), reading never waits for a thaw, and statvfs takes no freeze
//! protection. The host can thus still see the guest's state during a long backup.

use phoenix_proto::types::system::cmd::Sysinfo;
use phoenix_proto::NoArgs;

use super::System;
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run};

/// The guest's summary; takes no arguments.
impl Command for Sysinfo {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: NoArgs) -> Outcome {
        reply::<Self>(&agent.family::<System>().sysinfo()?)
    }
}
