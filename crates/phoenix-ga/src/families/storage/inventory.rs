//! `guest-get-disks`: every block device of /sys/block of non-zero size, and the
//! partitions of each.
//!
//! A disk has its node, its device-mapper name (`alias`), the nodes of the devices it
//! stands on (`dependencies`, from `slaves`: empty for a plain disk), its address when
//! it is on a bus ([`address`]) and, for NVMe, its SMART log ([`super::smart`]). A
//! partition has its node and its disk's as its one dependency.
//!
//! The order is qemu-ga's, which prepends every entry: reversed, the disks in
//! directory order, each followed by its partitions.

use phoenix_proto::types::storage::qga::{GuestDiskBusType, GuestDiskInfo, GuestNvmeSmart};

use super::address;
use super::sysfs::{realpath, Sysfs};
use crate::error::{Context as _, Error};

/// Every disk and partition; `smart` reads an NVMe disk's health log by its node.
pub fn collect(
    sys: &Sysfs,
    smart: impl Fn(&str) -> Option<GuestNvmeSmart>,
) -> Result<Vec<GuestDiskInfo>, Error> {
    let block = sys.path("block");
    let entries =
        std::fs::read_dir(&block).context(|| format!("read directory {}", block.display()))?;
    let mut out = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
            continue;
        }
        let dir = entry.path();
        // Unreadable (gone meanwhile) or empty: a loop device without a file, an
        // empty CD drive.
        if Sysfs::size(&dir).unwrap_or(0) == 0 {
            continue;
        }
        let Some(name) = sys.devnode(&dir) else {
            continue;
        };
        let real = realpath(&dir).ok();
        let address = real
            .as_ref()
            .filter(|real| !sys.is_virtual(real))
            .and_then(|real| address::of_real_device(sys, real));
        let smart = address
            .as_ref()
            .filter(|a| a.bus_type == GuestDiskBusType::Nvme)
            .and_then(|_| smart(&name))
            .map(phoenix_proto::types::storage::qga::GuestDiskSmart::Nvme);
        let dependencies = Sysfs::slaves(&dir).map(|slaves| {
            let mut deps: Vec<String> = slaves.iter().filter_map(|s| sys.devnode(s)).collect();
            deps.reverse();
            deps
        });
        let disk_name = entry.file_name().to_string_lossy().into_owned();
        out.push(GuestDiskInfo {
            name: name.clone(),
            partition: false,
            dependencies,
            address,
            alias: Sysfs::dm_name(&dir),
            smart,
        });
        for part in Sysfs::partitions(&dir, &disk_name) {
            if let Some(part_name) = sys.devnode(&part) {
                out.push(GuestDiskInfo {
                    name: part_name,
                    partition: true,
                    dependencies: Some(vec![name.clone()]),
                    address: None,
                    alias: None,
                    smart: None,
                });
            }
        }
    }
    out.reverse();
    Ok(out)
}
