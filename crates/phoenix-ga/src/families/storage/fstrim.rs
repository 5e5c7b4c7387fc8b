//! `guest-fstrim`: FITRIM on every local filesystem ([`super::mounts`]), so that the
//! host can reclaim the free blocks of thin-provisioned disks.
//!
//! FITRIM (linux/fs.h) takes a range of the filesystem and a minimum extent length
//! and returns, in the same struct, how many bytes it discarded. It can run for
//! minutes on a large filesystem. A filesystem that cannot discard says EOPNOTSUPP
//! (ext4 on a disk without discard) or ENOTTY (one without the ioctl: squashfs, ISO
//! 9660); qemu-ga reports both as "trim not supported", any other error as "failed to
//! trim: REASON", and the results in reverse mount order.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use phoenix_proto::types::storage::qga::GuestFilesystemTrimResult;

use super::mounts::FsMount;

/// `struct fstrim_range` of linux/fs.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct FstrimRange {
    start: u64,
    len: u64,
    minlen: u64,
}

// FITRIM = _IOWR('X', 121, struct fstrim_range) (linux/fs.h).
nix::ioctl_readwrite!(fitrim_raw, b'X', 121, FstrimRange);

/// What one FITRIM did: bytes trimmed and the minimum extent the filesystem used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    /// Bytes discarded.
    pub len: u64,
    /// The minimum extent length, as the filesystem returned it.
    pub minlen: u64,
}

/// FITRIM of the whole filesystem `dir` lives on, skipping free extents shorter than
/// `minimum` bytes.
pub fn fitrim(dir: &File, minimum: u64) -> nix::Result<Trimmed> {
    let mut range = FstrimRange {
        start: 0,
        len: u64::MAX,
        minlen: minimum,
    };
    // SAFETY: `dir` is an open descriptor for the whole call and `range` is a live,
    // writable struct of the layout FITRIM reads and writes back.
    unsafe { fitrim_raw(dir.as_raw_fd(), &mut range) }?;
    Ok(Trimmed {
        len: range.len,
        minlen: range.minlen,
    })
}

/// The result line of one filesystem, worded as qemu-ga words it.
pub fn result(path: &str, outcome: Result<Trimmed, Failure>) -> GuestFilesystemTrimResult {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let (trimmed, minimum, error) = match outcome {
        Ok(t) => (Some(clamp(t.len)), Some(clamp(t.minlen)), None),
        Err(Failure::Open(e)) => (None, None, Some(format!("failed to open: {}", e.desc()))),
        Err(Failure::Trim(Errno::ENOTTY | Errno::EOPNOTSUPP)) => {
            (None, None, Some("trim not supported".to_string()))
        }
        Err(Failure::Trim(e)) => (None, None, Some(format!("failed to trim: {}", e.desc()))),
        Err(Failure::Frozen) => (
            None,
            None,
            Some("not trimmed: the filesystems are being frozen".to_string()),
        ),
    };
    GuestFilesystemTrimResult {
        path: path.to_string(),
        trimmed,
        minimum,
        error,
    }
}

/// Why a filesystem was not trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Its mount point could not be opened.
    Open(Errno),
    /// FITRIM failed.
    Trim(Errno),
    /// A freeze began while the trim went through the list: the rest is left alone.
    Frozen,
}

/// Trims each of `mounts` (in mount order) in turn; the results in qemu-ga's order
/// (reversed). Once `freezing()` (the frozen gate closed: a freeze begins), the
/// remaining filesystems are not touched.
pub fn trim_all(
    mounts: &[FsMount],
    minimum: u64,
    freezing: impl Fn() -> bool,
    trim: impl Fn(&str, u64) -> Result<Trimmed, Failure>,
) -> Vec<GuestFilesystemTrimResult> {
    let mut out: Vec<GuestFilesystemTrimResult> = mounts
        .iter()
        .map(|m| {
            let outcome = if freezing() {
                Err(Failure::Frozen)
            } else {
                trim(&m.mountpoint, minimum)
            };
            match &outcome {
                Ok(t) => tracing::info!(path = %m.mountpoint, trimmed = t.len, "fstrim"),
                Err(why) => tracing::info!(path = %m.mountpoint, ?why, "fstrim: not trimmed"),
            }
            result(&m.mountpoint, outcome)
        })
        .collect();
    out.reverse();
    out
}

/// The real trim of one mount point: open it (read-only, as qemu-ga) and FITRIM.
pub fn trim_path(path: &str, minimum: u64) -> Result<Trimmed, Failure> {
    let dir = File::open(path).map_err(|e| Failure::Open(io_errno(&e)))?;
    fitrim(&dir, minimum).map_err(Failure::Trim)
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(path: &str) -> FsMount {
        FsMount {
            mountpoint: path.into(),
            fstype: "ext4".into(),
            major: 7,
            minor: 0,
        }
    }

    #[test]
    fn results_are_worded_as_qemu_ga_words_them() {
        let mounts = [mount("/"), mount("/boot"), mount("/cd"), mount("/gone"), mount("/x")];
        let got = trim_all(&mounts, 4096, || false, |path, minimum| {
            assert_eq!(minimum, 4096);
            match path {
                "/" => Ok(Trimmed {
                    len: 1 << 20,
                    minlen: 4096,
                }),
                "/boot" => Err(Failure::Trim(Errno::EOPNOTSUPP)),
                "/cd" => Err(Failure::Trim(Errno::ENOTTY)),
                "/gone" => Err(Failure::Open(Errno::ENOENT)),
                _ => Err(Failure::Trim(Errno::EINVAL)),
            }
        });
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"path": "/x", "error": "failed to trim: Invalid argument"},
                {"path": "/gone", "error": "failed to open: No such file or directory"},
                {"path": "/cd", "error": "trim not supported"},
                {"path": "/boot", "error": "trim not supported"},
                {"path": "/", "trimmed": 1048576, "minimum": 4096},
            ])
        );
        let huge = result(
            "/",
            Ok(Trimmed {
                len: u64::MAX,
                minlen: 0,
            }),
        );
        assert_eq!(huge.trimmed, Some(i64::MAX));
    }

    #[test]
    fn a_freeze_stops_the_round() {
        let frozen = std::cell::Cell::new(false);
        let mounts = [mount("/a"), mount("/b"), mount("/c")];
        let got = trim_all(&mounts, 0, || frozen.get(), |path, _| {
            if path == "/b" {
                frozen.set(true);
            }
            Ok(Trimmed { len: 1, minlen: 0 })
        });
        let errors: Vec<Option<&str>> = got.iter().map(|r| r.error.as_deref()).collect();
        assert_eq!(
            errors,
            [
                Some("not trimmed: the filesystems are being frozen"),
                None,
                None
            ]
        );
    }

    #[test]
    fn fitrim_on_a_tmpfs_directory_is_not_supported() {
        // /dev/shm is tmpfs on every Linux: no FITRIM there.
        let dir = File::open("/dev/shm").unwrap();
        let e = fitrim(&dir, 0).unwrap_err();
        assert!(matches!(e, Errno::ENOTTY | Errno::EOPNOTSUPP), "{e}");
        assert_eq!(
            trim_path("/nonexistent/mnt", 0).unwrap_err(),
            Failure::Open(Errno::ENOENT)
        );
    }
}
