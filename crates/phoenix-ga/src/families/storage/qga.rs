//! The qemu-ga dialect's storage commands: `guest-get-fsinfo`, `guest-get-disks`,
//! `guest-get-diskstats` and `guest-fstrim`. All run on the pool (they walk sysfs
//! or wait for statvfs and FITRIM); the listings also while frozen, the trim not.

use phoenix_proto::qga::Empty;
use phoenix_proto::types::storage::qga::cmd::{
    GuestFstrim, GuestGetDisks, GuestGetDiskstats, GuestGetFsinfo,
};
use phoenix_proto::types::storage::qga::{FstrimArgs, GuestFilesystemTrimResponse};

use super::Storage;
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run};
use crate::error::Error;

/// Every local filesystem: its device's name, mount point, type, sizes and disks.
impl Command for GuestGetFsinfo {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        reply::<Self>(&agent.family::<Storage>().fsinfo()?)
    }
}

/// Every disk of non-zero size and its partitions.
impl Command for GuestGetDisks {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        reply::<Self>(&agent.family::<Storage>().disks()?)
    }
}

/// /proc/diskstats.
impl Command for GuestGetDiskstats {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        reply::<Self>(&agent.family::<Storage>().diskstats()?)
    }
}

/// FITRIM on every local filesystem; a negative `minimum` is refused.
impl Command for GuestFstrim {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: FstrimArgs) -> Outcome {
        let minimum = u64::try_from(a.minimum.unwrap_or(0)).map_err(|_| {
            Error::invalid("Parameter 'minimum' must be a number of bytes, 0 or more")
        })?;
        let paths = agent.family::<Storage>().fstrim(minimum)?;
        reply::<Self>(&GuestFilesystemTrimResponse { paths })
    }
}
