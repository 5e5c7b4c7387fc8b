//! The QEMU process: spawned by a thread that lives as long as QEMU does, so that
//! `PR_SET_PDEATHSIG` (which fires when the spawning *thread* ends) kills QEMU exactly
//! when the test process dies, whichever test thread booted the guest.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A running (or finished) QEMU.
pub(crate) struct Qemu {
    pid: Pid,
    exit: Arc<(Mutex<Option<ExitStatus>>, Condvar)>,
}

impl Qemu {
    /// Spawns `cmd` with its stdout and stderr appended to `log`.
    pub(crate) fn spawn(mut cmd: Command, log: File) -> io::Result<Self> {
        let err_log = log.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(err_log);
        // SAFETY: the closure runs in the forked child before exec and only calls
        // prctl(2), which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)
            });
        }
        let exit = Arc::new((Mutex::new(None), Condvar::new()));
        let done = Arc::clone(&exit);
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("qemu-waiter".into())
            .spawn(move || {
                let mut child = match cmd.spawn() {
                    Ok(child) => child,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(child.id()));
                let status = child.wait();
                let (lock, cv) = &*done;
                *lock.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(status.unwrap_or_else(|_| ExitStatus::default()));
                cv.notify_all();
            })?;
        let pid = rx
            .recv()
            .map_err(|_| io::Error::other("qemu-waiter thread died"))??;
        Ok(Self {
            pid: Pid::from_raw(i32::try_from(pid).map_err(io::Error::other)?),
            exit,
        })
    }

    /// QEMU's process id.
    pub(crate) fn pid(&self) -> u32 {
        u32::try_from(self.pid.as_raw()).expect("a process id is positive")
    }

    /// Whether QEMU still runs.
    pub(crate) fn alive(&self) -> bool {
        self.exit
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Waits up to `timeout` for QEMU to exit; its status if it did.
    pub(crate) fn wait(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.exit;
        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
        while st.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = cv
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *st
    }

    /// SIGKILLs QEMU (if it still runs) and waits for it to be reaped.
    pub(crate) fn kill(&self) {
        if self.alive() {
            let _ = kill(self.pid, Signal::SIGKILL);
            self.wait(Duration::from_secs(10));
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}
