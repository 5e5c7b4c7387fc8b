//! Filesystem freeze: `fs-freeze`, `fs-unfreeze`, `get-freeze-status`, `fs-sync`.

use phoenix_proto::types::freeze::FsFreezeArgs;

use crate::{Client, ClientError};

impl Client {
    /// `fs-freeze`: every freezable filesystem (`None`, the original's command), or
    /// exactly the given mount points (an extension of phoenix-rs). Frozen
    /// filesystems block every writer in the guest until [`Client::fs_unfreeze`].
    /// Without mount points no `arguments` member is sent, as the original expects.
    pub fn fs_freeze(&self, mountpoints: Option<&[String]>) -> Result<(), ClientError> {
        match mountpoints {
            None => {
                let ok: bool = self.call_no_args("fs-freeze")?;
                if ok {
                    Ok(())
                } else {
                    Err(ClientError::Protocol("fs-freeze returned false".into()))
                }
            }
            Some(list) => self.true_call(
                "fs-freeze",
                &FsFreezeArgs {
                    mountpoints: Some(list.to_vec()),
                },
            ),
        }
    }

    /// `fs-unfreeze`: thaws what `fs-freeze` froze (`true` also when nothing was).
    pub fn fs_unfreeze(&self) -> Result<(), ClientError> {
        let ok: bool = self.call_no_args("fs-unfreeze")?;
        if ok {
            Ok(())
        } else {
            Err(ClientError::Protocol("fs-unfreeze returned false".into()))
        }
    }

    /// `get-freeze-status`: whether the filesystems are frozen.
    pub fn get_freeze_status(&self) -> Result<bool, ClientError> {
        self.call_no_args("get-freeze-status")
    }

    /// `fs-sync` (phoenix-rs extension): flushes every filesystem.
    pub fn fs_sync(&self) -> Result<(), ClientError> {
        let ok: bool = self.call_no_args("fs-sync")?;
        if ok {
            Ok(())
        } else {
            Err(ClientError::Protocol("fs-sync returned false".into()))
        }
    }
}
