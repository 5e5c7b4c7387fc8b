//! The agent's own commands: `ping`, `get-commands`, `agent-shutdown`.

use super::{reply, Args, Command, Outcome, Run};
use crate::agent::Agent;

/// The core family's table.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "ping",
        run: Run::Inline,
        while_frozen: true,
        handler: ping,
    },
    Command {
        name: "get-commands",
        run: Run::Inline,
        while_frozen: true,
        handler: get_commands,
    },
    Command {
        name: "agent-shutdown",
        run: Run::Inline,
        while_frozen: true,
        handler: agent_shutdown,
    },
];

/// Returns the agent's version string.
fn ping(_: &Agent, _: &Args<'_>) -> Outcome {
    reply(crate::VERSION)
}

/// Returns every command name the agent answers (aliases included, disabled ones not).
fn get_commands(agent: &Agent, _: &Args<'_>) -> Outcome {
    reply(agent.command_names())
}

/// Replies `true`; the dispatcher then exits the agent cleanly once the reply is out.
fn agent_shutdown(agent: &Agent, _: &Args<'_>) -> Outcome {
    agent.request_shutdown();
    reply(&true)
}
