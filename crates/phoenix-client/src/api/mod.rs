//! Typed calls: one method on [`Client`] per agent command, built on the commands'
//! identity in `phoenix_proto::types` (their names, argument and return structs), which
//! the agent answers from, so the two cannot drift. [`Client::invoke`] calls any
//! command by its marker type. This module holds the agent's own commands and what the
//! client learns about the agent; each command family has its own submodule.

pub mod accounts;
pub mod control;
pub mod exec;
pub mod files;
pub mod freeze;
pub mod net;
pub mod system;

use std::sync::Arc;

use phoenix_proto::types::core::cmd::{AgentShutdown, GetCommands, Ping};
use phoenix_proto::types::core::qga::cmd::GuestInfo;
use phoenix_proto::{Command, Dialect, NoArgs};
use serde::Serialize;

use crate::{Client, ClientError};

/// What the agent said about itself: its version and the commands it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// `ping`'s (or `guest-info`'s) answer, e.g. `0.8.0` (phoenix-rs), `0.7.1` (the Go
    /// original), `10.0.2` (qemu-ga).
    pub version: String,
    /// `get-commands`' answer, or the enabled commands of `guest-info`.
    pub commands: Vec<String>,
    /// The dialect the agent speaks on this connection.
    pub dialect: Dialect,
}

impl AgentInfo {
    /// Whether the agent answers `command`.
    pub fn supports(&self, command: &str) -> bool {
        self.commands.iter().any(|c| c == command)
    }

    /// Whether the agent has the large-transfer extensions of phoenix-rs: `count` on
    /// `file-read` (up to 32 MiB per reply) and request lines of up to 64 MiB, so a
    /// `file-write` may carry megabytes. The Go original (0.7 and older) reads 4 KiB
    /// per reply and ignores `count`; phoenix-rs starts at 0.8. Neither lists
    /// extensions in `get-commands`, so the version is the only sign.
    pub fn large_chunks(&self) -> bool {
        match self.dialect {
            Dialect::Phoenix => self.version_at_least(0, 8),
            // qemu-ga reads up to 48 MiB per guest-file-read and takes such writes.
            Dialect::Qga => true,
        }
    }

    /// Whether the agent runs a connection's reads and writes of one handle in the
    /// order they were sent (phoenix-rs 0.9 and later), so a transfer may keep several
    /// requests in flight. The Go original runs every request concurrently; qemu-ga
    /// serves one at a time but can lose replies to writes pipelined on a port, so with
    /// it one request is in flight too.
    pub fn ordered_io(&self) -> bool {
        self.is_phoenix_rs() && self.version_at_least(0, 9)
    }

    /// Whether the agent is phoenix-rs: in the qemu-ga dialect, whose `guest-info` has
    /// no name, by its version (phoenix-rs counts from 0.x, qemu-ga from 0.15 in 2011
    /// and 1.0 since 2012).
    pub fn is_phoenix_rs(&self) -> bool {
        match self.dialect {
            Dialect::Phoenix => self.version_at_least(0, 8),
            Dialect::Qga => self.version.trim().starts_with("0."),
        }
    }

    fn version_at_least(&self, want_major: u64, want_minor: u64) -> bool {
        let mut parts = self.version.trim().split('.').map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u64>()
                .ok()
        });
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor)) => (major, minor) >= (want_major, want_minor),
            _ => false,
        }
    }
}

impl Client {
    /// Calls command `C` with its typed arguments; its typed return value.
    pub fn invoke<C: Command>(&self, args: &C::Args) -> Result<C::Reply, ClientError> {
        self.call(C::NAME, args)
    }

    /// Calls command `C` without arguments: the request carries no `arguments` member
    /// at all, as hosts of the original agent send it.
    pub fn invoke_no_args<C: Command>(&self) -> Result<C::Reply, ClientError> {
        self.call_no_args(C::NAME)
    }

