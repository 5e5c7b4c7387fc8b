//! `sysinfo`: the guest's summary.

use phoenix_proto::types::system::cmd::Sysinfo;
use phoenix_proto::types::system::SysInfo;

use crate::{Client, ClientError};

impl Client {
    /// `sysinfo`: kernel, uptime, load, memory, users and disks (sizes in KiB).
    pub fn sysinfo(&self) -> Result<SysInfo, ClientError> {
        self.invoke_no_args::<Sysinfo>()
    }
}
