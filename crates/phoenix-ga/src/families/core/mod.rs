//! The agent's own commands: `ping`, `get-commands`, `agent-shutdown`. All run
//! inline and while frozen: they touch nothing but the agent's memory.

use phoenix_proto::types::core::cmd::{AgentShutdown, GetCommands, Ping};
use phoenix_proto::{Dialect, NoArgs};

use super::{Family, Setup};
use crate::agent::Agent;
use crate::command::{entry, reply, Command, Entry, Outcome, Run};

/// The core family (it has no state of its own).
#[derive(Debug, Default)]
pub struct Core;

impl Family for Core {
    fn new(_: &Setup<'_>) -> Self {
        Core
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 3] = [
            entry::<Ping>(),
            entry::<GetCommands>(),
            entry::<AgentShutdown>(),
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
