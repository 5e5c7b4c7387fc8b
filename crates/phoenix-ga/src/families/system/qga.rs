//! The qemu-ga dialect's inventory commands: `guest-get-osinfo`,
//! `guest-get-host-name`, `guest-get-timezone`, `guest-get-users`, `guest-get-time`,
//! `guest-get-vcpus`, `guest-get-memory-blocks`, `guest-get-memory-block-info`,
//! `guest-get-load` and `guest-get-cpustats`. None takes arguments.
//!
//! They run on the pool, in the connection's order, and while the filesystems are
//! frozen: they read kernel memory, /proc, /sys, /run and a few files of /etc, and
//! reading never waits for a thaw. qemu-ga refuses them while frozen.

use phoenix_proto::qga::Empty;
use phoenix_proto::types::system::qga::cmd::{
    GuestGetCpustats, GuestGetHostName, GuestGetLoad, GuestGetMemoryBlockInfo,
    GuestGetMemoryBlocks, GuestGetOsinfo, GuestGetTime, GuestGetTimezone, GuestGetUsers,
    GuestGetVcpus,
};
use phoenix_proto::types::system::qga::{
    GuestHostName, GuestLoadAverage, GuestMemoryBlockInfo, GuestOSInfo, GuestTimezone,
};

use super::{users, System};
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run};

/// The kernel (uname) and the distribution (os-release; fields it lacks are left
/// out).
impl Command for GuestGetOsinfo {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        let system = agent.family::<System>();
        let u = system.uname()?;
        let r = system.os_release();
        reply::<Self>(&GuestOSInfo {
            kernel_release: Some(u.release),
            kernel_version: Some(u.version),
            machine: Some(u.machine),
            id: r.id,
            name: r.name,
            pretty_name: r.pretty_name,
            version: r.version,
            version_id: r.version_id,
            variant: r.variant,
            variant_id: r.variant_id,
        })
    }
}

/// The kernel's host name.
impl Command for GuestGetHostName {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        let host_name = agent.family::<System>().host_name()?;
        reply::<Self>(&GuestHostName { host_name })
    }
}

/// The local zone's abbreviation and offset east of UTC, now.
impl Command for GuestGetTimezone {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        let zone = agent.family::<System>().timezone();
        reply::<Self>(&GuestTimezone {
            zone: Some(zone.abbrev).filter(|a| !a.is_empty()),
            offset: zone.offset,
        })
    }
}

/// Each logged-in user once, with the earliest of their logins.
impl Command for GuestGetUsers {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        let sessions = agent.family::<System>().sessions()?;
        reply::<Self>(&users::logged_in(&sessions))
    }
}

/// Nanoseconds since the epoch.
impl Command for GuestGetTime {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        reply::<Self>(&agent.family::<System>().now_ns()?)
    }
}

/// The logical processors, sorted by number.
impl Command for GuestGetVcpus {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        reply::<Self>(&agent.family::<System>().vcpus()?)
    }
}

/// The memory blocks, sorted by number.
impl Command for GuestGetMemoryBlocks {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        reply::<Self>(&agent.family::<System>().memory_blocks()?)
    }
}

/// The size of one memory block, in bytes.
impl Command for GuestGetMemoryBlockInfo {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        let size = agent.family::<System>().memory_block_size()?;
        reply::<Self>(&GuestMemoryBlockInfo { size })
    }
}

/// The 1, 5 and 15 minute load averages.
impl Command for GuestGetLoad {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        let l = agent.family::<System>().load()?;
        reply::<Self>(&GuestLoadAverage {
            load1m: l.one,
            load5m: l.five,
            load15m: l.fifteen,
        })
    }
}

/// Each CPU's times since boot, in milliseconds.
impl Command for GuestGetCpustats {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        reply::<Self>(&agent.family::<System>().cpu_stats()?)
    }
}
