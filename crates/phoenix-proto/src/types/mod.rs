//! Typed arguments and return values of the commands, shared by agent and host.
//!
//! Each command family keeps its structs in a submodule. Argument structs ignore
//! unknown fields (old hosts send some) and default only what the command reference
//! documents a default for.
pub mod files;

pub mod freeze;
pub mod net;
pub mod system;
