//! The two ioctls of a freeze, on a directory descriptor of the filesystem.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::libc::c_int;

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
