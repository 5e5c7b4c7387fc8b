//! Filesystem freeze: `fs-freeze`, `fs-unfreeze`, `get-freeze-status`, `fs-sync`.

use phoenix_proto::types::freeze::cmd::{FsFreeze, FsSync, FsUnfreeze, GetFreezeStatus};
use phoenix_proto::types::freeze::FsFreezeArgs;

use crate::{Client, ClientError};

impl Client {
    /// `fs-freeze`: every freezable filesystem (`None`, the original's command), or
    /// exactly the given mount points (an extension of phoenix-rs). Frozen
    /// filesystems block every writer in the guest until [`Client::fs_unfreeze`].
    /// Without mount points no `arguments` member is sent, as the original expects.
    pub fn fs_freeze(&self, mountpoints: Option<&[String]>) -> Result<(), ClientError> {
        let args = mountpoints.map(|list| FsFreezeArgs {
            mountpoints: Some(list.to_vec()),
        });
        self.true_call::<FsFreeze>(args.as_ref())
    }

    /// `fs-unfreeze`: thaws what `fs-freeze` froze (`true` also when nothing was).
    pub fn fs_unfreeze(&self) -> Result<(), ClientError> {
        self.true_call_no_args::<FsUnfreeze>()
    }

    /// `get-freeze-status`: whether the filesystems are frozen.
    pub fn get_freeze_status(&self) -> Result<bool, ClientError> {
        self.invoke_no_args::<GetFreezeStatus>()
    }

    /// `fs-sync` (phoenix-rs extension): flushes every filesystem.
    pub fn fs_sync(&self) -> Result<(), ClientError> {
        self.true_call_no_args::<FsSync>()
    }
}
