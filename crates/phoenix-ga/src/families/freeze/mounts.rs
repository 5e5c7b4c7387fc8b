//! Which filesystems a freeze covers, read off the mount table.
//!
//! `/proc/self/mounts` lists one mount per line: `SOURCE MOUNTPOINT FSTYPE OPTIONS 0 0`,
//! with space, tab, newline and backslash in the first two fields written as octal
//! escapes (`\040`, `\011`, `\012`, `\134`). The selection is pure (a mount table and a
//! symlink resolver in, mount points out) so it is unit-tested on fixtures; only
//! [`read`] and [`resolve`] touch the system.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The mount table of the agent's mount namespace.
pub const MOUNTS: &str = "/proc/self/mounts";

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The device or other source, as the kernel shows it (`/dev/vda1`, `tmpfs`,
    /// `//server/share`).
    pub source: String,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The filesystem type (`ext4`, `cifs`, ...).
    pub fstype: String,
}

/// Filesystem types never frozen by the default selection: network filesystems whose
/// source looks like a path (`//server/share`), which a freeze would hang on.
const NETWORK_FSTYPES: &[&str] = &["smbfs", "cifs", "smb3"];

/// Reads and parses the live mount table.
pub fn read() -> io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read(MOUNTS)?))
}

/// Parses a mount table; malformed lines (fewer than three fields) are skipped.
pub fn parse(text: &[u8]) -> Vec<Mount> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut fields = line
                .split(|&b| b == b' ' || b == b'\t')
                .filter(|f| !f.is_empty());
            let source = fields.next()?;
            let mountpoint = fields.next()?;
            let fstype = fields.next()?;
            Some(Mount {
                source: String::from_utf8_lossy(&unescape(source)).into_owned(),
                mountpoint: PathBuf::from(OsString::from_vec(unescape(mountpoint))),
                fstype: String::from_utf8_lossy(fstype).into_owned(),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` is a space); anything else is kept as is.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field.get(i + 1..i + 4).filter(|d| {
            field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// The real resolver: follows `/dev/mapper/x -> ../dm-0` and `/dev/disk/by-*` links to
/// the device node; a source that does not resolve stays as it is.
pub fn resolve(source: &str) -> String {
    std::fs::canonicalize(source)
        .ok()
        .and_then(|p| p.into_os_string().into_string().ok())
        .unwrap_or_else(|| source.to_string())
}

/// Whether the default selection skips a source: loop devices (their backing file
/// lives on a filesystem that is frozen too) and device-mapper devices (their
/// underlying devices may be frozen through another mount), named directly or behind
/// a symlink.
fn skipped_device(source: &str, resolved: &str) -> bool {
    source.starts_with("/dev/mapper/")
        || [source, resolved]
            .iter()
            .any(|s| s.starts_with("/dev/loop") || s.starts_with("/dev/dm-"))
}

/// The default selection of `fs-freeze` (docs/commands/freeze.md): every mount whose
/// source is a path, except network filesystems, loop and device-mapper sources, once
/// per source device (the first mount of a device wins: bind mounts and btrfs
/// subvolumes share one superblock, which takes one freeze). In freeze order (see
/// [`freeze_order`]).
pub fn select_all(mounts: &[Mount], resolve: impl Fn(&str) -> String) -> Vec<PathBuf> {
    select(mounts, resolve, false)
}

/// The default selection of `guest-fsfreeze-freeze`: as [`select_all`], but loop and
/// device-mapper sources are frozen too, as qemu-ga freezes them (LVM and dm-crypt
/// filesystems, loop-mounted images: an image before the filesystem holding it).
pub fn select_all_qga(mounts: &[Mount], resolve: impl Fn(&str) -> String) -> Vec<PathBuf> {
    select(mounts, resolve, true)
}

fn select(mounts: &[Mount], resolve: impl Fn(&str) -> String, loop_and_dm: bool) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    let picked = mounts
        .iter()
        .filter(|m| m.source.starts_with('/'))
        .filter(|m| !NETWORK_FSTYPES.contains(&m.fstype.as_str()))
        .filter_map(|m| {
            let resolved = resolve(&m.source);
            if (!loop_and_dm && skipped_device(&m.source, &resolved)) || !seen.insert(resolved)
            {
                return None;
            }
            Some(m.mountpoint.clone())
        })
        .collect();
    freeze_order(picked)
}

/// Freezing goes from the last mount to the first, and thawing back from the first:
/// a filesystem mounted later may depend on one mounted earlier for its own writes
/// (an image file on a loop device, an NBD export's file), and its FIFREEZE, which
/// writes its journal, would block for good if the one below were already frozen;
/// likewise its FITHAW, if the one below were still frozen. Mount order is the only
/// dependency order the table gives.
fn freeze_order(mut in_mount_order: Vec<PathBuf>) -> Vec<PathBuf> {
    in_mount_order.reverse();
    in_mount_order
}

/// The selection for an explicit `mountpoints` list (already made absolute and
/// canonical): each must be a mount point of the table, or `Err` names the first that
/// is not. Any filesystem type and source is allowed (a loop mount may be named);
/// mount points sharing a source device are frozen once. In freeze order (see
/// [`freeze_order`]), whatever order the host listed them in.
pub fn select_named(
    mounts: &[Mount],
    requested: &[PathBuf],
    resolve: impl Fn(&str) -> String,
) -> Result<Vec<PathBuf>, PathBuf> {
    // A mount point covered by a later mount shows the later one: the last entry wins.
    let mut picked: Vec<(usize, &Mount)> = Vec::new();
    for want in requested {
        let found = mounts.iter().rposition(|m| m.mountpoint == *want);
        match found {
            Some(i) if !picked.iter().any(|&(j, _)| j == i) => picked.push((i, &mounts[i])),
            Some(_) => {}
            None => return Err(want.clone()),
        }
    }
    picked.sort_by_key(|&(i, _)| i);
    let mut seen = HashSet::new();
    Ok(freeze_order(
        picked
            .into_iter()
            .filter(|(_, m)| !m.source.starts_with('/') || seen.insert(resolve(&m.source)))
            .map(|(_, m)| m.mountpoint.clone())
            .collect(),
    ))
}

/// Makes a requested mount point absolute and canonical, so `/mnt/x/` and a symlink
/// to it match the table's `/mnt/x`.
pub fn canonical(path: &Path) -> io::Result<PathBuf> {
    std::fs::canonicalize(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A guest with the cases the selection must get right.
    const FIXTURE: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/vda1 / ext4 rw,relatime 0 0
tmpfs /run tmpfs rw,nosuid,nodev,size=400000k,mode=755 0 0
/dev/vda2 /home ext4 rw,relatime 0 0
/dev/vda1 /srv/bind ext4 rw,relatime 0 0
/dev/disk/by-uuid/1234-abcd /boot vfat rw,relatime 0 0
/dev/mapper/vg-data /data xfs rw,relatime 0 0
/dev/dm-1 /data2 xfs rw,relatime 0 0
/dev/loop0 /snap/core/1 squashfs ro,nodev,relatime 0 0
//fileserver/share /mnt/share cifs rw,relatime,vers=3.0 0 0
//nas/old /mnt/old smbfs rw 0 0
/dev/vdb /mnt/with\\040space ext4 rw 0 0
/dev/disk/by-label/home /home2 ext4 rw 0 0
overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0
";

    fn links() -> impl Fn(&str) -> String {
        let map: HashMap<&str, &str> = [
            ("/dev/disk/by-uuid/1234-abcd", "/dev/vda15"),
            ("/dev/mapper/vg-data", "/dev/dm-0"),
            ("/dev/disk/by-label/home", "/dev/vda2"),
        ]
        .into_iter()
        .collect();
        move |s| map.get(s).map_or_else(|| s.to_string(), |t| t.to_string())
    }

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn parses_fields_and_octal_escapes() {
        let m = parse(FIXTURE.as_bytes());
        assert_eq!(m.len(), 15);
        assert_eq!(
            m[2],
            Mount {
                source: "/dev/vda1".into(),
                mountpoint: "/".into(),
                fstype: "ext4".into()
            }
        );
        assert_eq!(m[12].mountpoint, PathBuf::from("/mnt/with space"));
        let odd = parse(b"a\\011b /x\\134y\\012z\\0 t o 0 0\n\nshort line\n");
        assert_eq!(odd.len(), 1);
        assert_eq!(odd[0].source, "a\tb");
        assert_eq!(odd[0].mountpoint, PathBuf::from("/x\\y\nz\\0"));
    }

    #[test]
    fn default_selection_follows_protocol() {
        let got = select_all(&parse(FIXTURE.as_bytes()), links());
        // /srv/bind: same device as /; /home2: same device as /home through a
        // by-label link; /data and /data2: device-mapper; /snap: loop; cifs and
        // smbfs: network; sysfs, tmpfs, overlay: source is not a path.
        assert_eq!(got, paths(&["/mnt/with space", "/boot", "/home", "/"]));
    }

    #[test]
    fn qemu_ga_selection_takes_loop_and_device_mapper_too() {
        let got = select_all_qga(&parse(FIXTURE.as_bytes()), links());
        // Still once per device (/srv/bind, /home2), never network or pseudo
        // filesystems; the loop image is frozen before / which may hold it.
        assert_eq!(
            got,
            paths(&[
                "/mnt/with space",
                "/snap/core/1",
                "/data2",
                "/data",
                "/boot",
                "/home",
                "/"
            ])
        );
    }

    #[test]
    fn mapper_sources_are_skipped_even_when_they_do_not_resolve() {
        let m = parse(b"/dev/mapper/gone /x ext4 rw 0 0\n/dev/loop7p1 /y ext4 rw 0 0\n");
        assert!(select_all(&m, |s| s.to_string()).is_empty());
        assert_eq!(select_all_qga(&m, |s| s.to_string()).len(), 2);
    }

    #[test]
    fn a_link_to_a_loop_device_is_skipped() {
        let m = parse(b"/dev/disk/by-uuid/42 /x ext4 rw 0 0\n");
        assert!(select_all(&m, |_| "/dev/loop3".to_string()).is_empty());
    }

    #[test]
    fn named_selection_is_in_mount_order_and_dedups_devices() {
        let m = parse(FIXTURE.as_bytes());
        let got = select_named(
            &m,
            &paths(&[
                "/snap/core/1",
                "/home",
                "/srv/bind",
                "/",
                "/home2",
                "/run",
                "/home",
            ]),
            links(),
        );
        // Loop and tmpfs are allowed when named; /srv/bind is / again, /home2 is /home.
        // Last mounted first: /snap's image may live on /.
        assert_eq!(got.unwrap(), paths(&["/snap/core/1", "/home", "/run", "/"]));
    }

    #[test]
    fn named_selection_rejects_what_is_not_a_mount_point() {
        let m = parse(FIXTURE.as_bytes());
        let got = select_named(&m, &paths(&["/home", "/home/user"]), links());
        assert_eq!(got.unwrap_err(), PathBuf::from("/home/user"));
    }

    #[test]
    fn tmpfs_instances_are_not_merged_by_source_name() {
        let m = parse(b"tmpfs /a tmpfs rw 0 0\ntmpfs /b tmpfs rw 0 0\n");
        let got = select_named(&m, &paths(&["/a", "/b"]), |s| s.to_string());
        assert_eq!(got.unwrap(), paths(&["/b", "/a"]));
    }

    #[test]
    fn an_overmounted_mount_point_is_the_last_entry() {
        let m = parse(
            b"/dev/vdb /mnt ext4 rw 0 0\n/dev/vdc /x ext4 rw 0 0\n/dev/vdd /mnt ext4 rw 0 0\n",
        );
        let got = select_named(&m, &paths(&["/x", "/mnt"]), |s| s.to_string());
        assert_eq!(got.unwrap(), paths(&["/mnt", "/x"]));
    }
}
