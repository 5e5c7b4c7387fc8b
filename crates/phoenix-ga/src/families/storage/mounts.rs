//! The filesystems qemu-ga lists (`guest-get-fsinfo`) and trims (`guest-fstrim`):
//! those of mountinfo on a block device, each device once.
//!
//! - A mount whose device number has major 0 has no block device (proc, sysfs,
//!   tmpfs, overlay, NFS, CIFS, FUSE, ...) and is left out, except btrfs, which shows
//!   an anonymous number: its source's device number stands in for it (when the
//!   source is a block device node).
//! - A device already listed is left out: a bind mount (`mount --bind /srv /mnt`),
//!   a second mount of the same filesystem, a second btrfs subvolume. The first
//!   mount of each device stands for it (qemu-ga 9.2 and later).
//!
//! The selection is pure (mountinfo and a device-node resolver in, mounts out), so it
//! is tested on fixtures; [`rdev`] is the real resolver.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;

use super::sysfs::parse_numbers;
use crate::families::system::disks::Mount;

/// A local filesystem: where it is mounted, its type and its block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsMount {
    /// The mount point.
    pub mountpoint: String,
    /// The filesystem type.
    pub fstype: String,
    /// The device's major number.
    pub major: u32,
    /// The device's minor number.
    pub minor: u32,
}

/// The local filesystems of `mounts` (mountinfo, in mount order), in mount order.
/// `rdev` gives a block device node's numbers (btrfs sources).
pub fn local(mounts: &[Mount], rdev: impl Fn(&str) -> Option<(u32, u32)>) -> Vec<FsMount> {
    let mut out: Vec<FsMount> = Vec::new();
    for m in mounts {
        let Some((mut major, mut minor)) = parse_numbers(&m.dev) else {
            continue;
        };
        if major == 0 {
            match (m.fstype.as_str(), rdev(&m.source)) {
                ("btrfs", Some((ma, mi))) => (major, minor) = (ma, mi),
                _ => continue,
            }
        }
        if out.iter().any(|f| (f.major, f.minor) == (major, minor)) {
            continue;
        }
        out.push(FsMount {
            mountpoint: m.mountpoint.clone(),
            fstype: m.fstype.clone(),
            major,
            minor,
        });
    }
    out
}

/// The device numbers of a block device node (`/dev/sdb`); `None` for anything else.
pub fn rdev(source: &str) -> Option<(u32, u32)> {
    let meta = std::fs::metadata(source).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some((libc::major(rdev), libc::minor(rdev)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::system::disks::parse_mounts;

    const MOUNTINFO: &str = "\
22 1 0:21 / /proc rw,relatime - proc proc rw
27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,discard
28 27 254:15 / /boot/efi rw,relatime shared:2 - vfat /dev/vda15 rw
29 27 0:23 / /run rw,nosuid - tmpfs tmpfs rw,mode=755
30 27 254:1 /srv /mnt/srv rw,relatime shared:1 - ext4 /dev/vda1 rw,discard
31 27 0:40 / /mnt/nfs rw - nfs4 server:/export rw
32 27 0:41 /@home /home rw,relatime - btrfs /dev/sdb rw,subvol=/@home
33 27 0:42 /@data /data rw,relatime - btrfs /dev/sdb rw,subvol=/@data
34 27 0:43 / /mnt/btrfs-gone rw - btrfs /dev/sdz rw
35 27 7:0 / /mnt/my\\040image rw - ext4 /dev/loop0 rw
36 27 0:44 / /mnt/fuse rw - fuse.sshfs host:/ rw
37 27 253:0 / /var rw - xfs /dev/mapper/vg-var rw
38 27 x:y / /bad rw - ext4 /dev/bad rw
";

    fn resolver(source: &str) -> Option<(u32, u32)> {
        (source == "/dev/sdb").then_some((8, 16))
    }

    #[test]
    fn block_devices_once_each_btrfs_by_its_source() {
        let got = local(&parse_mounts(MOUNTINFO), resolver);
        let summary: Vec<(&str, &str, u32, u32)> = got
            .iter()
            .map(|m| (m.mountpoint.as_str(), m.fstype.as_str(), m.major, m.minor))
            .collect();
        assert_eq!(
            summary,
            [
                ("/", "ext4", 254, 1),
                ("/boot/efi", "vfat", 254, 15),
                ("/home", "btrfs", 8, 16),
                ("/mnt/my image", "ext4", 7, 0),
                ("/var", "xfs", 253, 0),
            ]
        );
    }

    #[test]
    fn the_real_resolver_knows_block_devices_only() {
        assert_eq!(rdev("/proc/self/mountinfo"), None);
        assert_eq!(rdev("/nonexistent"), None);
        assert_eq!(rdev("/"), None);
        // Any block device node there is will do; a machine without one has no
        // mount to resolve either.
        let node = std::fs::read_dir("/dev").unwrap().find_map(|e| {
            let e = e.ok()?;
            e.file_type().ok()?.is_block_device().then(|| e.path())
        });
        if let Some(node) = node {
            let (major, minor) = rdev(node.to_str().unwrap()).unwrap();
            let rdev = std::fs::metadata(&node).unwrap().rdev();
            assert_eq!((major, minor), (libc::major(rdev), libc::minor(rdev)));
        }
    }
}
