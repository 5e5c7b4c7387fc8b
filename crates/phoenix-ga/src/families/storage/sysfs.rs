//! Block devices as sysfs shows them, read directly where qemu-ga asks libudev.
//!
//! A block device is a directory under /sys/devices: a disk's is named after it
//! (`.../virtio1/block/vda`), a partition's sits inside its disk's (`.../vda/vda1`).
//! /sys/block/NAME and /sys/dev/block/MAJOR:MINOR are symlinks to them, and a device
//! the kernel made without hardware (loop, device-mapper, md, zram) lives under
//! /sys/devices/virtual/block. What qemu-ga takes from libudev is in sysfs too: the
//! node (`DEVNAME` in `uevent`), the device-mapper name (`dm/name`). The serial number
//! is udev's own `ID_SERIAL`, read from udev's database under /run when udev runs;
//! without udev, the kernel's `serial` attribute where udev would copy it (see
//! [`Sysfs::serial`]).

use std::io;
use std::path::{Path, PathBuf};

/// Where sysfs and udev's database are (the real ones, or a test's fixture).
#[derive(Debug, Clone)]
pub struct Sysfs {
    /// The sysfs root, canonical (`/sys`).
    root: PathBuf,
    /// udev's database of device properties (`/run/udev/data`).
    udev_data: PathBuf,
}

impl Sysfs {
    /// Sysfs at `root`, udev's database at `udev_data`.
    pub fn new(root: &Path, udev_data: &Path) -> Self {
        Sysfs {
            root: std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
            udev_data: udev_data.to_path_buf(),
        }
    }

    /// A path under the root (`block`, `dev/block/254:1`).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The part of a canonical sysfs path below the root, with its leading slash
    /// (`/devices/pci0000:00/...`): what qemu-ga's string matching looks at.
    pub fn rel(&self, real: &Path) -> String {
        match real.strip_prefix(&self.root) {
            Ok(rest) => format!("/{}", rest.to_string_lossy()),
            Err(_) => real.to_string_lossy().into_owned(),
        }
    }

    /// Whether the device at canonical path `real` was made without hardware.
    pub fn is_virtual(&self, real: &Path) -> bool {
        self.rel(real).contains("/devices/virtual/block/")
    }

    /// The device node (`/dev/` + `DEVNAME` of the device's `uevent`), as libudev's
    /// `udev_device_get_devnode`; `None` for a device without one (or gone).
    pub fn devnode(&self, dir: &Path) -> Option<String> {
        let uevent = std::fs::read_to_string(dir.join("uevent")).ok()?;
        uevent
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .filter(|n| !n.is_empty())
            .map(|n| format!("/dev/{n}"))
    }

    /// The device numbers of `dir` (its `dev` file, `254:1`).
    pub fn numbers(dir: &Path) -> Option<(u32, u32)> {
        parse_numbers(std::fs::read_to_string(dir.join("dev")).ok()?.trim())
    }

    /// The device-mapper name (`vg-root`), udev's `DM_NAME`.
    pub fn dm_name(dir: &Path) -> Option<String> {
        let name = std::fs::read_to_string(dir.join("dm/name")).ok()?;
        let name = name.trim_end_matches('\n');
        (!name.is_empty()).then(|| name.to_string())
    }

    /// The serial number of the device at canonical path `real`: udev's `ID_SERIAL`
    /// when udev's database knows the device (what qemu-ga reports); without udev,
    /// the `serial` attribute that udev copies for virtio disks (from the disk, for a
    /// partition) and the serial number of an NVMe namespace's controller (udev's
    /// `ID_SERIAL_SHORT`; its `ID_SERIAL` adds the model). SCSI and ATA serial
    /// numbers come from SCSI inquiries udev makes: without udev there are none.
    pub fn serial(&self, real: &Path) -> Option<String> {
        if let Some((major, minor)) = Self::numbers(real) {
            let db = self.udev_data.join(format!("b{major}:{minor}"));
            if let Ok(text) = std::fs::read_to_string(db) {
                return text
                    .lines()
                    .find_map(|l| l.strip_prefix("E:ID_SERIAL="))
                    .filter(|s| !s.is_empty())
                    .map(str::to_string);
            }
        }
        let name = real.file_name()?.to_string_lossy().into_owned();
        let disk = if is_partition(real) {
            real.parent()?
        } else {
            real
        };
        let attr = |dir: &Path| {
            let s = std::fs::read_to_string(dir.join("serial")).ok()?;
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        };
        if name.starts_with("vd") {
            attr(disk)
        } else if name.starts_with("nvme") {
            // nvme0n1 -> nvme0 (or nvme-subsys0 with native multipathing).
            attr(disk.parent()?)
        } else {
            None
        }
    }

    /// The devices a device is built on: its `slaves` entries (symlinks), in
    /// directory order. `None` when it has no `slaves` directory.
    pub fn slaves(dir: &Path) -> Option<Vec<PathBuf>> {
        let entries = std::fs::read_dir(dir.join("slaves")).ok()?;
        Some(
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
                .map(|e| e.path())
                .collect(),
        )
    }

    /// The partitions of disk `name` at `dir`, in directory order: subdirectories
    /// named after the disk and a number (`vda1`), or `p` and a number
    /// (`nvme0n1p1`, `loop0p1`), as qemu-ga finds them.
    pub fn partitions(dir: &Path, name: &str) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| {
                let entry = e.file_name();
                let Some(rest) = entry.to_str().and_then(|n| n.strip_prefix(name)) else {
                    return false;
                };
                let rest = rest.strip_prefix('p').unwrap_or(rest);
                rest.starts_with(|c: char| c.is_ascii_digit())
            })
            .map(|e| e.path())
            .collect()
    }

    /// A disk's size in sectors (its `size` file); `None` when it cannot be read.
    pub fn size(dir: &Path) -> Option<u64> {
        std::fs::read_to_string(dir.join("size"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// Whether the device at `dir` is a partition (it has a `partition` file).
fn is_partition(dir: &Path) -> bool {
    dir.join("partition").exists()
}

/// Parses `MAJOR:MINOR`.
pub fn parse_numbers(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Canonicalizes a sysfs path; ENOENT when the device is gone.
pub fn realpath(path: &Path) -> io::Result<PathBuf> {
    std::fs::canonicalize(path)
}
