//! Memory blocks, the units of memory hotplug, from sysfs (`guest-get-memory-blocks`,
//! `guest-get-memory-block-info`).
//!
//! /sys/devices/system/memory holds `block_size_bytes` (hexadecimal, without `0x`)
//! and a directory `memoryN` per block, whose `state` is `online`, `offline` or
//! `going-offline`, and whose `removable` (first byte `1` or `0`) says whether the
//! kernel could take it offline. A kernel without `state` cannot switch blocks (online
//! for good), one without `removable` cannot take them offline.

use std::io;
use std::path::Path;

use nix::errno::Errno;
use phoenix_proto::types::system::qga::GuestMemoryBlock;

use super::sysfs;
use crate::error::{Context as _, Error};

/// Every memory block under `dir`, sorted by number. A kernel without memory
/// hotplug has no such directory: an empty list, as in qemu-ga.
pub fn blocks(dir: &Path) -> Result<Vec<GuestMemoryBlock>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(|| format!("read directory {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.context(|| format!("read directory {}", dir.display()))?;
        let Some(index) = entry.file_name().to_str().and_then(|n| sysfs::numbered(n, "memory"))
        else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let block = match sysfs::attr(&path.join("state"), 16)? {
            None => GuestMemoryBlock {
                phys_index: index,
                online: true,
                can_offline: Some(false),
            },
            Some(state) => GuestMemoryBlock {
                phys_index: index,
                online: state.starts_with(b"online"),
                can_offline: Some(
                    sysfs::attr(&path.join("removable"), 1)?.is_some_and(|r| r[0] != b'0'),
                ),
            },
        };
        out.push(block);
    }
    if out.is_empty() {
        // As qemu-ga: a guest always has memory ("guest reported zero memory blocks!").
        return Err(Error::errno(
            Errno::ENOENT,
            format!("no memory blocks in {}", dir.display()),
        ));
    }
    out.sort_unstable_by_key(|b| b.phys_index);
    Ok(out)
}

/// Bytes in one memory block: `block_size_bytes` under `dir`.
pub fn block_size(dir: &Path) -> Result<u64, Error> {
    let path = dir.join("block_size_bytes");
    let raw = sysfs::attr(&path, 32)?.ok_or_else(|| {
        Error::os(
            format!("read {}", path.display()),
            io::Error::from_raw_os_error(libc::ENOENT),
        )
    })?;
    let text = String::from_utf8_lossy(&raw);
    let hex = text.trim();
    u64::from_str_radix(hex, 16)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            Error::errno(
                Errno::EINVAL,
                format!("read {}: not a block size: {hex:?}", path.display()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn block(phys_index: u64, online: bool, can_offline: bool) -> GuestMemoryBlock {
        GuestMemoryBlock {
            phys_index,
            online,
            can_offline: Some(can_offline),
        }
    }

    #[test]
    fn blocks_from_a_sysfs_tree() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, state, removable) in [
            ("memory0", Some("online\n"), Some("0\n")),
            ("memory32", Some("online\n"), Some("1\n")),
            ("memory9", Some("offline\n"), Some("1\n")),
            ("memory10", Some("going-offline\n"), None),
            ("memory11", None, None),
        ] {
            fs::create_dir(d.join(name)).unwrap();
            if let Some(s) = state {
                fs::write(d.join(name).join("state"), s).unwrap();
            }
            if let Some(r) = removable {
                fs::write(d.join(name).join("removable"), r).unwrap();
            }
        }
        // Not blocks: a file, and names that are not memoryN.
        fs::write(d.join("memory12"), "online\n").unwrap();
        fs::create_dir(d.join("memory_tiers")).unwrap();
        fs::create_dir(d.join("power")).unwrap();
        fs::write(d.join("block_size_bytes"), "8000000\n").unwrap();
        fs::write(d.join("auto_online_blocks"), "online\n").unwrap();
        assert_eq!(
            blocks(d).unwrap(),
            vec![
                block(0, true, false),
                block(9, false, true),
                block(10, false, false),
                block(11, true, false),
                block(32, true, true),
            ]
        );
        assert_eq!(block_size(d).unwrap(), 134_217_728);
        // A state that cannot be read fails the command, naming it.
        fs::write(d.join("memory9/state"), "").unwrap();
        let e = blocks(d).unwrap_err();
        assert_eq!(e.message(), format!("read {}: empty file", d.join("memory9/state").display()));
    }

    #[test]
    fn no_hotplug_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // No memory directory: no blocks, not an error.
        assert_eq!(blocks(&d.join("memory")).unwrap(), vec![]);
        let e = block_size(&d.join("memory")).unwrap_err();
        assert_eq!(e.code(), libc::ENOENT);
        assert_eq!(
            e.message(),
            format!("read {}: No such file or directory", d.join("memory/block_size_bytes").display())
        );
        // A directory without blocks.
        let e = blocks(d).unwrap_err();
        assert_eq!(e.message(), format!("no memory blocks in {}", d.display()));
        for bad in ["zz\n", "0\n", "\n", "80000000000000000\n"] {
            fs::write(d.join("block_size_bytes"), bad).unwrap();
            let e = block_size(d).unwrap_err();
            assert_eq!(e.code(), libc::EINVAL, "{bad:?}");
        }
        fs::write(d.join("block_size_bytes"), "40000000").unwrap();
        assert_eq!(block_size(d).unwrap(), 1 << 30);
    }
}
