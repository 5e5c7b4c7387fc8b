//! `virtio-serial` and `isa-serial`: one character device, opened once for the
//! agent's whole life, whose host comes and goes.
//!
//! Facts about a virtio-serial port in the guest that shape this code:
//! * Only one process may hold it open, and closing it discards unread host data: open
//!   once, never reopen.
//! * While no host is connected, `read()` returns 0 at once and `poll()` reports
//!   POLLIN|POLLHUP at once, for as long as the host stays away, so a level-triggered
//!   wait would spin. Edge-triggered epoll wakes exactly once per host connect and
//!   disconnect (and once per arrival of data), so the agent sleeps in `epoll_wait`
//!   with no timeout: zero CPU while idle, and the kernel wakes it when the host opens
//!   the port again.
//! * After a host reconnects, its data can be readable ~10 ms before the guest sees the
//!   host as connected; in that window `write()` gets EAGAIN and poll shows HUP
//!   without OUT. A reply is never dropped because of HUP: the writer waits for
//!   writability instead.
//! * One `write()` to a port carries at most 32 KiB, so replies go out in a loop.
//! * A host that stays away, or stays connected and reads nothing, must not hold the
//!   workers whose replies wait for the port (and through the pool, every listener): a
//!   reply that moves no byte for the send timeout (`--send-timeout`) is dropped, and so
//!   is every later one while the port still takes nothing, until it takes bytes again.
//!
//! A serial tty (and a pty in tests) is put in raw mode and behaves the same way,
//! except that a pty whose master closed reads EIO, which counts as a disconnect.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::termios;

use super::{Connection, READ_BUF};
use crate::memory::IDLE_MS;
use crate::reply::{write_parts, Part, Sink};
use crate::sync::lock;

/// Most bytes one `write()` to a virtio port carries (virtio_console caps a write at
/// 32 KiB). Measured in a TCG guest: non-blocking 32 KiB writes move base64 text at
/// about 900 MiB/s for 0.05 s of guest CPU per 64 MiB, faster than splice(2) through a
/// pipe of 64 KiB or 1 MiB (one notification per splice, but a page copy), so the sink
/// writes plainly; the port is not what limits a transfer (docs/e2e.md).
pub const PORT_WRITE_MAX: usize = 32 << 10;

/// While a reply is waiting for the host, re-check writability this often (ms) in
/// case an edge was missed. Not used while idle.
const WRITE_RECHECK_MS: u16 = 1000;

/// Waits for `path` to exist (a port whose driver is still loading, a device plugged in
/// later): asleep in inotify on the nearest directory that exists, without polling.
pub fn wait_for(path: &Path) -> io::Result<()> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let mut said = false;
    loop {
        if path.exists() {
            return Ok(());
        }
        if !said {
            tracing::info!(path = %path.display(), "waiting for the port to appear");
            said = true;
        }
        let dir = path
            .ancestors()
            .skip(1)
            .find(|a| a.is_dir())
            .unwrap_or(Path::new("/"));
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC)?;
        let events =
            AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_ATTRIB;
        inotify.add_watch(dir, events)?;
        // Created between the check and the watch: the watch would wait for nothing.
        if path.exists() {
            return Ok(());
        }
        match inotify.read_events() {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Opens the device at `path` and serves whichever host is on the other side, through
/// the one [`Connection`] that `connect` makes for the port's whole life.
pub fn serve(
    path: &Path,
    send_timeout: Duration,
    connect: impl FnOnce(Arc<dyn Sink>) -> Connection,
) -> io::Result<()> {
    let port = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
    make_raw_if_tty(&port)?;
    let readable = edge_triggered(&port, EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP)?;
    let sink: Arc<dyn Sink> = Arc::new(PortSink {
        port: Mutex::new(port.try_clone()?),
        writable: edge_triggered(&port, EpollFlags::EPOLLOUT)?,
        send_timeout,
        stalled: AtomicBool::new(false),
    });
    tracing::info!(path = %path.display(), "port open");

    let mut conn = connect(sink);
    let mut buf = vec![0u8; READ_BUF];
    let mut connected = true;
    let mut reader = &port;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => host_gone(&mut connected, &mut conn, &readable)?,
            Ok(n) => {
                if !connected {
                    tracing::info!("host connected");
                    connected = true;
                }
                conn.feed(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // After a transfer chunk the framer keeps its buffer for the next one;
                // a host quiet for memory::IDLE gets it back (one wake-up).
                if !conn.holds_memory() {
                    wait(&readable, EpollTimeout::NONE)?;
                } else if wait(&readable, EpollTimeout::from(IDLE_MS))? == 0 {
                    conn.release();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A pty whose master is closed reads EIO: the host is gone.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                host_gone(&mut connected, &mut conn, &readable)?
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("read {}: {e}", path.display()),
                ))
            }
        }
    }
}

