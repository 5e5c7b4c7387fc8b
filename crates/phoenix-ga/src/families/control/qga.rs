//! The control commands, in qemu-ga's shapes (both dialects list them): each checks
//! its arguments before it changes anything. All run on the pool: setting the time
//! waits for the RTC's second, power requests wait for the guest's own programs, a
//! suspend returns only after the wake-up, CPU and memory switches take the kernel
//! time. `guest-shutdown` and the suspends answer only errors (no success response).

use phoenix_proto::qga::Empty;
use phoenix_proto::types::control::cmd::{
    GuestSetMemoryBlocks, GuestSetTime, GuestSetVcpus, GuestShutdown, GuestSuspendDisk,
    GuestSuspendHybrid, GuestSuspendRam,
};
use phoenix_proto::types::control::{
    GuestSetMemoryBlocksArgs, GuestSetTimeArgs, GuestSetVcpusArgs, GuestShutdownArgs,
};

use super::init::Mode;
use super::suspend::Sleep;
use super::{clock, memblocks, power, suspend, vcpus, Control};
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run};
use crate::error::Error;
use crate::families::freeze::Freeze;

/// The clock from `time`, then the RTC from the clock; or the clock from the RTC.
/// Writes no disk: runs while frozen.
impl Command for GuestSetTime {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, a: GuestSetTimeArgs) -> Outcome {
        clock::set_time(agent.family::<Control>().sources(), a.time)?;
        reply::<Self>(&Empty {})
    }
}

/// Powers down, halts or reboots through the guest's init, after a thaw: runs while
/// frozen, and ends the freeze.
impl Command for GuestShutdown {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;
    const SUCCESS_RESPONSE: bool = false;

    fn run(agent: &Agent, a: GuestShutdownArgs) -> Outcome {
        let mode = Mode::parse(a.mode.as_deref()).ok_or_else(|| {
            Error::invalid(format!(
                "mode \"{}\" is invalid (valid values are: halt|powerdown|reboot)",
                a.mode.as_deref().unwrap_or_default()
            ))
        })?;
        let freeze = agent.family::<Freeze>();
        let thawed = freeze.thaw()?;
        if thawed > 0 {
            tracing::warn!(filesystems = thawed, "guest-shutdown: thawed first");
        }
        // A thaw that did not finish (a filesystem refused, or a FIFREEZE still in
        // the kernel): the init's sync would hang on it, and the guest with it.
        if agent.gate.is_closed() {
            return Err(Error::errno(
                nix::errno::Errno::EBUSY,
                "guest-shutdown: filesystems are still frozen (the thaw did not finish); \
                 not shutting down, the guest would hang syncing them",
            ));
        }
        power::shutdown(agent.family::<Control>().sources(), mode)?;
        reply::<Self>(&Empty {})
    }
}

fn sleep(agent: &Agent, sleep: Sleep) -> Outcome {
    suspend::suspend(agent.family::<Control>().sources(), sleep)?;
    reply::<GuestSuspendRam>(&Empty {})
}

/// Hibernates, where the kernel can and there is swap and a resume device.
impl Command for GuestSuspendDisk {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;
    const SUCCESS_RESPONSE: bool = false;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        sleep(agent, Sleep::Disk)
    }
}

/// Suspends to RAM, where the kernel can.
impl Command for GuestSuspendRam {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;
    const SUCCESS_RESPONSE: bool = false;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        sleep(agent, Sleep::Ram)
    }
}

/// Hibernates and suspends to RAM, where the kernel can.
impl Command for GuestSuspendHybrid {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;
    const SUCCESS_RESPONSE: bool = false;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        sleep(agent, Sleep::Hybrid)
    }
}

/// CPUs on and off, in order, up to the first failure; how many were done.
impl Command for GuestSetVcpus {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, a: GuestSetVcpusArgs) -> Outcome {
        let done = vcpus::set(&agent.family::<Control>().sources().sys_cpu, &a.vcpus)?;
        reply::<Self>(&done)
    }
}

/// Memory blocks on and off; one result per block.
impl Command for GuestSetMemoryBlocks {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, a: GuestSetMemoryBlocksArgs) -> Outcome {
        let results = memblocks::set(&agent.family::<Control>().sources().sys_memory, &a.mem_blks);
        reply::<Self>(&results)
    }
}
