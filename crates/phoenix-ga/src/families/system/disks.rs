//! Real block devices and where they are mounted, from /sys/block and mountinfo.
//!
//! A device in /sys/block is a real disk when it has a `device` link (loop, ram, zram
//! and device-mapper devices have none). It counts as mounted when a filesystem in
//! /proc/self/mountinfo lives on the disk itself, on one of its partitions (vda1 on /),
//! or on a device stacked on them (LVM, dm-crypt, md RAID, found through the kernel's
//! `holders` links). Mounts are matched by device number; btrfs reports anonymous
//! device numbers, so the mount source ("/dev/vda2") is matched too.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use crate::error::{Context as _, Error};

/// How deep `holders` links are followed (partition -> LVM -> dm-crypt -> ... ).
const MAX_STACK: usize = 8;

/// A real disk with every device number and path that belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// Its node, e.g. "/dev/vda" ("/dev/cciss/c0d0" for sysfs name "cciss!c0d0").
    pub path: String,
    /// `major:minor` of the disk, its partitions and the devices stacked on them.
    pub devs: Vec<String>,
    /// The "/dev/..." paths of the same devices.
    pub paths: Vec<String>,
}

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the filesystem's device.
    pub dev: String,
    /// Where it is mounted, unescaped.
    pub mountpoint: String,
    /// The mount source, e.g. "/dev/vda1".
    pub source: String,
    /// The filesystem type, e.g. "ext4".
    pub fstype: String,
}

