//! Filesystem freeze: `fs-freeze`, `fs-unfreeze`, `get-freeze-status`, `fs-sync`, and
//! in the qemu-ga dialect `guest-fsfreeze-freeze` (`-freeze-list`), `-thaw`, `-status`.

use phoenix_proto::qga::Empty;
use phoenix_proto::types::freeze::cmd::{FsFreeze, FsSync, FsUnfreeze, GetFreezeStatus};
use phoenix_proto::types::freeze::qga::{self, GuestFsfreezeStatus};
use phoenix_proto::types::freeze::FsFreezeArgs;
use phoenix_proto::Dialect;

use crate::{Client, ClientError};

impl Client {
    /// `fs-freeze`: every freezable filesystem (`None`, the original's command), or
    /// exactly the given mount points (an extension of phoenix-rs). Frozen
    /// filesystems block every writer in the guest until [`Client::fs_unfreeze`].
    /// Without mount points no `arguments` member is sent, as the original expects.
    ///
    /// In the qemu-ga dialect, `guest-fsfreeze-freeze` or `guest-fsfreeze-freeze-list`
    /// (whose entries that are not mount points qemu-ga skips); the count frozen is
    /// returned there, `None` in the Phoenix dialect.
    pub fn fs_freeze(&self, mountpoints: Option<&[String]>) -> Result<Option<i64>, ClientError> {
        if self.dialect() == Dialect::Qga {
            let n = match mountpoints {
                None => self.invoke_no_args::<qga::cmd::GuestFsfreezeFreeze>()?,
                Some(list) => self.invoke::<qga::cmd::GuestFsfreezeFreezeList>(
                    &qga::GuestFsfreezeFreezeListArgs {
                        mountpoints: Some(list.to_vec()),
                    },
                )?,
            };
            return Ok(Some(n));
        }
        let args = mountpoints.map(|list| FsFreezeArgs {
            mountpoints: Some(list.to_vec()),
        });
        self.true_call::<FsFreeze>(args.as_ref()).map(|()| None)
    }

    /// `fs-unfreeze`: thaws what `fs-freeze` froze (`true` also when nothing was). In
    /// the qemu-ga dialect `guest-fsfreeze-thaw`, whose count of filesystems thawed is
    /// returned (`None` in the Phoenix dialect).
    pub fn fs_unfreeze(&self) -> Result<Option<i64>, ClientError> {
        if self.dialect() == Dialect::Qga {
            return self
                .invoke::<qga::cmd::GuestFsfreezeThaw>(&Empty {})
                .map(Some);
        }
        self.true_call_no_args::<FsUnfreeze>().map(|()| None)
    }

    /// `get-freeze-status` (`guest-fsfreeze-status`): whether the filesystems are
    /// frozen.
    pub fn get_freeze_status(&self) -> Result<bool, ClientError> {
        if self.dialect() == Dialect::Qga {
            let status = self.invoke::<qga::cmd::GuestFsfreezeStatus>(&Empty {})?;
            return Ok(status == GuestFsfreezeStatus::Frozen);
        }
        self.invoke_no_args::<GetFreezeStatus>()
    }

    /// `fs-sync` (phoenix-rs extension): flushes every filesystem.
    pub fn fs_sync(&self) -> Result<(), ClientError> {
        self.true_call_no_args::<FsSync>()
    }
}
