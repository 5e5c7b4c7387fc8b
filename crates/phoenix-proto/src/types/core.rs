//! The agent's own commands: `ping`, `get-commands`, `agent-shutdown`. None takes
//! arguments.

/// The core family's commands.
pub mod cmd {
    use crate::NoArgs;

    crate::commands! { Phoenix;
        /// `ping`: the agent's version.
        Ping = "ping" (NoArgs) -> String;
        /// `get-commands`: every command name the agent answers.
        GetCommands = "get-commands" (NoArgs) -> Vec<String>;
        /// `agent-shutdown`: replies `true`, then the agent exits cleanly.
        AgentShutdown = "agent-shutdown" (NoArgs) -> bool;
    }
}
