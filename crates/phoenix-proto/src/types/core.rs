//! The agent's own commands: Phoenix's `ping`, `get-commands`, `agent-shutdown`
//! (none takes arguments), and qemu-ga's `guest-sync`, `guest-sync-delimited`,
//! `guest-ping`, `guest-info` ([`qga`]).

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

/// The qemu-ga dialect's protocol commands.
pub mod qga {
    use serde::{Deserialize, Serialize};

    use crate::qga::Empty;

    /// Arguments of `guest-sync` and `guest-sync-delimited`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SyncArgs {
        /// A random number, returned as it came.
        pub id: i64,
    }

    /// The return value of `guest-info`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct GuestAgentInfo {
        /// The agent's version.
        pub version: String,
        /// Every command of the dialect, enabled or not.
        pub supported_commands: Vec<GuestAgentCommandInfo>,
    }

    /// One command of `guest-info`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub struct GuestAgentCommandInfo {
        /// Its name.
        pub name: String,
        /// Whether the operator left it enabled (`-b`, `-a`, the block and allow lists).
        pub enabled: bool,
        /// Whether a success is answered (a shutdown is not).
        pub success_response: bool,
    }

    /// The qemu-ga dialect's protocol commands.
    pub mod cmd {
        use super::*;

        crate::commands! { Qga;
            /// `guest-sync`: returns `id`; a host reads replies until it sees it.
            GuestSync = "guest-sync" (SyncArgs) -> i64;
            /// `guest-sync-delimited`: as `guest-sync`, the reply preceded by 0xFF.
            GuestSyncDelimited = "guest-sync-delimited" (SyncArgs) -> i64;
            /// `guest-ping`: `{}`.
            GuestPing = "guest-ping" (Empty) -> Empty;
            /// `guest-info`: the version and every command.
            GuestInfo = "guest-info" (Empty) -> GuestAgentInfo;
        }
    }
}
