//! The two ioctls of a freeze, on a directory descriptor of the filesystem, and
//! thawing a list of frozen filesystems.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::libc::c_int;

use crate::error::{Context, Error};

mod raw {
    use nix::libc::c_int;
    // FIFREEZE = _IOWR('X', 119, int), FITHAW = _IOWR('X', 120, int) (linux/fs.h).
    nix::ioctl_readwrite_bad!(
        fifreeze,
        nix::request_code_readwrite!(b'X', 119, std::mem::size_of::<c_int>()),
        c_int
    );
    nix::ioctl_readwrite_bad!(
        fithaw,
        nix::request_code_readwrite!(b'X', 120, std::mem::size_of::<c_int>()),
        c_int
    );
}

/// Freezes the filesystem `dir` lives on.
pub fn fifreeze(dir: &File) -> nix::Result<()> {
    let mut unused: c_int = 0;
    // SAFETY: `dir` is an open descriptor for the whole call; the kernel ignores the
    // argument of FIFREEZE, which points to a live, writable c_int anyway.
    unsafe { raw::fifreeze(dir.as_raw_fd(), &mut unused) }.map(drop)
}

/// Thaws the filesystem `dir` lives on.
pub fn fithaw(dir: &File) -> nix::Result<()> {
    let mut unused: c_int = 0;
    // SAFETY: as in `fifreeze`: a valid descriptor and a live c_int the kernel ignores.
    unsafe { raw::fithaw(dir.as_raw_fd(), &mut unused) }.map(drop)
}

/// Opens a mount point as a directory (read-only, close-on-exec, not following a
/// final symlink into another filesystem).
pub fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(path)
}

/// One frozen filesystem.
#[derive(Debug)]
pub struct Frozen {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The descriptor it was frozen through; `None` for filesystems recovered from
    /// the marker of a previous agent (opened at thaw time: opening a directory does
    /// not block on a frozen filesystem).
    pub dir: Option<File>,
}

/// What [`thaw_list`] did.
#[derive(Debug, Default)]
pub struct Thawed {
    /// How many FITHAWs succeeded (a filesystem already thawed or gone is not counted).
    pub count: usize,
    /// What stayed frozen, in freeze order.
    pub left: Vec<Frozen>,
    /// The first error.
    pub error: Option<Error>,
}

/// Thaws in reverse order.
pub fn thaw_list(list: Vec<Frozen>) -> Thawed {
    let mut done = Thawed::default();
    for f in list.into_iter().rev() {
        match thaw_one(&f) {
            Ok(true) => done.count += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e.message(), "thaw failed");
                done.error.get_or_insert(e);
                done.left.push(f);
            }
        }
    }
    done.left.reverse();
    done
}

/// Thaws one filesystem; whether this FITHAW thawed it (false: it was not frozen, or
/// its mount point is gone).
fn thaw_one(f: &Frozen) -> Result<bool, Error> {
    let opened;
    let dir = match &f.dir {
        Some(d) => d,
        None => match open_dir(&f.mountpoint) {
            Ok(d) => {
                opened = d;
                &opened
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::ENOENT | nix::libc::ENOTDIR)
                ) =>
            {
                tracing::warn!(mountpoint = %f.mountpoint.display(), "gone; nothing to thaw");
                return Ok(false);
            }
            Err(e) => return Err(Error::os(format!("thaw {}", f.mountpoint.display()), e)),
        },
    };
    match fithaw(dir) {
        Ok(()) => Ok(true),
        // EINVAL: not frozen (thawed by someone else, or never frozen): the goal holds.
        Err(Errno::EINVAL) => Ok(false),
        Err(e) => Err(e).context(|| format!("thaw {}", f.mountpoint.display())),
    }
}
