//! The agent's own commands: Phoenix's `ping`, `get-commands`, `agent-shutdown`, and
//! qemu-ga's `guest-sync`, `guest-sync-delimited`, `guest-ping`, `guest-info`. All run
//! inline and while frozen: they touch nothing but the agent's memory.

use phoenix_proto::qga::Empty;
use phoenix_proto::types::core::cmd::{AgentShutdown, GetCommands, Ping};
use phoenix_proto::types::core::qga::cmd::{GuestInfo, GuestPing, GuestSync, GuestSyncDelimited};
use phoenix_proto::types::core::qga::{GuestAgentCommandInfo, GuestAgentInfo, SyncArgs};
use phoenix_proto::{Dialect, NoArgs};

use super::{Family, Setup};
use crate::agent::Agent;
use crate::command::{entry, reply, Command, Entry, Outcome, Run, Value};

/// The core family (it has no state of its own).
#[derive(Debug, Default)]
pub struct Core;

impl Family for Core {
    fn new(_: &Setup<'_>) -> Self {
        Core
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 7] = [
            entry::<Ping>(),
            entry::<GetCommands>(),
            entry::<AgentShutdown>(),
            entry::<GuestSync>(),
            entry::<GuestSyncDelimited>(),
            entry::<GuestPing>(),
            entry::<GuestInfo>(),
        ];
        &COMMANDS
    }
}

/// Returns the agent's version string.
impl Command for Ping {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;

    fn run(_: &Agent, _: NoArgs) -> Outcome {
        reply::<Self>(&crate::VERSION.to_string())
    }
}

/// Returns every command name the agent answers in this dialect (aliases included,
/// disabled ones not).
impl Command for GetCommands {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: NoArgs) -> Outcome {
        let names = agent
            .registry
            .enabled(Dialect::Phoenix)
            .map(|e| e.name.to_string())
            .collect();
        reply::<Self>(&names)
    }
}

/// Replies `true`; the dispatcher then exits the agent cleanly once the reply is out.
impl Command for AgentShutdown {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: NoArgs) -> Outcome {
        agent.request_shutdown();
        reply::<Self>(&true)
    }
}

/// Returns `id`: a host reads replies until it sees its own, dropping stale ones.
impl Command for GuestSync {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;
    const RESYNCS: bool = true;

    fn run(_: &Agent, a: SyncArgs) -> Outcome {
        reply::<Self>(&a.id)
    }
}

/// As `guest-sync`, the reply preceded by 0xFF, which tells the host to reset its
/// parser there.
impl Command for GuestSyncDelimited {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;
    const RESYNCS: bool = true;

    fn run(_: &Agent, a: SyncArgs) -> Outcome {
        match reply::<Self>(&a.id)? {
            Value::Json(raw) => Ok(Value::Delimited(raw)),
            other => Ok(other),
        }
    }
}

/// `{}`: the agent is there. Proxmox's liveness check.
impl Command for GuestPing {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;

    fn run(_: &Agent, _: Empty) -> Outcome {
        reply::<Self>(&Empty {})
    }
}

/// The agent's version and every command of the dialect, with whether it is enabled
/// and whether a success is answered.
impl Command for GuestInfo {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        let supported_commands = agent
            .registry
            .listed(Dialect::Qga)
            .map(|(e, enabled)| GuestAgentCommandInfo {
                name: e.name.to_string(),
                enabled,
                success_response: e.success_response,
            })
            .collect();
        reply::<Self>(&GuestAgentInfo {
            version: crate::VERSION.to_string(),
            supported_commands,
        })
    }
}
