//! The storage family: filesystems and disks in the qemu-ga dialect
//! (`guest-get-fsinfo`, `guest-get-disks`, `guest-get-diskstats`, `guest-fstrim`).
//!
//! Everything is read from the kernel: the mount table (/proc/self/mountinfo), the
//! block devices in sysfs, /proc/diskstats, and udev's database under /run for serial
//! numbers. No libudev, no subprocess.
//!
//! - [`mounts`]: which filesystems qemu-ga lists and trims;
//! - [`sysfs`] and [`address`]: block devices, their nodes, serial numbers, slaves and
//!   partitions, and their controllers' addresses;
//! - [`fsinfo`], [`inventory`], [`diskstats`], [`fstrim`], [`smart`]: the operations
//!   behind the four commands, whose adapters are in [`qga`].
//!
//! The listings read only kernel memory, /proc, /sys and /run, and statvfs takes no
//! freeze protection: they answer while the filesystems are frozen (qemu-ga refuses
//! them then). statvfs runs on the system family's prober thread design with a
//! deadline, so a filesystem whose device hangs costs a reply its sizes, not the
//! reply. `guest-fstrim` discards blocks: it is refused while frozen, and stops
//! between filesystems when a freeze begins while it runs.

pub(crate) mod address;
pub(crate) mod diskstats;
pub(crate) mod fsinfo;
pub(crate) mod fstrim;
pub(crate) mod inventory;
pub(crate) mod mounts;
mod qga;
pub(crate) mod smart;
pub(crate) mod sysfs;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use phoenix_proto::types::storage::qga::{
    cmd, GuestDiskInfo, GuestDiskStatsInfo, GuestFilesystemInfo, GuestFilesystemTrimResult,
};

use super::system::{disks, statfs};
use super::{Family, Setup};
use crate::command::{entry, Entry};
use crate::error::Error;
use crate::gate::Gate;

/// A filesystem's sizes in bytes, as qemu-ga computes them from statvfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Blocks in use (reserved ones included): `f_blocks - f_bfree`.
    pub used: u64,
    /// Used plus available to unprivileged users: `used + f_bavail`.
    pub total: u64,
    /// Every block: `f_blocks`.
    pub privileged: u64,
}

impl Usage {
    /// From statvfs counts, in units of the fragment size `frsize`.
    pub fn from_blocks(frsize: u64, blocks: u64, bfree: u64, bavail: u64) -> Self {
        let used = blocks.saturating_sub(bfree);
        Usage {
            used: used.saturating_mul(frsize),
            total: used.saturating_add(bavail).saturating_mul(frsize),
            privileged: blocks.saturating_mul(frsize),
        }
    }
}

/// statvfs(2) of `path`, in bytes.
pub fn statvfs(path: &str) -> nix::Result<Usage> {
    let st = nix::sys::statvfs::statvfs(path)?;
    let frsize = match st.fragment_size() {
        0 => st.block_size(),
        n => n,
    };
    Ok(Usage::from_blocks(
        frsize,
        st.blocks(),
        st.blocks_free(),
        st.blocks_available(),
    ))
}

/// Where the family reads; tests point these at fixtures.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The sysfs root.
    pub sys: PathBuf,
    /// udev's database of device properties.
    pub udev_data: PathBuf,
    /// The mount table with device numbers.
    pub mountinfo: PathBuf,
    /// The I/O counters of the block devices.
    pub diskstats: PathBuf,
    /// How long a reply waits for statvfs.
    pub statfs_timeout: Duration,
}

impl Sources {
    /// The real system's files.
    pub fn system() -> Self {
        Sources {
            sys: "/sys".into(),
            udev_data: "/run/udev/data".into(),
            mountinfo: "/proc/self/mountinfo".into(),
            diskstats: "/proc/diskstats".into(),
            statfs_timeout: statfs::TIMEOUT,
        }
    }

    fn sysfs(&self) -> sysfs::Sysfs {
        sysfs::Sysfs::new(&self.sys, &self.udev_data)
    }
}

/// The storage family's state: statvfs calls that may still hang, and the frozen gate
/// (read only: a trim stops when a freeze begins).
#[derive(Debug)]
pub struct Storage {
    prober: statfs::Prober<Usage>,
    gate: Arc<Gate>,
}

impl Family for Storage {
    fn new(setup: &Setup<'_>) -> Self {
        Storage {
            prober: statfs::Prober::with_probe(statvfs),
            gate: setup.gate.clone(),
        }
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 4] = [
            entry::<cmd::GuestGetFsinfo>(),
            entry::<cmd::GuestGetDisks>(),
            entry::<cmd::GuestGetDiskstats>(),
            entry::<cmd::GuestFstrim>(),
        ];
        &COMMANDS
    }
}

impl Storage {
    /// Every local filesystem with its sizes and disks, from the real system.
    pub fn fsinfo(&self) -> Result<Vec<GuestFilesystemInfo>, Error> {
        self.fsinfo_from(&Sources::system())
    }

    /// Every local filesystem, read from `src`.
    pub fn fsinfo_from(&self, src: &Sources) -> Result<Vec<GuestFilesystemInfo>, Error> {
        let mounts = mounts::local(&disks::read_mounts(&src.mountinfo)?, mounts::rdev);
        let points: Vec<&str> = mounts.iter().map(|m| m.mountpoint.as_str()).collect();
        let usage: Vec<Option<Usage>> = self
            .prober
            .sizes(&points, src.statfs_timeout)
            .into_iter()
            .zip(&points)
            .map(|(r, mp)| {
                r.inspect_err(|why| {
                    let hung = self.prober.hung();
                    if *why == statfs::Missing::StillHung {
                        tracing::debug!(mountpoint = mp, hung, "statvfs still blocked");
                    } else {
                        tracing::warn!(mountpoint = mp, ?why, hung, "statvfs gave no sizes");
                    }
                })
                .ok()
            })
            .collect();
        Ok(fsinfo::collect(&src.sysfs(), &mounts, &usage))
    }

    /// Every disk of non-zero size and its partitions, from the real system.
    pub fn disks(&self) -> Result<Vec<GuestDiskInfo>, Error> {
        inventory::collect(&Sources::system().sysfs(), smart::read)
    }

    /// /proc/diskstats.
    pub fn diskstats(&self) -> Result<Vec<GuestDiskStatsInfo>, Error> {
        diskstats::read(&Sources::system().diskstats)
    }

    /// FITRIM on every local filesystem, skipping free extents shorter than `minimum`
    /// bytes.
    pub fn fstrim(&self, minimum: u64) -> Result<Vec<GuestFilesystemTrimResult>, Error> {
        let src = Sources::system();
        let mounts = mounts::local(&disks::read_mounts(&src.mountinfo)?, mounts::rdev);
        Ok(fstrim::trim_all(
            &mounts,
            minimum,
            || self.gate.is_closed(),
            fstrim::trim_path,
        ))
    }
}
