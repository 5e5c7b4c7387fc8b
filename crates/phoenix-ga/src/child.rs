//! What every program the agent starts by fork and exec gets (the fsfreeze hook, a
//! `guest-exec` on a terminal): a session of its own, none of the agent's blocked or
//! ignored signals, none of its descriptors; and the pidfd the agent waits on it by.
//!
//! The agent blocks nearly every signal in every thread (signals.rs) and the standard
//! library leaves that mask in place for a `pre_exec` child, so [`setup`] undoes it.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Between fork and exec (a `pre_exec` closure): a new session (and with `terminal`,
/// standard input, a terminal, as its controlling terminal), an empty signal mask,
/// every signal at its default action (glibc's own two, 32 and 33, included), and
/// every descriptor past the three standard ones close-on-exec. Makes only
/// async-signal-safe system calls.
pub fn setup(terminal: bool) -> io::Result<()> {
    // SAFETY: each call is async-signal-safe and takes only integers or pointers to
    // values on this stack frame that outlive the call.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        if terminal && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
        // The kernel's call, which glibc's `signal` refuses for 32 and 33, with a
        // zeroed action (SIG_DFL, no flags, an empty mask) large enough for every
        // architecture's `struct sigaction`.
        let default = [0u64; 4];
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    default.as_ptr(),
                    0usize,
                    8usize,
                );
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            return Err(io::Error::other("pthread_sigmask"));
        }
        let marked = libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if marked != 0 {
            // Before Linux 5.11: one by one, up to the descriptor limit.
            let mut lim: libc::rlimit = std::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur.min(1 << 16)
            } else {
                1024
            };
            let max = i32::try_from(max).unwrap_or(1024);
            for fd in 3..max {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

/// A descriptor that becomes readable when process `pid` exits (pidfd_open(2), Linux
/// 5.3, close-on-exec); `None` where the kernel has none.
pub fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; no
    // memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
