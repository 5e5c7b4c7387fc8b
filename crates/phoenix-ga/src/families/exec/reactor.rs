//! The reactor: one thread that watches every child's pidfd and pipes with epoll,
//! reaps each child as it exits (its own pid, never `waitpid(-1)`, which would steal
//! the statuses other code waits for), reads output as it comes, writes queued input,
//! and keeps the deadlines (timeouts, the drain after an exit, forgetting).
//!
//! It sleeps in `epoll_wait` until a descriptor is ready or the next deadline, so it
//! costs nothing while children run quietly; it starts with the first child and ends
//! when the table is empty. Requests never read or write a pipe themselves: they copy
//! to and from the buffers under a process's lock, and (re)arm a pipe when they made
//! room (a read that frees a full window, a write that queues input), so the reactor
//! sees it at once.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::proc::{Kind, Life, Proc, NO_PIDFD_POLL};
use super::pump;
use super::table::FORGET_AFTER;
use super::Shared;
use crate::error::{Context, Error};

/// The token of the wake-up eventfd (process tokens are `id << 2 | kind`, and ids
/// never reach 2^62).
const WAKE: u64 = u64::MAX;

/// Bytes read from a pipe at a time.
const SCRATCH: usize = 64 << 10;

/// The reactor's epoll set and the eventfd that wakes it.
#[derive(Debug)]
pub struct Io {
    epoll: Epoll,
    wake: EventFd,
}

impl Io {
    /// A new epoll set with its eventfd, both close-on-exec.
    pub fn new() -> Result<Self, Error> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context(|| "epoll_create")?;
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .context(|| "eventfd")?;
        epoll
            .add(&wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))
            .context(|| "epoll_ctl")?;
        Ok(Self { epoll, wake })
    }

    /// Watches `fd` (level-triggered) for `flags`, reported with `token`.
    pub fn watch(&self, fd: BorrowedFd<'_>, token: u64, flags: EpollFlags) -> nix::Result<()> {
        self.epoll.add(fd, EpollEvent::new(flags, token))
    }

    /// Stops watching `fd`.
    pub fn unwatch(&self, fd: BorrowedFd<'_>) {
        if let Err(e) = self.epoll.delete(fd) {
            tracing::debug!(error = %e, "exec: epoll delete");
        }
    }

    /// Makes the reactor look at its deadlines again.
    pub fn wake(&self) {
        let _ = self.wake.write(1);
    }
}

/// Starts the reactor thread unless it runs.
pub fn ensure_running(shared: &Arc<Shared>) -> Result<(), Error> {
    if !shared.table.claim_reactor() {
        return Ok(());
    }
    let s = Arc::clone(shared);
    std::thread::Builder::new()
        .name("exec".into())
        .stack_size(256 << 10)
        .spawn(move || run(&s))
        .map(drop)
        .map_err(|e| {
            shared.table.release_reactor_now();
            Error::os("start the exec thread", e)
        })
}

fn run(shared: &Shared) {
    let Some(io) = shared.io() else {
        return;
    };
    let mut scratch = vec![0u8; SCRATCH];
    let mut events = [EpollEvent::empty(); 32];
    loop {
        let next = tick_all(shared, io, &mut scratch);
        if next.is_none() && shared.table.release_reactor() {
            return;
        }
        let timeout = match next {
            None => EpollTimeout::NONE,
            Some(at) => {
                // Rounded up, so that the deadline has passed when the wait ends.
                let ms = at
                    .saturating_duration_since(Instant::now())
                    .as_micros()
                    .div_ceil(1000);
                EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::MAX)
            }
        };
        let n = match io.epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(e) => {
                tracing::error!(error = %e, "exec: epoll_wait failed");
                std::thread::sleep(Duration::from_millis(100));
                0
            }
        };
        for event in &events[..n] {
            if event.data() == WAKE {
                let _ = io.wake.read();
                continue;
            }
            let (id, kind) = Kind::of(event.data());
            if let Some(p) = shared.table.by_id(id) {
                on_event(shared, io, &p, kind, &mut scratch);
            }
        }
    }
}

