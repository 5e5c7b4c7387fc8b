//! What the stream-socket listeners share ([`unix`](super::unix), [`vsock`](super::vsock)):
//! an accept loop that gives each client a thread and a [`Connection`] of its own, and
//! the writing half of a client ([`StreamSink`]).
//!
//! A client may disconnect at any time, even in the middle of a reply: its replies
//! are then dropped, and the next client starts on a fresh connection, so no stale
//! byte ever reaches it. A client that only half-closes (shuts down its writing side
//! after its requests, as `socat` does) still gets every reply. A client that stops
//! reading costs its own connection only: a write that moves no byte for the send
//! timeout (`--send-timeout`) drops the client, so no worker stays blocked on it.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{setsockopt, shutdown, sockopt, Shutdown};
use nix::sys::time::{TimeVal, TimeValLike};

use super::{Connection, READ_BUF};
use crate::memory::IDLE_MS;
use crate::reply::{write_parts, Part, Sink};
use crate::sync::lock;

/// Clients served at once by one listener; more are turned away until one leaves.
pub const MAX_CLIENTS: usize = 64;

/// A connected stream socket: read and written through shared references, so the
/// reader thread and the replying workers use one descriptor (no dup: a client that
/// connects while the agent is out of descriptors is still served once accept(2)
/// succeeded).
pub trait Socket: AsFd + Send + Sync + 'static {
    /// Reads what the client sent.
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes all of `bytes` (or fails, a send timeout included).
    fn write_all_of(&self, bytes: &[u8]) -> io::Result<()>;
}

impl<S> Socket for S
where
    S: AsFd + Send + Sync + 'static,
    for<'a> &'a S: Read + Write,
{
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut reader = self;
        reader.read(buf)
    }

    fn write_all_of(&self, bytes: &[u8]) -> io::Result<()> {
        let mut writer = self;
        writer.write_all(bytes)
    }
}

/// Serves the clients that `accept` returns until the process exits, each on a thread
/// of its own through the [`Connection`] that `connect` makes for it. `accept` blocks;
/// its errors (EMFILE and friends) are logged and the loop goes on.
pub fn serve<S: Socket>(
    mut accept: impl FnMut() -> io::Result<S>,
    send_timeout: Duration,
    connect: impl Fn(Arc<dyn Sink>) -> Connection + Send + Sync + 'static,
) -> io::Result<()> {
    let connect = Arc::new(connect);
    let clients = Arc::new(AtomicUsize::new(0));
    loop {
        let socket = match accept() {
            Ok(socket) => socket,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The client left before it was accepted.
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            Err(e) => {
                // EMFILE and friends: the agent goes on; the client is refused.
                tracing::warn!(error = %e, "accept failed");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("too many clients, connection refused");
            continue;
        }
        let (connect, count) = (Arc::clone(&connect), Arc::clone(&clients));
        let spawned = thread::Builder::new()
            .name("client".into())
            .stack_size(256 << 10)
            .spawn(move || {
                serve_client(socket, send_timeout, &*connect);
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            // The closure that would have counted the client out was dropped unrun.
            clients.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(error = %e, "cannot start a client thread");
        }
    }
}

fn serve_client<S: Socket>(
    socket: S,
    send_timeout: Duration,
    connect: &dyn Fn(Arc<dyn Sink>) -> Connection,
) {
    tracing::debug!("client connected");
    // A write that moves no byte for this long fails (EAGAIN): the client is dropped.
    let ms = i64::try_from(send_timeout.as_millis()).unwrap_or(i64::MAX / 1000);
    let _ = setsockopt(&socket, sockopt::SendTimeout, &TimeVal::milliseconds(ms));
    let socket = Arc::new(socket);
    let sink = Arc::new(StreamSink {
        socket: Arc::clone(&socket),
        lock: Mutex::new(()),
        gone: AtomicBool::new(false),
    });
    let mut conn = connect(sink);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        // After a transfer chunk the framer keeps its buffer for the next one; a client
        // quiet for a moment gets it back (one wake-up).
        if conn.holds_memory() && !readable_within(&*socket, IDLE_MS) {
            conn.release();
        }
        match socket.read_some(&mut buf) {
            Ok(0) => break,
            Ok(n) => conn.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!(error = %e, "client read failed");
                break;
            }
        }
    }
    // Replies still being computed keep the sink (and the socket) alive until sent.
    tracing::debug!("client finished sending");
}

/// Whether `socket` has something to read (or is closed) within `ms` milliseconds.
fn readable_within(socket: &impl AsFd, ms: u16) -> bool {
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
    !matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(0))
}

/// The writing half of a client connection.
struct StreamSink<S> {
    socket: Arc<S>,
    /// Held for a whole reply, so replies never interleave.
    lock: Mutex<()>,
    gone: AtomicBool,
}

impl<S: Socket> Sink for StreamSink<S> {
    fn send(&self, reply: &[u8]) {
        self.send_parts(&[Part::Text(reply)]);
    }

    fn send_parts(&self, parts: &[Part<'_>]) {
        if self.gone.load(Ordering::Relaxed) {
            return;
        }
        let _whole_reply = lock(&self.lock);
        write_parts(parts, |piece| match self.socket.write_all_of(piece) {
            Ok(()) => true,
            Err(e) => {
                if e.kind() == io::ErrorKind::WouldBlock {
                    tracing::warn!("a client read nothing for the send timeout: dropped");
                } else {
                    tracing::debug!(error = %e, "client gone, dropping its replies");
                }
                self.gone.store(true, Ordering::Relaxed);
                // The reader wakes (reads 0) and the client's thread ends.
                let _ = shutdown(self.socket.as_fd().as_raw_fd(), Shutdown::Both);
                false
            }
        });
    }
}
