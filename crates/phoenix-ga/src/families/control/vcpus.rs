//! `guest-set-vcpus`: logical processors on and off through sysfs.
//!
//! /sys/devices/system/cpu/cpuN/online switches CPU N ("1" or "0"); a CPU without
//! that file (cpu0 on x86 as a rule) is online for good. As qemu-ga: the list is done
//! in order and stops at the first failure; the count done is returned, and the
//! failure itself only when nothing was done. A CPU already in the state asked is done
//! without a write; asking cpu0 online is done, asking it offline is an error.
//!
//! Before anything is switched, the list is checked: a negative `logical-id` is an
//! argument error of the whole request (qemu-ga switches the CPUs before it and then
//! stops there).

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use nix::errno::Errno;
use phoenix_proto::types::control::GuestLogicalProcessorArg;

use crate::error::Error;

/// Checks the whole list before anything is switched.
pub fn validate(list: &[GuestLogicalProcessorArg]) -> Result<(), Error> {
    match list.iter().position(|v| v.logical_id < 0) {
        Some(i) => Err(Error::invalid(format!(
            "vcpus[{i}].logical-id {} is not a CPU number (0 or more)",
            list[i].logical_id
        ))),
        None => Ok(()),
    }
}

/// Switches each CPU of `list` in order under `dir` (/sys/devices/system/cpu); how
/// many were done before the first failure, which is the error when it is the first.
pub fn set(dir: &Path, list: &[GuestLogicalProcessorArg]) -> Result<i64, Error> {
    validate(list)?;
    let mut done: i64 = 0;
    for v in list {
        let id = u64::try_from(v.logical_id).unwrap_or_default();
        match set_one(dir, id, v.online) {
            Ok(()) => done += 1,
            Err(e) if done == 0 => return Err(e),
            Err(e) => {
                tracing::warn!(cpu = id, error = %e.message(), done, "guest-set-vcpus stopped");
                break;
            }
        }
    }
    Ok(done)
}

/// Puts CPU `id` in the state `online`.
fn set_one(dir: &Path, id: u64, online: bool) -> Result<(), Error> {
    let cpu = dir.join(format!("cpu{id}"));
    match std::fs::metadata(&cpu) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(no_such(id, &cpu, Errno::ENOTDIR)),
        Err(e) => {
            let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
            return Err(no_such(id, &cpu, errno));
        }
    }
    let path = cpu.join("online");
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound && online => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::errno(
                Errno::EOPNOTSUPP,
                format!("logical processor {id} cannot be taken offline: {} does not exist", path.display()),
            ))
        }
        Err(e) => return Err(Error::os(format!("open {}", path.display()), e)),
    };
    let mut state = [0u8; 1];
    let n = file
        .read_at(&mut state, 0)
        .map_err(|e| Error::os(format!("read {}", path.display()), e))?;
    if n == 0 {
        return Err(Error::errno(Errno::ENODATA, format!("read {}: empty", path.display())));
    }
    if (state[0] != b'0') == online {
        return Ok(());
    }
    let want: &[u8] = if online { b"1" } else { b"0" };
    file.write_at(want, 0).map(drop).map_err(|e| {
        Error::os(
            format!(
                "take logical processor {id} {} (write {})",
                if online { "online" } else { "offline" },
                path.display()
            ),
            e,
        )
    })
}

fn no_such(id: u64, cpu: &Path, errno: Errno) -> Error {
    Error::errno(
        errno,
        format!("no logical processor {id}: {}: {}", cpu.display(), errno.desc()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(id: i64, online: bool) -> GuestLogicalProcessorArg {
        GuestLogicalProcessorArg {
            logical_id: id,
            online,
            can_offline: None,
        }
    }

    /// cpu0 without a switch, cpu1 and cpu2 online, cpu3 offline (regular files).
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (n, state) in [(0, None), (1, Some("1\n")), (2, Some("1\n")), (3, Some("0\n"))] {
            let d = dir.path().join(format!("cpu{n}"));
            std::fs::create_dir_all(&d).unwrap();
            if let Some(s) = state {
                std::fs::write(d.join("online"), s).unwrap();
            }
        }
        std::fs::create_dir(dir.path().join("cpufreq")).unwrap();
        dir
    }

    fn state(dir: &Path, n: u32) -> String {
        std::fs::read_to_string(dir.join(format!("cpu{n}/online"))).unwrap()
    }

    #[test]
    fn switches_in_order_and_counts() {
        let d = tree();
        let n = set(d.path(), &[cpu(1, false), cpu(3, true), cpu(0, true), cpu(2, true)]).unwrap();
        assert_eq!(n, 4);
        assert_eq!(state(d.path(), 1), "0\n");
        assert_eq!(state(d.path(), 3), "1\n");
        // Unchanged: not written (the file keeps its newline).
        assert_eq!(state(d.path(), 2), "1\n");
        // Repeats are allowed, and each is done in turn.
        assert_eq!(set(d.path(), &[cpu(1, true), cpu(1, false), cpu(1, true)]).unwrap(), 3);
        assert_eq!(state(d.path(), 1), "1\n");
        assert_eq!(set(d.path(), &[]).unwrap(), 0);
    }

    #[test]
    fn stops_at_the_first_failure() {
        let d = tree();
        // Done before the failure: counted, the rest not touched.
        assert_eq!(set(d.path(), &[cpu(1, false), cpu(0, false), cpu(2, false)]).unwrap(), 1);
        assert_eq!((state(d.path(), 1), state(d.path(), 2)), ("0\n".into(), "1\n".into()));
        // The first fails: its error.
        let e = set(d.path(), &[cpu(0, false), cpu(2, false)]).unwrap_err();
        assert_eq!(e.code(), libc::EOPNOTSUPP);
        assert!(e.message().starts_with("logical processor 0 cannot be taken offline"), "{}", e.message());
        assert_eq!(state(d.path(), 2), "1\n");
        let e = set(d.path(), &[cpu(7, true)]).unwrap_err();
        assert_eq!(e.code(), libc::ENOENT);
        assert!(e.message().starts_with("no logical processor 7: "), "{}", e.message());
        assert!(e.message().ends_with("cpu7: No such file or directory"), "{}", e.message());
    }

    #[test]
    fn bad_ids_are_refused_before_anything_changes() {
        let d = tree();
        let e = set(d.path(), &[cpu(1, false), cpu(-1, true)]).unwrap_err();
        assert_eq!(e.code(), -1);
        assert_eq!(
            e.message(),
            "invalid arguments: vcpus[1].logical-id -1 is not a CPU number (0 or more)"
        );
        assert_eq!(state(d.path(), 1), "1\n");
        validate(&[cpu(0, true), cpu(i64::MAX, false)]).unwrap();
        validate(&[cpu(i64::MIN, false)]).unwrap_err();
    }
}
