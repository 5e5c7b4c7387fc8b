//! The control family: the guest's clock, power, logical processors and memory blocks,
//! with qemu-ga's commands (`guest-set-time`, `guest-shutdown`, `guest-suspend-ram`,
//! `-disk`, `-hybrid`, `guest-set-vcpus`, `guest-set-memory-blocks`), offered in both
//! dialects under the same names. (The readers, `guest-get-time`, `-vcpus` and
//! `-memory-blocks`, are the system family's.)
//!
//! - [`clock`], with [`rtc`] and [`adjtime`]: the clock and the RTC, through
//!   `/dev/rtc0`'s ioctls, where qemu-ga runs `hwclock`;
//! - [`power`], with [`init`] and [`helper`]: power requests through the guest's own
//!   init; [`suspend`]: the sleeps the kernel offers;
//! - [`vcpus`] and [`memblocks`]: sysfs switches, as qemu-ga reports them;
//! - [`qga`]: the adapters.
//!
//! While frozen: setting the time and switching CPUs and memory blocks write no disk
//! and run (qemu-ga refuses them); `guest-shutdown` runs and thaws first; the suspend
//! commands are refused (hibernation writes its image, maybe to a swap file on a
//! frozen filesystem).

pub(crate) mod adjtime;
pub(crate) mod clock;
mod helper;
pub(crate) mod init;
pub(crate) mod memblocks;
pub(crate) mod power;
mod qga;
pub(crate) mod rtc;
pub(crate) mod suspend;
pub(crate) mod vcpus;

use std::path::{Path, PathBuf};

use phoenix_proto::types::control::cmd;
use phoenix_proto::Dialect;

use super::{system, Family, Setup};
use crate::command::{entry, entry_in, Entry};

/// Where the family reads and writes; tests point these at fixture trees.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The root under which init is looked for (`run/systemd/system`, `proc/1`).
    pub root: PathBuf,
    /// RTC devices to try in order.
    pub rtc: Vec<PathBuf>,
    /// The RTC class in sysfs (which driver an RTC has).
    pub sys_class_rtc: PathBuf,
    /// hwclock's file: whether the RTC keeps UTC or local time.
    pub adjtime: PathBuf,
    /// The local zone, as the system family reads it.
    pub zone: system::Sources,
    /// The logical processors (`cpuN`).
    pub sys_cpu: PathBuf,
    /// The memory blocks (`memoryN`).
    pub sys_memory: PathBuf,
    /// The kernel's power management (`state`, `disk`, `resume`).
    pub sys_power: PathBuf,
    /// Active swap.
    pub proc_swaps: PathBuf,
    /// Where programs (`systemctl`, `shutdown`, `poweroff`) are looked for.
    pub bin_dirs: Vec<PathBuf>,
}

impl Sources {
    /// The paths under `root` ("/" for the real system).
    pub fn under(root: &Path) -> Self {
        let p = |rel: &str| root.join(rel);
        Sources {
            root: root.to_path_buf(),
            rtc: vec![p("dev/rtc0"), p("dev/rtc")],
            sys_class_rtc: p("sys/class/rtc"),
            adjtime: p("etc/adjtime"),
            zone: system::Sources::under(root),
            sys_cpu: p("sys/devices/system/cpu"),
            sys_memory: p("sys/devices/system/memory"),
            sys_power: p("sys/power"),
            proc_swaps: p("proc/swaps"),
            bin_dirs: ["sbin", "usr/sbin", "bin", "usr/bin"].map(p).to_vec(),
        }
    }

    /// The real system, with the zone as the agent's environment sets it (`TZ`).
    pub fn system() -> Self {
        Sources {
            zone: system::Sources::system(),
            ..Self::under(Path::new("/"))
        }
    }
}

/// The control family: where it acts.
#[derive(Debug)]
pub struct Control {
    src: Sources,
}

impl Control {
    /// What the family reads and writes.
    pub fn sources(&self) -> &Sources {
        &self.src
    }
}

impl Family for Control {
    fn new(_: &Setup<'_>) -> Self {
        Control {
            src: Sources::system(),
        }
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 14] = [
            entry::<cmd::GuestSetTime>(),
            entry::<cmd::GuestShutdown>(),
            entry::<cmd::GuestSuspendDisk>(),
            entry::<cmd::GuestSuspendRam>(),
            entry::<cmd::GuestSuspendHybrid>(),
            entry::<cmd::GuestSetVcpus>(),
            entry::<cmd::GuestSetMemoryBlocks>(),
            entry_in::<cmd::GuestSetTime>(Dialect::Phoenix),
            entry_in::<cmd::GuestShutdown>(Dialect::Phoenix),
            entry_in::<cmd::GuestSuspendDisk>(Dialect::Phoenix),
            entry_in::<cmd::GuestSuspendRam>(Dialect::Phoenix),
            entry_in::<cmd::GuestSuspendHybrid>(Dialect::Phoenix),
            entry_in::<cmd::GuestSetVcpus>(Dialect::Phoenix),
            entry_in::<cmd::GuestSetMemoryBlocks>(Dialect::Phoenix),
        ];
        &COMMANDS
    }
}
