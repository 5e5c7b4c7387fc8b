//! The reactor's steps on one process, each under its lock and none blocking: read
//! the output pipes into their streams, write the input queue, reap the child, and the
//! timeout's signals. Each returns whether something a request may wait for changed.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::epoll::EpollFlags;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::output::Output;
use super::proc::{Ended, Kind, Life, Mode, Proc, State, Watched, DRAIN, KILL_GRACE};
use super::reactor::Io;

/// Bytes read from one pipe per turn, so that one busy child cannot starve the others.
const TURN: usize = 1 << 20;

/// Starts watching `w` for `flags` if it is open and not watched yet.
pub fn arm(io: &Io, w: &mut Watched, token: u64, flags: EpollFlags) {
    if let (Some(fd), false) = (w.fd.as_ref(), w.armed) {
        match io.watch(fd.as_fd(), token, flags) {
            Ok(()) => w.armed = true,
            Err(e) => tracing::warn!(error = %e, "exec: cannot watch a pipe"),
        }
    }
}

/// Stops watching `w` (its descriptor stays open).
pub fn disarm(io: &Io, w: &mut Watched) {
    if let (Some(fd), true) = (w.fd.as_ref(), w.armed) {
        io.unwatch(fd.as_fd());
    }
    w.armed = false;
}

/// Stops watching `w` and closes it.
pub fn close(io: &Io, w: &mut Watched) {
    disarm(io, w);
    w.fd = None;
}

/// Reads what the pipe of `kind` (Out or Err) holds into its stream, as far as the
/// stream has room; closes the pipe at end of file, or once it is empty after the
/// drain. A full window stops the watching: the child then waits on its pipe until
/// the host reads.
pub fn read_output(p: &Proc, st: &mut State, kind: Kind, io: &Io, scratch: &mut [u8]) -> bool {
    let after_drain = st.ended().is_some() && st.drained(Instant::now());
    let (w, out) = match kind {
        Kind::Out => (&mut st.out_fd, &mut st.out),
        Kind::Err => (&mut st.err_fd, &mut st.err),
        _ => return false,
    };
    let Some(raw) = w.fd.as_ref().map(AsRawFd::as_raw_fd) else {
        return false;
    };
    let mut changed = false;
    let mut total = 0;
    loop {
        let room = out.room();
        if room == 0 {
            disarm(io, w);
            return changed;
        }
        if total >= TURN {
            if after_drain && p.mode == Mode::Capture {
                // A grandchild writing without end: the capture ends here, and says
                // it was cut.
                out.mark_truncated();
                end(io, w, out);
                return true;
            }
            arm(io, w, kind.token(p.id), EpollFlags::EPOLLIN);
            return changed;
        }
        let n = room.min(scratch.len());
        match nix::unistd::read(raw, &mut scratch[..n]) {
            // A terminal's master reads EIO once no process holds its slave.
            Ok(0) | Err(Errno::EIO) => {
                end(io, w, out);
                return true;
            }
            Ok(n) => {
                out.push(&scratch[..n]);
                total += n;
                changed = true;
            }
            Err(Errno::EAGAIN) if after_drain => {
                end(io, w, out);
                return true;
            }
            Err(Errno::EAGAIN) => {
                arm(io, w, kind.token(p.id), EpollFlags::EPOLLIN);
                return changed;
            }
            Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!(pid = p.pid, error = %e, "exec: reading output failed");
                end(io, w, out);
                return true;
            }
        }
    }
}

fn end(io: &Io, w: &mut Watched, out: &mut Output) {
    close(io, w);
    out.closed = true;
}