    /// `ping`: the agent's version. In the qemu-ga dialect, whose `guest-ping` returns
    /// nothing, the version of `guest-info`.
    pub fn ping(&self) -> Result<String, ClientError> {
        match self.dialect() {
            Dialect::Phoenix => self.invoke_no_args::<Ping>(),
            Dialect::Qga => Ok(self.invoke_no_args::<GuestInfo>()?.version),
        }
    }

    /// `get-commands`: every command name the agent answers (Phoenix dialect).
    pub fn commands(&self) -> Result<Vec<String>, ClientError> {
        self.invoke_no_args::<GetCommands>()
    }

    /// `agent-shutdown`: the agent replies `true` and exits (its init system restarts
    /// it). The connection is unusable afterwards on a unix-listen socket.
    pub fn agent_shutdown(&self) -> Result<bool, ClientError> {
        self.invoke_no_args::<AgentShutdown>()
    }

    /// Calls command `C`, which answers `true` on success, with `args` (`None`: no
    /// `arguments` member); anything but `true` is a protocol surprise.
    pub(crate) fn true_call<C: Command<Reply = bool>>(
        &self,
        args: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<(), ClientError> {
        let ok = match args {
            Some(args) => self.call(C::NAME, args)?,
            None => self.call_no_args(C::NAME)?,
        };
        if ok {
            Ok(())
        } else {
            Err(ClientError::Protocol(format!("{} returned false", C::NAME)))
        }
    }

    /// [`Client::true_call`] of a command without arguments.
    pub(crate) fn true_call_no_args<C: Command<Reply = bool, Args = NoArgs>>(
        &self,
    ) -> Result<(), ClientError> {
        self.true_call::<C>(None::<&NoArgs>)
    }

    /// The agent's version and commands, asked once per connection and then cached:
    /// the helpers use it to pick chunk sizes and optional commands.
    pub fn info(&self) -> Result<Arc<AgentInfo>, ClientError> {
        let mut cached = self.info_cache();
        if let Some(info) = cached.as_ref() {
            return Ok(Arc::clone(info));
        }
        let info = Arc::new(match self.dialect() {
            Dialect::Phoenix => AgentInfo {
                version: self.ping()?,
                commands: self.commands()?,
                dialect: Dialect::Phoenix,
            },
            Dialect::Qga => {
                let info = self.invoke_no_args::<GuestInfo>()?;
                AgentInfo {
                    version: info.version,
                    commands: info
                        .supported_commands
                        .into_iter()
                        .filter(|c| c.enabled)
                        .map(|c| c.name)
                        .collect(),
                    dialect: Dialect::Qga,
                }
            }
        });
        *cached = Some(Arc::clone(&info));
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(version: &str) -> AgentInfo {
        AgentInfo {
            dialect: Dialect::Phoenix,
            version: version.into(),
            commands: vec!["ping".into(), "file-read".into()],
        }
    }

    #[test]
    fn large_chunks_from_0_8_on() {
        assert!(info("0.8.0").large_chunks());
        assert!(info("0.10.2").large_chunks());
        assert!(info("1.0").large_chunks());
        assert!(info("0.8.0-rc1").large_chunks());
        assert!(!info("0.7.1").large_chunks());
        assert!(!info("0.4").large_chunks());
        assert!(!info("unknown").large_chunks());
        assert!(!info("").large_chunks());
    }

    #[test]
    fn ordered_io_from_0_9_on() {
        assert!(info("0.9.0").ordered_io());
        assert!(info("1.2").ordered_io());
        assert!(!info("0.8.0").ordered_io());
        assert!(!info("0.7").ordered_io());
    }

    #[test]
    fn qemu_ga_dialect_tells_us_from_qemu_ga() {
        let qga = |version: &str| AgentInfo {
            dialect: Dialect::Qga,
            ..info(version)
        };
        assert!(qga("0.9.0").ordered_io() && qga("0.9.0").is_phoenix_rs());
        assert!(!qga("10.0.2").ordered_io() && !qga("10.0.2").is_phoenix_rs());
        assert!(qga("10.0.2").large_chunks());
    }

    #[test]
    fn supports_lists_commands() {
        assert!(info("0.8.0").supports("file-read"));
        assert!(!info("0.8.0").supports("file-rename"));
    }
}
