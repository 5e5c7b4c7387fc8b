//! fs-freeze, fs-unfreeze, get-freeze-status and fs-sync against the real binary, on
//! ext4 images each test creates and loop-mounts itself (root only).
//!
//! NEVER freeze this machine's own filesystems: every fs-freeze here names explicit
//! `mountpoints` of the test's own loop mounts. The default all-filesystems freeze is
//! tested inside the KVM guest of the end-to-end tests; its selection is unit-tested
//! on mount-table fixtures (src/commands/freeze/mounts.rs).
//!
//! Each mount is a guard whose Drop thaws (`fsfreeze -u`), unmounts and detaches its
//! loop device, so a failing test leaves nothing frozen or mounted behind. A writer
//! blocked on a frozen filesystem cannot be killed (uninterruptible sleep), so guards
//! thaw before anything else.

mod auto_thaw;
mod freeze_thaw;
mod helpers;
mod marker;
mod own_files;
mod qga;
mod refusals;

/// The agent binary under test.
const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");
