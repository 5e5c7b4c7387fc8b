//! Filesystem freeze: `fs-freeze`, `fs-unfreeze`, `get-freeze-status`, `fs-sync`.
//!
//! The original's `fs-freeze` takes no arguments and freezes every local filesystem;
//! `mountpoints` is our compatible extension (an old host never sends it). The other
//! commands take no arguments; all four return a bool. qemu-ga's `guest-fsfreeze-*`
//! commands are in [`qga`].

use serde::{Deserialize, Deserializer, Serialize};

pub mod qga;

/// Arguments of `fs-freeze`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsFreezeArgs {
    /// Extension: freeze exactly these mount points (absolute paths) instead of every
    /// local filesystem. Absent means all; `null` is refused rather than read as
    /// absent, so a host whose list came out empty never freezes everything by mistake.
    #[serde(
        default,
        deserialize_with = "present_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub mountpoints: Option<Vec<String>>,
}

/// Called only when the member is present: it must then be a list.
pub(crate) fn present_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    Vec::<String>::deserialize(d).map(Some)
}

/// The freeze family's commands.
pub mod cmd {
    use crate::NoArgs;

    crate::commands! { Phoenix;
        /// `fs-freeze`: every local filesystem, or the `mountpoints` given.
        FsFreeze = "fs-freeze" (super::FsFreezeArgs) -> bool;
        /// `fs-unfreeze`: thaws what `fs-freeze` froze.
        FsUnfreeze = "fs-unfreeze" (NoArgs) -> bool;
        /// `get-freeze-status`: whether a freeze is in force.
        GetFreezeStatus = "get-freeze-status" (NoArgs) -> bool;
        /// `fs-sync` (extension): sync(2).
        FsSync = "fs-sync" (NoArgs) -> bool;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<FsFreezeArgs, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn absent_means_all_and_null_is_refused() {
        assert_eq!(parse("{}").unwrap().mountpoints, None);
        assert_eq!(parse(r#"{"other": 1}"#).unwrap().mountpoints, None);
        let e = parse(r#"{"mountpoints": null}"#).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid type: null, expected a sequence"),
            "{e}"
        );
        parse(r#"{"mountpoints": "/x"}"#).unwrap_err();
        assert_eq!(
            parse(r#"{"mountpoints": ["/a", "/b"]}"#)
                .unwrap()
                .mountpoints,
            Some(vec!["/a".to_string(), "/b".to_string()])
        );
        assert_eq!(
            parse(r#"{"mountpoints": []}"#).unwrap().mountpoints,
            Some(vec![])
        );
    }
}
