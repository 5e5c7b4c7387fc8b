//! `unix-listen`: the agent listens on a UNIX socket; each client gets its own stream
//! (served as [`stream`](super::stream) says).

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};

use super::{stream, Connection};
use crate::reply::Sink;

/// Socket send buffer asked for each client.
const SEND_BUFFER: usize = 4 << 20;

/// Serves the clients of `listener` (bound to `path`) until the process exits, each
/// through the [`Connection`] that `connect` makes for it.
pub fn serve(
    listener: UnixListener,
    path: &Path,
    send_timeout: Duration,
    connect: impl Fn(Arc<dyn Sink>) -> Connection + Send + Sync + 'static,
) -> io::Result<()> {
    tracing::info!(path = %path.display(), "listening");
    let accept = || {
        let (client, _) = listener.accept()?;
        // A 4 MiB transfer chunk then crosses in a few large copies rather than dozens
        // of wake-ups at the default ~200 KiB (kernel memory, used only while a client
        // lags). Root may exceed net.core.wmem_max; anyone else keeps the default.
        let _ = setsockopt(&client, sockopt::SndBufForce, &SEND_BUFFER);
        Ok(client)
    };
    stream::serve(accept, send_timeout, connect)
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