/// One descriptor of `p` is ready.
fn on_event(shared: &Shared, io: &Io, p: &Proc, kind: Kind, scratch: &mut [u8]) {
    let mut st = p.lock();
    let was_ended = st.ended().is_some();
    let changed = match kind {
        Kind::Exit => pump::exit(p, &mut st, io),
        Kind::Out | Kind::Err => pump::read_output(p, &mut st, kind, io, scratch),
        Kind::In => pump::write_input(p, &mut st, io),
    };
    let reaped = !was_ended && st.ended().is_some();
    drop(st);
    if changed {
        p.changed.notify_all();
    }
    if reaped {
        shared.table.reaped(p.id);
    }
}

/// Keeps every process's deadlines; the earliest one still ahead, `None` when the
/// table is empty.
fn tick_all(shared: &Shared, io: &Io, scratch: &mut [u8]) -> Option<Instant> {
    let mut next = None;
    for p in shared.table.all() {
        next = min(next, tick(shared, io, &p, scratch));
    }
    next
}

/// The deadlines of one process; its next one.
fn tick(shared: &Shared, io: &Io, p: &Proc, scratch: &mut [u8]) -> Option<Instant> {
    let now = Instant::now();
    let mut guard = p.lock();
    let st = &mut *guard;
    let was_ended = st.ended().is_some();
    let mut changed = pump::timeout(p, st, io, now);
    if st.pidfd.fd.is_none() && st.life != Life::Zombie && st.ended().is_none() {
        // No pidfd (before Linux 5.3): look for the exit.
        if st.kill_at.is_some() {
            if exited(p.pid) {
                st.life = Life::Zombie;
            }
        } else {
            changed |= pump::reap(p, st, io);
        }
    }
    if st.ended().is_some() && st.drained(now) {
        // The drain is over: a pipe a grandchild keeps open but silent is closed, one
        // that still has bytes (or waits for the host to read) is read on.
        for kind in [Kind::Out, Kind::Err] {
            changed |= pump::read_output(p, st, kind, io, scratch);
        }
    }
    let idle_until = st.touched + FORGET_AFTER;
    let mut forget = false;
    if now >= idle_until {
        if st.ended().is_some() {
            forget = true;
        } else if st.waits_for_host() {
            // The child waits on a full window that nobody has read for a long time:
            // let it go (it gets EPIPE or SIGPIPE on its next write).
            tracing::info!(pid = p.pid, "exec: host gone, closing the streams");
            for w in [&mut st.out_fd, &mut st.err_fd, &mut st.in_fd] {
                pump::close(io, w);
            }
            st.out.closed = true;
            st.err.closed = true;
            changed = true;
        }
    }
    let reaped = !was_ended && st.ended().is_some();
    // Only deadlines still ahead: one that passed and asked for nothing (a running
    // child nobody asked about, whose pipes still have room) would make the wait
    // return at once, for ever.
    let ahead = |t: Option<Instant>| t.filter(|&t| t > now);
    let mut next = match st.ended() {
        None => min(st.timeout_at, st.kill_at),
        Some(_) => None,
    };
    next = min(next, ahead(Some(idle_until)));
    if st.ended().is_some() && !st.drained(now) {
        next = min(next, st.drain_until);
    }
    if st.pidfd.fd.is_none() && st.ended().is_none() {
        next = min(next, Some(now + NO_PIDFD_POLL));
    }
    drop(guard);
    if changed {
        p.changed.notify_all();
    }
    if reaped {
        shared.table.reaped(p.id);
    }
    if forget {
        tracing::debug!(pid = p.pid, "exec: forgetting a process nobody asked about");
        shared.table.remove(p.id);
        return None;
    }
    next
}

fn min(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether child `pid` has exited, without reaping it.
fn exited(pid: i32) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(
        waitid(Id::Pid(Pid::from_raw(pid)), flags),
        Ok(WaitStatus::StillAlive)
    )
}
