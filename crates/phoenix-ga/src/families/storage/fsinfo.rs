//! `guest-get-fsinfo`: every local filesystem, the disks under it and its sizes.
//!
//! A filesystem's device is /sys/dev/block/MAJOR:MINOR. A real device (a disk or a
//! partition on a bus) is one disk entry, with its address ([`address`]). A virtual
//! one (device-mapper, md, loop) stands on the devices in its `slaves` directory,
//! followed down to real devices: LVM on a partition gives that partition's entry,
//! RAID 1 over two disks two entries, a loop device none.
//!
//! Lists come out in qemu-ga's order, which builds each list by prepending: the
//! filesystems in reverse mount order, the disks of one filesystem in reverse order of
//! discovery.

use std::path::Path;

use phoenix_proto::types::storage::qga::{GuestDiskAddress, GuestFilesystemInfo};

use super::address;
use super::mounts::FsMount;
use super::sysfs::{realpath, Sysfs};
use super::Usage;

/// How deep stacked virtual devices are followed (LVM on dm-crypt on md on ...).
const MAX_STACK: usize = 8;

/// The entries for `mounts` (in mount order), with the sizes `usage` gives for each
/// (`None`: unknown, left out).
pub fn collect(sys: &Sysfs, mounts: &[FsMount], usage: &[Option<Usage>]) -> Vec<GuestFilesystemInfo> {
    let mut out: Vec<GuestFilesystemInfo> = mounts
        .iter()
        .zip(usage.iter().chain(std::iter::repeat(&None)))
        .map(|(m, usage)| {
            let numbers = format!("{}:{}", m.major, m.minor);
            let (name, disk) = match realpath(&sys.path(&format!("dev/block/{numbers}"))) {
                Ok(real) => {
                    let name = real
                        .file_name()
                        .map_or_else(|| numbers.clone(), |n| n.to_string_lossy().into_owned());
                    let mut disk = Vec::new();
                    disks_under(sys, &real, &mut disk, 0);
                    disk.reverse();
                    (name, disk)
                }
                // Not in this sysfs (a container's view): the numbers name it.
                Err(e) => {
                    tracing::debug!(device = %numbers, error = %e, "no sysfs entry");
                    (numbers, Vec::new())
                }
            };
            GuestFilesystemInfo {
                name,
                mountpoint: m.mountpoint.clone(),
                fs_type: m.fstype.clone(),
                used_bytes: usage.map(|u| u.used),
                total_bytes: usage.map(|u| u.total),
                total_bytes_privileged: usage.map(|u| u.privileged),
                disk,
            }
        })
        .collect();
    out.reverse();
    out
}

/// Adds the disk entries of the device at canonical path `real`: its own if it is
/// real, else those of the devices it stands on.
fn disks_under(sys: &Sysfs, real: &Path, out: &mut Vec<GuestDiskAddress>, depth: usize) {
    if !sys.is_virtual(real) {
        out.extend(address::of_real_device(sys, real));
        return;
    }
    if depth >= MAX_STACK {
        return;
    }
    for slave in Sysfs::slaves(real).unwrap_or_default() {
        match realpath(&slave) {
            Ok(slave) => disks_under(sys, &slave, out, depth + 1),
            Err(e) => tracing::debug!(slave = %slave.display(), error = %e, "slave gone"),
        }
    }
}
