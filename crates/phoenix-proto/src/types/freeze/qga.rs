//! The qemu-ga dialect's freeze commands: `guest-fsfreeze-status`,
//! `guest-fsfreeze-freeze`, `guest-fsfreeze-freeze-list`, `guest-fsfreeze-thaw`, as
//! QEMU's `qga/qapi-schema.json` declares them.

use serde::{Deserialize, Serialize};

use crate::qga::Empty;

/// The return value of `guest-fsfreeze-status` (QAPI's `GuestFsfreezeStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestFsfreezeStatus {
    /// No freeze is in force.
    Thawed,
    /// A freeze is in force.
    Frozen,
}

/// Arguments of `guest-fsfreeze-freeze-list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestFsfreezeFreezeListArgs {
    /// The mount points to freeze; absent means every local filesystem. Entries that
    /// are not mount points are ignored, as qemu-ga ignores them. `null` is refused,
    /// as qemu-ga refuses it ("expected: array"), never read as "absent": a host whose
    /// list came out empty must not freeze everything.
    #[serde(
        default,
        deserialize_with = "super::present_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub mountpoints: Option<Vec<String>>,
}

/// The qemu-ga dialect's freeze commands.
pub mod cmd {
    use super::*;

    crate::commands! { Qga;
        /// `guest-fsfreeze-status`: `"thawed"` or `"frozen"`.
        GuestFsfreezeStatus = "guest-fsfreeze-status" (Empty) -> super::GuestFsfreezeStatus;
        /// `guest-fsfreeze-freeze`: every local filesystem; how many were frozen.
        GuestFsfreezeFreeze = "guest-fsfreeze-freeze" (Empty) -> i64;
        /// `guest-fsfreeze-freeze-list`: the mount points named (all when absent); how
        /// many were frozen.
        GuestFsfreezeFreezeList = "guest-fsfreeze-freeze-list" (GuestFsfreezeFreezeListArgs) -> i64;
        /// `guest-fsfreeze-thaw`: how many filesystems this call thawed.
        GuestFsfreezeThaw = "guest-fsfreeze-thaw" (Empty) -> i64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<GuestFsfreezeFreezeListArgs, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn mountpoints_absent_null_and_lists() {
        assert_eq!(parse("{}").unwrap().mountpoints, None);
        assert_eq!(
            parse(r#"{"mountpoints":[]}"#).unwrap().mountpoints,
            Some(vec![])
        );
        let e = parse(r#"{"mountpoints":null}"#).unwrap_err();
        assert!(
            e.starts_with("invalid type: null, expected a sequence"),
            "{e}"
        );
        assert!(parse(r#"{"other":1}"#)
            .unwrap_err()
            .starts_with("unknown field `other`"));
        parse(r#"{"mountpoints":[1]}"#).unwrap_err();
    }

    #[test]
    fn status_is_lowercase() {
        assert_eq!(
            serde_json::to_string(&GuestFsfreezeStatus::Frozen).unwrap(),
            "\"frozen\""
        );
        assert_eq!(
            serde_json::to_string(&GuestFsfreezeStatus::Thawed).unwrap(),
            "\"thawed\""
        );
    }
}