/// The host closed its end: forget its partial line and sleep until it is back.
fn host_gone(connected: &mut bool, conn: &mut Connection, readable: &Epoll) -> io::Result<()> {
    if *connected {
        tracing::info!("host disconnected; waiting for it");
        *connected = false;
        conn.reset();
    }
    wait(readable, EpollTimeout::NONE).map(drop)
}

/// An epoll instance watching `file` edge-triggered for `flags`.
fn edge_triggered(file: &File, flags: EpollFlags) -> io::Result<Epoll> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(
        file.as_fd(),
        EpollEvent::new(flags | EpollFlags::EPOLLET, 0),
    )?;
    Ok(epoll)
}

/// Waits for an event; the number of events (0 on a timeout or a signal).
fn wait(epoll: &Epoll, timeout: EpollTimeout) -> io::Result<usize> {
    let mut events = [EpollEvent::empty(); 1];
    match epoll.wait(&mut events, timeout) {
        Ok(n) => Ok(n),
        Err(Errno::EINTR) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// A tty would echo and edit lines; the protocol needs every byte as sent.
fn make_raw_if_tty(port: &File) -> io::Result<()> {
    let mut attrs = match termios::tcgetattr(port.as_fd()) {
        Ok(attrs) => attrs,
        Err(Errno::ENOTTY) | Err(Errno::EINVAL) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    termios::cfmakeraw(&mut attrs);
    termios::tcsetattr(port.as_fd(), termios::SetArg::TCSANOW, &attrs)?;
    Ok(())
}

/// The writing side of the port, shared by every reply.
struct PortSink {
    port: Mutex<File>,
    writable: Epoll,
    /// How long a reply may move no byte before it is dropped.
    send_timeout: Duration,
    /// A reply was dropped for the send timeout, and the port has taken nothing since.
    stalled: AtomicBool,
}

impl Sink for PortSink {
    fn send(&self, reply: &[u8]) {
        self.send_parts(&[Part::Text(reply)]);
    }

    fn send_parts(&self, parts: &[Part<'_>]) {
        let mut port = lock(&self.port);
        if self.stalled.load(Ordering::Relaxed) {
            if !writable_now(&port) {
                tracing::debug!("the port still takes nothing: reply dropped");
                return;
            }
            self.stalled.store(false, Ordering::Relaxed);
        }
        write_parts(parts, |piece| write_part(&mut port, piece, self));
    }
}

/// Whether the port would take bytes now.
fn writable_now(port: &File) -> bool {
    let mut fds = [PollFd::new(port.as_fd(), PollFlags::POLLOUT)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLOUT))
}

/// Writes all of `part` to the port in chunks it accepts; false when the write failed
/// or moved no byte for the send timeout (the rest of the reply is dropped).
fn write_part(port: &mut File, part: &[u8], sink: &PortSink) -> bool {
    let mut rest = part;
    let mut stuck_since: Option<Instant> = None;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(PORT_WRITE_MAX)];
        let progressed = match port.write(chunk) {
            Ok(n) if n > 0 => {
                rest = &rest[n..];
                true
            }
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, dropped = rest.len(), "port write failed, reply dropped");
                return false;
            }
        };
        if progressed {
            stuck_since = None;
            continue;
        }
        let since = *stuck_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= sink.send_timeout {
            tracing::warn!(
                dropped = rest.len(),
                "the port took nothing for the send timeout (no host, or one that \
                 does not read): reply dropped"
            );
            sink.stalled.store(true, Ordering::Relaxed);
            return false;
        }
        sink.wait_writable();
    }
    true
}

impl PortSink {
    /// Sleeps until the port takes bytes again (the host reads, or comes back).
    fn wait_writable(&self) {
        if let Err(e) = wait(&self.writable, EpollTimeout::from(WRITE_RECHECK_MS)) {
            tracing::warn!(error = %e, "epoll_wait on the port failed");
            std::thread::sleep(std::time::Duration::from_millis(u64::from(
                WRITE_RECHECK_MS,
            )));
        }
    }
}
