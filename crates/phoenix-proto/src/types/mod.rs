//! The commands, one submodule per family: their identity (a `cmd` module of
//! [`Command`](crate::Command) markers) and their typed arguments and return values,
//! shared by agent and host.
//!
//! Argument structs ignore unknown fields (old hosts send some) and default only what
//! the command reference documents a default for.

pub mod accounts;
pub mod control;
pub mod core;
pub mod exec;
pub mod files;

pub mod freeze;
pub mod net;
pub mod storage;
pub mod system;
