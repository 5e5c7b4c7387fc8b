//! Filesystem freeze: `fs-freeze`, `fs-unfreeze`, `get-freeze-status`, `fs-sync`.
//!
//! The original's `fs-freeze` takes no arguments and freezes every local filesystem;
//! `mountpoints` is our compatible extension (an old host never sends it). The other
//! commands take no arguments; all four return a bool.

use serde::{Deserialize, Serialize};

/// Arguments of `fs-freeze`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsFreezeArgs {
    /// Extension: freeze exactly these mount points (absolute paths) instead of every
    /// local filesystem. Absent means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoints: Option<Vec<String>>,
}