/// Writes the input queue to the pipe as far as it takes; closes the pipe once the
/// queue is written and the host asked to close, or when the child closed its end.
pub fn write_input(p: &Proc, st: &mut State, io: &Io) -> bool {
    let w = &mut st.in_fd;
    let Some(fd) = w.fd.as_ref() else {
        return false;
    };
    let mut changed = false;
    while !st.input.is_empty() {
        match nix::unistd::write(fd.as_fd(), st.input.front()) {
            Ok(n) => {
                st.input.consume(n);
                changed = true;
            }
            Err(Errno::EAGAIN) => {
                arm(io, w, Kind::In.token(p.id), EpollFlags::EPOLLOUT);
                return changed;
            }
            Err(Errno::EINTR) => {}
            Err(e) => {
                // EPIPE: nobody reads any more; EIO: the terminal is gone.
                tracing::debug!(pid = p.pid, error = %e, "exec: standard input closed");
                st.input.break_off();
                close(io, w);
                return true;
            }
        }
    }
    if st.input.close_after && p.mode != Mode::Pty {
        close(io, w);
    } else {
        // Level-triggered: a writable pipe with nothing to write would wake for ever.
        disarm(io, w);
    }
    changed
}

/// The child exited (its pidfd is readable, or `waitpid` is to be tried): reaps it,
/// unless a timeout's grace is running, which keeps it a zombie until the SIGKILL.
pub fn exit(p: &Proc, st: &mut State, io: &Io) -> bool {
    if st.kill_at.is_some_and(|k| Instant::now() < k) {
        st.life = Life::Zombie;
        disarm(io, &mut st.pidfd);
        return false;
    }
    reap(p, st, io)
}

/// `waitpid(pid, WNOHANG)`: records how the child ended, if it did.
pub fn reap(p: &Proc, st: &mut State, io: &Io) -> bool {
    let ended = match wait_nohang(p.pid) {
        Ok(Some(ended)) => ended,
        Ok(None) => return false,
        Err(e) => {
            // ECHILD: someone else reaped our child (a bug elsewhere); its status is
            // lost, but the entry must not wait for ever.
            tracing::error!(pid = p.pid, error = %e, "exec: waitpid failed");
            Ended::Signal(0)
        }
    };
    tracing::debug!(pid = p.pid, ?ended, "exec: child reaped");
    st.life = Life::Ended(ended);
    // Its timeout is moot now.
    st.timeout_at = None;
    st.kill_at = None;
    close(io, &mut st.pidfd);
    let now = Instant::now();
    st.drain_until = Some(now + DRAIN);
    st.touched = now;
    true
}

/// `waitpid(pid, WNOHANG)` read raw: nix's decoding fails (EINVAL, after the kernel
/// reaped the child) for a death by a real-time signal, which it cannot name.
fn wait_nohang(pid: i32) -> Result<Option<Ended>, Errno> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a live c_int the kernel writes; the pid is our child's.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        match rc {
            0 => return Ok(None),
            r if r > 0 && libc::WIFEXITED(status) => {
                return Ok(Some(Ended::Code(libc::WEXITSTATUS(status))))
            }
            r if r > 0 && libc::WIFSIGNALED(status) => {
                return Ok(Some(Ended::Signal(libc::WTERMSIG(status))))
            }
            // Stopped or continued: not an end (and not asked for).
            r if r > 0 => return Ok(None),
            _ => match Errno::last() {
                Errno::EINTR => {}
                e => return Err(e),
            },
        }
    }
}

/// The deadlines of the timeout: SIGTERM to the group when it is due, SIGKILL a grace
/// later (and the reaping a zombie waited for). Returns whether the process changed.
pub fn timeout(p: &Proc, st: &mut State, io: &Io, now: Instant) -> bool {
    if st.ended().is_some() {
        return false;
    }
    if let Some(kill_at) = st.kill_at {
        if now < kill_at {
            return false;
        }
        st.kill_at = None;
        signal_group(p.pid, Signal::SIGKILL);
        if st.life == Life::Zombie {
            return reap(p, st, io);
        }
        return false;
    }
    if st.timeout_at.is_some_and(|t| now >= t) {
        st.timeout_at = None;
        tracing::info!(pid = p.pid, "exec: timeout, terminating the process group");
        signal_group(p.pid, Signal::SIGTERM);
        st.kill_at = Some(now + KILL_GRACE);
    }
    false
}

/// Signals the process group `pgid` (the child's pid: it leads its own session). Only
/// called while the child is not reaped, so the id is still its group's.
fn signal_group(pgid: i32, sig: Signal) {
    if let Err(e) = killpg(Pid::from_raw(pgid), sig) {
        tracing::debug!(pgid, ?sig, error = %e, "exec: killpg");
    }
}
