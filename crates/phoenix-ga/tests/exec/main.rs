//! The exec commands against the real binary, in both dialects, checked against what
//! the OS shows (the process table, /proc, the bytes a child received): qemu-ga's
//! contract, the extensions, the hygiene of a child, the stress proof of the issue,
//! and a differential test against Debian's qemu-ga.
//!
//! Every command run here changes nothing on this machine (echo, cat, sleep, sh
//! printing to its own pipes).

mod contract;
mod differential;
mod extensions;
mod helpers;
mod hygiene;
mod stress;

/// The agent binary under test.
const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");
