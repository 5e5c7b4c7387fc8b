//! `unix-listen`: the agent listens on a UNIX socket; each client gets its own stream.
//!
//! A client may disconnect at any time, even in the middle of a reply: its replies
//! are then dropped, and the next client starts on a fresh connection, so no stale
//! byte ever reaches it. A client that only half-closes (shuts down its writing side
//! after its requests, as `socat` does) still gets every reply.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{setsockopt, sockopt};

use super::{Connection, READ_BUF};
use crate::memory::IDLE_MS;
use crate::reply::{write_parts, Part, Sink};
use crate::sync::lock;

/// Clients served at once; more are turned away until one leaves.
const MAX_CLIENTS: usize = 64;

/// Socket send buffer asked for each client.
const SEND_BUFFER: usize = 4 << 20;

/// A client that takes no bytes of a reply for this long is considered gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// Serves the clients of `listener` (bound to `path`) until the process exits, each
/// through the [`Connection`] that `connect` makes for it.
pub fn serve(
    listener: UnixListener,
    path: &Path,
    connect: impl Fn(Arc<dyn Sink>) -> Connection + Send + Sync + 'static,
) -> io::Result<()> {
    let connect = Arc::new(connect);
    tracing::info!(path = %path.display(), "listening");
    let clients = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
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
        let (connect, clients) = (Arc::clone(&connect), Arc::clone(&clients));
        let spawned = thread::Builder::new()
            .name("client".into())
            .stack_size(256 << 10)
            .spawn(move || {
                serve_client(stream, &*connect);
                clients.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a client thread");
        }
    }
}

/// Binds the socket, replacing a stale one left by an agent that died, but never a
/// live agent's socket or a file that is not a socket. Mode 0600: root's only.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        match UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another agent is listening on {}", path.display()),
                ))
            }
            Err(_) => std::fs::remove_file(path)?,
        }
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("bind {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn serve_client(stream: UnixStream, connect: &dyn Fn(Arc<dyn Sink>) -> Connection) {
    tracing::debug!("client connected");
    // One descriptor for both directions (no dup): a client that connects while the
    // agent is out of descriptors is still served once accept(2) succeeded.
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    // A 4 MiB transfer chunk then crosses in a few large copies rather than dozens of
    // wake-ups at the default ~200 KiB (kernel memory, used only while a client lags).
    // Root may exceed net.core.wmem_max; anyone else keeps the default.
    let _ = setsockopt(&stream, sockopt::SndBufForce, &SEND_BUFFER);
    let stream = Arc::new(stream);
    let writer = Arc::new(StreamSink {
        stream: Arc::clone(&stream),
        lock: Mutex::new(()),
        gone: AtomicBool::new(false),
    });
    let mut conn = connect(writer);
    let mut buf = vec![0u8; READ_BUF];
    let mut reader = &*stream;
    loop {
        // After a transfer chunk the framer keeps its buffer for the next one; a client
        // quiet for a moment gets it back (one wake-up).
        if conn.holds_memory() && !readable_within(&stream, IDLE_MS) {
            conn.release();
        }
        match reader.read(&mut buf) {
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

/// Whether `stream` has something to read (or is closed) within `ms` milliseconds.
fn readable_within(stream: &UnixStream, ms: u16) -> bool {
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
    !matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(0))
}

/// The writing half of a client connection.
struct StreamSink {
    stream: Arc<UnixStream>,
    /// Held for a whole reply, so replies never interleave.
    lock: Mutex<()>,
    gone: AtomicBool,
}

impl Sink for StreamSink {
    fn send(&self, reply: &[u8]) {
        self.send_parts(&[Part::Text(reply)]);
    }

    fn send_parts(&self, parts: &[Part<'_>]) {
        if self.gone.load(Ordering::Relaxed) {
            return;
        }
        let _whole_reply = lock(&self.lock);
        let mut stream = &*self.stream;
        write_parts(parts, |piece| match stream.write_all(piece) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "client gone, dropping its replies");
                self.gone.store(true, Ordering::Relaxed);
                let _ = stream.shutdown(std::net::Shutdown::Both);
                false
            }
        });
    }
}
