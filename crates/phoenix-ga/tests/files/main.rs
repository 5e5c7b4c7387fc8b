//! File and directory commands against the real binary, checked against what the OS
//! shows afterwards (contents, md5sum, lstat, /proc).

mod handles;
mod helpers;
mod metadata;
mod open;
mod pipeline;
mod qga;
mod transfer;

/// The agent binary under test.
const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");
