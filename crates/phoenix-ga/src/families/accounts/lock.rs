//! The account files' lock: `/etc/.pwd.lock`, as lckpwdf(3) takes it.
//!
//! glibc's lckpwdf, which the shadow suite (passwd, chpasswd, useradd, vipw...) takes
//! before it touches /etc/passwd or /etc/shadow, is a write lock with fcntl(2) on the
//! whole of `/etc/.pwd.lock` (created 0600 if missing), waited for at most 15 seconds.
//! The agent takes the same lock as an open file description lock (F_OFD_SETLK): it
//! conflicts with lckpwdf's process-associated lock, and, unlike one, also with the
//! agent's own other threads. It waits as lckpwdf does, at most 15 seconds, polling
//! (its threads take no signals, which is how lckpwdf times out), and then fails with
//! ETIMEDOUT. The lock goes with the descriptor, when the guard is dropped.
//!
//! busybox's tools do not take this lock; they write `FILE+` and rename it, as the
//! agent does (under the lock, a `FILE+` left behind is stale and replaced).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use rustix::fs::{Mode, OFlags};

use crate::error::{Context, Error};

/// The lock file, in /etc.
pub const LOCK_FILE: &str = ".pwd.lock";

/// How long lckpwdf waits for the lock.
pub const WAIT: Duration = Duration::from_secs(15);

/// The first pause between attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// The lock, held until dropped.
#[derive(Debug)]
pub struct PwdLock {
    _fd: OwnedFd,
}

impl PwdLock {
    /// Takes the lock in the directory `etc` (shown as `etc_name` in messages),
    /// waiting at most `wait`; `waiting` is called once if it must wait.
    pub fn take(
        etc: BorrowedFd<'_>,
        etc_name: &str,
        wait: Duration,
        waiting: impl FnOnce(),
    ) -> Result<Self, Error> {
        let path = format!("{etc_name}/{LOCK_FILE}");
        let fd = rustix::fs::openat(
            etc,
            LOCK_FILE,
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )
        .map_err(std::io::Error::from)
        .context(|| format!("open {path}"))?;
        let whole_file = libc::flock {
            l_type: libc::c_short::try_from(libc::F_WRLCK).unwrap_or(1),
            l_whence: libc::c_short::try_from(libc::SEEK_SET).unwrap_or(0),
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        let deadline = Instant::now() + wait;
        let mut pause = FIRST_PAUSE;
        let mut waiting = Some(waiting);
        loop {
            match fcntl(fd.as_raw_fd(), FcntlArg::F_OFD_SETLK(&whole_file)) {
                Ok(_) => return Ok(PwdLock { _fd: fd }),
                Err(Errno::EAGAIN | Errno::EACCES) => {}
                Err(e) => return Err(e).context(|| format!("lock {path}")),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::errno(
                    Errno::ETIMEDOUT,
                    format!(
                        "{path} is held by another program changing the accounts; \
                         gave up after {} s",
                        wait.as_secs()
                    ),
                ));
            }
            if let Some(f) = waiting.take() {
                f();
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn dir(path: &std::path::Path) -> OwnedFd {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn excludes_another_holder_and_gives_up_in_time() {
        let tmp = tempfile::tempdir().unwrap();
        let etc = dir(tmp.path());
        let name = tmp.path().display().to_string();
        let held = PwdLock::take(etc.as_fd(), &name, WAIT, || panic!("no wait")).unwrap();
        let meta = std::fs::metadata(tmp.path().join(LOCK_FILE)).unwrap();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
        let mut waited = false;
        let e = PwdLock::take(etc.as_fd(), &name, Duration::from_millis(50), || waited = true)
            .unwrap_err();
        assert!(waited);
        assert_eq!(e.code(), libc::ETIMEDOUT);
        assert!(e.message().contains(".pwd.lock is held"), "{}", e.message());
        drop(held);
        PwdLock::take(etc.as_fd(), &name, WAIT, || panic!("no wait")).unwrap();
    }

    #[test]
    fn conflicts_with_lckpwdf_s_kind_of_lock() {
        // lckpwdf's process-associated fcntl lock; it conflicts with an OFD lock even
        // in the same process (fcntl(2)), so this test can hold it itself.
        let tmp = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(tmp.path().join(LOCK_FILE)).unwrap();
        let mut lock = libc::flock {
            l_type: libc::c_short::try_from(libc::F_WRLCK).unwrap(),
            l_whence: 0,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        fcntl(file.as_raw_fd(), FcntlArg::F_SETLK(&lock)).unwrap();
        let etc = dir(tmp.path());
        let name = tmp.path().display().to_string();
        let e = PwdLock::take(etc.as_fd(), &name, Duration::from_millis(30), || {}).unwrap_err();
        assert_eq!(e.code(), libc::ETIMEDOUT);
        lock.l_type = libc::c_short::try_from(libc::F_UNLCK).unwrap();
        fcntl(file.as_raw_fd(), FcntlArg::F_SETLK(&lock)).unwrap();
        PwdLock::take(etc.as_fd(), &name, WAIT, || panic!("no wait")).unwrap();
    }
}
