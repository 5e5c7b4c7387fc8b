//! A pseudo-terminal standing in for a serial line.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, PtyMaster};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// A new pty: its master, its slave in raw mode and the slave's path. The slave is
/// held open so that its settings stay until the agent (or client) opens it, and
/// nothing sent early is echoed or translated.
pub fn raw_pty() -> (PtyMaster, File, String) {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let path = ptsname_r(&master).unwrap();
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(&path)
        .unwrap();
    let mut t = tcgetattr(slave.as_fd()).unwrap();
    cfmakeraw(&mut t);
    tcsetattr(slave.as_fd(), SetArg::TCSANOW, &t).unwrap();
    (master, slave, path)
}
