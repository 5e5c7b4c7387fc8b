//! `guest-set-memory-blocks`: memory blocks on and off through sysfs, one result per
//! block asked, as qemu-ga gives them.
//!
//! /sys/devices/system/memory/memoryN/state reads `online`, `offline` or
//! `going-offline` and takes `online` or `offline`. Taking a block offline migrates
//! what lives in it; the kernel refuses (EBUSY) when it holds pages it cannot move.
//! The results:
//! - no memory directory in sysfs: `operation-not-supported`, error-code ENOENT;
//! - no `memoryN`: `not-found`, ENOENT (another error opening it: `operation-failed`);
//! - no `state` (a kernel that cannot switch blocks): asked online, `success` (it is);
//!   asked offline, `operation-not-supported`, ENOENT;
//! - already in the state asked: `success`, nothing written;
//! - the kernel refuses the switch: `operation-failed` with its errno.
//!
//! qemu-ga also sends `"error-code": 2` with a `success` for a block without `state`
//! asked online; here a success never carries an error code.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read as _, Write as _};
use std::path::Path;

use phoenix_proto::types::control::{
    GuestMemoryBlockArg, GuestMemoryBlockResponse, GuestMemoryBlockResponseType as Response,
};

/// Switches each block of `list` in order under `dir` (/sys/devices/system/memory).
pub fn set(dir: &Path, list: &[GuestMemoryBlockArg]) -> Vec<GuestMemoryBlockResponse> {
    list.iter()
        .map(|b| {
            let (response, errno) = set_one(dir, b.phys_index, b.online);
            if response != Response::Success {
                tracing::info!(block = b.phys_index, online = b.online, ?response, ?errno, "memory block not switched");
            }
            GuestMemoryBlockResponse {
                phys_index: b.phys_index,
                response,
                error_code: errno.map(i64::from),
            }
        })
        .collect()
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// What became of block `index` asked `online`, and the errno of a failure.
fn set_one(dir: &Path, index: u64, online: bool) -> (Response, Option<i32>) {
    if let Err(e) = std::fs::metadata(dir) {
        return match e.kind() {
            ErrorKind::NotFound => (Response::OperationNotSupported, Some(libc::ENOENT)),
            _ => (Response::OperationFailed, Some(errno_of(&e))),
        };
    }
    let block = dir.join(format!("memory{index}"));
    match std::fs::metadata(&block) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return (Response::NotFound, Some(libc::ENOTDIR)),
        Err(e) if e.kind() == ErrorKind::NotFound => return (Response::NotFound, Some(libc::ENOENT)),
        Err(e) => return (Response::OperationFailed, Some(errno_of(&e))),
    }
    let path = block.join("state");
    let mut state = String::new();
    let read = OpenOptions::new()
        .read(true)
        .open(&path)
        .and_then(|f| f.take(64).read_to_string(&mut state));
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound && online => return (Response::Success, None),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return (Response::OperationNotSupported, Some(libc::ENOENT))
        }
        Err(e) => return (Response::OperationFailed, Some(errno_of(&e))),
    }
    if state.trim_end() == "online" && online || state.trim_end() == "offline" && !online {
        return (Response::Success, None);
    }
    let want = if online { "online" } else { "offline" };
    let written = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(want.as_bytes()));
    match written {
        Ok(()) => (Response::Success, None),
        Err(e) => (Response::OperationFailed, Some(errno_of(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blk(index: u64, online: bool) -> GuestMemoryBlockArg {
        GuestMemoryBlockArg {
            phys_index: index,
            online,
            can_offline: None,
        }
    }

    #[test]
    fn one_result_per_block_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (n, state) in [(0, Some("online\n")), (1, Some("offline\n")), (2, None), (3, Some("going-offline\n"))] {
            std::fs::create_dir_all(d.join(format!("memory{n}"))).unwrap();
            if let Some(s) = state {
                std::fs::write(d.join(format!("memory{n}/state")), s).unwrap();
            }
        }
        let got = set(d, &[blk(0, true), blk(1, true), blk(2, true), blk(2, false), blk(9, true), blk(3, true)]);
        let want = [
            (0, Response::Success, None),
            (1, Response::Success, None),
            (2, Response::Success, None),
            (2, Response::OperationNotSupported, Some(2)),
            (9, Response::NotFound, Some(2)),
            (3, Response::Success, None),
        ];
        let got: Vec<_> = got.iter().map(|r| (r.phys_index, r.response, r.error_code)).collect();
        assert_eq!(got, want);
        let state = |n: u32| std::fs::read_to_string(d.join(format!("memory{n}/state"))).unwrap();
        // Already online: not written; switched: written.
        assert_eq!((state(0).as_str(), state(1).as_str(), state(3).as_str()), ("online\n", "online", "online"));
        assert_eq!(set(d, &[]), vec![]);
        // A kernel without memory blocks in sysfs.
        let none = set(&d.join("nope"), &[blk(0, false)]);
        assert_eq!((none[0].response, none[0].error_code), (Response::OperationNotSupported, Some(2)));
    }

    #[test]
    fn a_refused_write_is_operation_failed_with_its_errno() {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("memory5");
        std::fs::create_dir_all(&b).unwrap();
        // A directory where the attribute should be: open for writing says EISDIR.
        std::fs::create_dir(b.join("state")).unwrap();
        let r = set(dir.path(), &[blk(5, false)]);
        assert_eq!((r[0].response, r[0].error_code), (Response::OperationFailed, Some(i64::from(libc::EISDIR))));
    }
}