/// The real disks under `sys_block` (normally /sys/block), sorted by name.
pub fn scan(sys_block: &Path) -> Result<Vec<BlockDevice>, Error> {
    let ctx = || format!("read directory {}", sys_block.display());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(sys_block).context(ctx)? {
        names.push(
            entry
                .context(ctx)?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    names.sort_unstable();
    let mut disks = Vec::new();
    for name in names {
        let dir = sys_block.join(&name);
        if !is_real(&dir) {
            continue;
        }
        let mut disk = BlockDevice {
            path: dev_path(&name),
            devs: Vec::new(),
            paths: Vec::new(),
        };
        // A disk unplugged while we look is simply not there.
        let Some(dev) = read_dev(&dir)? else { continue };
        disk.devs.push(dev);
        disk.paths.push(disk.path.clone());
        let mut seen = HashSet::from([name.clone()]);
        stacked(sys_block, &dir, &mut disk, &mut seen, 0)?;
        for part in partitions(&dir, &name)? {
            let part_dir = dir.join(&part);
            if let Some(dev) = read_dev(&part_dir)? {
                disk.devs.push(dev);
                disk.paths.push(dev_path(&part));
                stacked(sys_block, &part_dir, &mut disk, &mut seen, 0)?;
            }
        }
        disks.push(disk);
    }
    Ok(disks)
}

/// Whether the disk at `dir` has a `device` link. The kernel files a disk without a
/// parent device (loop, zram, dm, md, ...), the very disks without that link, under
/// /sys/devices/virtual/block; reading the /sys/block symlink answers for those
/// without a path walk through sysfs, which costs several times more.
fn is_real(dir: &Path) -> bool {
    match std::fs::read_link(dir) {
        Ok(target) if target.to_string_lossy().contains("/devices/virtual/") => false,
        _ => std::fs::metadata(dir.join("device")).is_ok(),
    }
}

/// The partitions of disk `name`: its subdirectories with a `partition` file. The
/// kernel names partitions after their disk ("vda1", "nvme0n1p1"), so other entries
/// (attributes, "queue", "holders", ...) are not even looked at: sysfs lookups are
/// the bulk of this command's time.
fn partitions(dir: &Path, name: &str) -> Result<Vec<String>, Error> {
    let ctx = || format!("read directory {}", dir.display());
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // Unplugged meanwhile: its mounts, if any, will not match anything either.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(ctx),
    };
    let mut parts = Vec::new();
    for entry in entries {
        let entry = entry.context(ctx)?;
        let part = entry.file_name().to_string_lossy().into_owned();
        if part.len() > name.len()
            && part.starts_with(name)
            && entry.path().join("partition").exists()
        {
            parts.push(part);
        }
    }
    parts.sort_unstable();
    Ok(parts)
}

/// Adds the devices stacked on the device at `dir` (its `holders`), recursively.
fn stacked(
    sys_block: &Path,
    dir: &Path,
    disk: &mut BlockDevice,
    seen: &mut HashSet<String>,
    depth: usize,
) -> Result<(), Error> {
    if depth >= MAX_STACK {
        return Ok(());
    }
    let holders = dir.join("holders");
    let entries = match std::fs::read_dir(&holders) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).context(|| format!("read directory {}", holders.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.context(|| format!("read directory {}", holders.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort_unstable();
    for name in names {
        if !seen.insert(name.clone()) {
            continue;
        }
        let holder = sys_block.join(&name);
        if let Some(dev) = read_dev(&holder)? {
            disk.devs.push(dev);
            disk.paths.push(dev_path(&name));
            stacked(sys_block, &holder, disk, seen, depth + 1)?;
        }
    }
    Ok(())
}

/// The `dev` file of a sysfs block device ("254:0"); `None` when the device is gone.
fn read_dev(dir: &Path) -> Result<Option<String>, Error> {
    let path = dir.join("dev");
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context(|| format!("read {}", path.display())),
    }
}

/// "/dev/" + the sysfs name, whose "!" stands for "/" in the node's path.
fn dev_path(sysfs_name: &str) -> String {
    format!("/dev/{}", sysfs_name.replace('!', "/"))
}

/// Reads and parses a mountinfo file (normally /proc/self/mountinfo).
pub fn read_mounts(path: &Path) -> Result<Vec<Mount>, Error> {
    use std::io::Read as _;
    let ctx = || format!("read {}", path.display());
    // /proc files report size 0, so fs::read would start with a tiny buffer and make
    // the kernel format the table over many reads; one generous buffer takes two.
    let mut bytes = Vec::with_capacity(64 << 10);
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .context(ctx)?;
    Ok(parse_mounts(&String::from_utf8_lossy(&bytes)))
}

/// Parses mountinfo lines:
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
/// (ID, parent, major:minor, root, mountpoint, options, optional fields, "-", type,
/// source, super options). Malformed lines are skipped.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().skip(6).position(|&f| f == "-")? + 6;
            Some(Mount {
                dev: (*fields.get(2)?).to_string(),
                mountpoint: unescape(fields.get(4)?),
                source: unescape(fields.get(sep + 2)?),
                fstype: (*fields.get(sep + 1)?).to_string(),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes of space, tab, newline and backslash (`\040`).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3');
        match octal {
            Some(d) if b[i] == b'\\' => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount that stands for `disk`: of all filesystems on it, the one with the
/// shortest mountpoint (/ before /boot), the first in mount order among equals.
pub fn mount_of<'a>(disk: &BlockDevice, mounts: &'a [Mount]) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| disk.devs.contains(&m.dev) || disk.paths.contains(&m.source))
        .min_by_key(|m| m.mountpoint.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    /// Builds a /sys/block-like tree: `disk(name, dev, parts)` etc.
    struct Tree(tempfile::TempDir);

    impl Tree {
        fn new() -> Self {
            Tree(tempfile::tempdir().unwrap())
        }
        fn root(&self) -> PathBuf {
            self.0.path().to_path_buf()
        }
        fn dev(&self, rel: &str, dev: &str) -> PathBuf {
            let d = self.root().join(rel);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
            d
        }
        fn disk(&self, name: &str, dev: &str) -> PathBuf {
            let d = self.dev(name, dev);
            // The link's target does not matter; that it resolves does.
            std::os::unix::fs::symlink(".", d.join("device")).unwrap();
            d
        }
        fn part(&self, disk: &str, name: &str, dev: &str) -> PathBuf {
            let d = self.dev(&format!("{disk}/{name}"), dev);
            fs::write(d.join("partition"), "1\n").unwrap();
            d
        }
        fn hold(&self, under: &str, holder: &str) {
            let h = self.root().join(under).join("holders");
            fs::create_dir_all(&h).unwrap();
            fs::create_dir_all(h.join(holder)).unwrap();
        }
    }

    fn names(disks: &[BlockDevice]) -> Vec<&str> {
        disks.iter().map(|d| d.path.as_str()).collect()
    }

    #[test]
    fn real_disks_partitions_and_stacks() {
        let t = Tree::new();
        t.disk("vda", "254:0");
        t.part("vda", "vda1", "254:1");
        t.part("vda", "vda2", "254:2");
        t.disk("sdb", "8:16");
        t.disk("cciss!c0d0", "104:0");
        t.dev("loop0", "7:0"); // virtual: no device link
                               // As in sysfs: /sys/block/zram0 -> ../devices/virtual/block/zram0.
        t.dev("devices/virtual/block/zram0", "252:0");
        std::os::unix::fs::symlink("devices/virtual/block/zram0", t.root().join("zram0")).unwrap();
        t.disk("devices/pci0000:00/virtio1/block/vdc", "254:32");
        std::os::unix::fs::symlink("devices/pci0000:00/virtio1/block/vdc", t.root().join("vdc"))
            .unwrap();
        t.dev("dm-0", "253:0");
        t.dev("dm-1", "253:1");
        t.hold("vda/vda2", "dm-0"); // LVM on vda2 ...
        t.hold("dm-0", "dm-1"); // ... and dm-crypt on that
        t.hold("dm-1", "dm-0"); // a cycle must not loop
        fs::create_dir(t.root().join("vda/mq")).unwrap(); // not a partition
        let disks = scan(&t.root()).unwrap();
        assert_eq!(
            names(&disks),
            ["/dev/cciss/c0d0", "/dev/sdb", "/dev/vda", "/dev/vdc"]
        );
        let vda = &disks[2];
        assert_eq!(vda.devs, ["254:0", "254:1", "254:2", "253:0", "253:1"]);
        assert_eq!(
            vda.paths,
            [
                "/dev/vda",
                "/dev/vda1",
                "/dev/vda2",
                "/dev/dm-0",
                "/dev/dm-1"
            ]
        );
        assert_eq!(disks[1].devs, ["8:16"]);
    }

    #[test]
    fn vanished_devices_are_skipped_and_errors_name_the_file() {
        let t = Tree::new();
        let d = t.disk("vdb", "254:16");
        fs::remove_file(d.join("dev")).unwrap();
        assert!(scan(&t.root()).unwrap().is_empty());
        let e = scan(&t.root().join("nope")).unwrap_err();
        assert_eq!(e.code(), libc::ENOENT);
        let want = format!(
            "read directory {}: No such file or directory",
            t.root().join("nope").display()
        );
        assert_eq!(e.message(), want);
        fs::create_dir(d.join("dev")).unwrap();
        let e = scan(&t.root()).unwrap_err();
        assert_eq!(e.code(), libc::EISDIR);
        assert_eq!(
            e.message(),
            format!("read {}: Is a directory", d.join("dev").display())
        );
    }

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,discard
28 27 254:15 / /boot/efi rw,relatime shared:2 master:3 - vfat /dev/vda15 rw
29 27 0:35 /@home /home rw,relatime - btrfs /dev/sdb rw,subvol=/@home
30 27 253:1 / /srv/my\\040data rw - xfs /dev/mapper/vg-data rw
31 27 0:40 / /mnt/nfs rw - nfs4 server:/export rw
bad line
";

    #[test]
    fn parses_mountinfo() {
        let m = parse_mounts(MOUNTINFO);
        assert_eq!(m.len(), 6);
        assert_eq!(
            m[1],
            Mount {
                dev: "254:1".into(),
                mountpoint: "/".into(),
                source: "/dev/vda1".into(),
                fstype: "ext4".into(),
            }
        );
        assert_eq!(m[2].source, "/dev/vda15");
        assert_eq!(m[4].mountpoint, "/srv/my data");
        assert_eq!(unescape(r"a\134b\011c\012\0"), "a\\b\tc\n\\0");
    }

    #[test]
    fn octal_escapes_past_a_byte_are_kept_as_text() {
        // \400 is 256: it used to overflow (a panic in debug builds); the kernel
        // never writes it, so it stays as it is, like the freeze parser keeps it.
        assert_eq!(unescape(r"/a\400b\777"), r"/a\400b\777");
        let m = parse_mounts("1 2 3:4 / /x\\400 rw - ext4 /dev/\\777 rw\n");
        assert_eq!(m[0].mountpoint, "/x\\400");
        assert_eq!(m[0].source, "/dev/\\777");
    }

    #[test]
    fn matches_partitions_stacks_and_btrfs_sources() {
        let m = parse_mounts(MOUNTINFO);
        let disk = |path: &str, devs: &[&str], paths: &[&str]| BlockDevice {
            path: path.into(),
            devs: devs.iter().map(|s| s.to_string()).collect(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
        };
        // / and /boot/efi both live on vda: / stands for the disk.
        let vda = disk(
            "/dev/vda",
            &["254:0", "254:1", "254:15"],
            &["/dev/vda", "/dev/vda1", "/dev/vda15"],
        );
        assert_eq!(mount_of(&vda, &m).unwrap().mountpoint, "/");
        // btrfs: anonymous device number, matched by source.
        let sdb = disk("/dev/sdb", &["8:16"], &["/dev/sdb"]);
        assert_eq!(mount_of(&sdb, &m).unwrap().mountpoint, "/home");
        // LVM on a partition: matched through the stacked device's number.
        let vdc = disk("/dev/vdc", &["254:32", "254:33", "253:1"], &["/dev/vdc"]);
        assert_eq!(mount_of(&vdc, &m).unwrap().mountpoint, "/srv/my data");
        let vdd = disk("/dev/vdd", &["254:48"], &["/dev/vdd"]);
        assert_eq!(mount_of(&vdd, &m), None);
    }

    #[test]
    fn reads_the_live_mountinfo() {
        let m = read_mounts(Path::new("/proc/self/mountinfo")).unwrap();
        assert!(m.iter().any(|m| m.mountpoint == "/"));
        let e = read_mounts(Path::new("/proc/self/nope")).unwrap_err();
        assert_eq!(
            e.message(),
            "read /proc/self/nope: No such file or directory"
        );
    }
}
