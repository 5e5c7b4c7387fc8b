//! Injected faults against the real binary: signal storms, a host that vanishes
//! mid-reply, a full disk, files and directories pulled away under open handles,
//! descriptor exhaustion, and arguments of every wrong type and size. Each test checks
//! what the OS shows afterwards, not only the replies.

mod arguments;
mod exhaustion;
mod helpers;
mod signals;
mod vanishing_files;
mod vanishing_host;

/// The agent binary under test.
const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");
