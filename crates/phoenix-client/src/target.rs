//! Where an agent is: a path (a QEMU chardev socket, an agent's unix-listen socket, a
//! serial device), an AF_VSOCK address (`vsock:CID:PORT`), or a port behind a hybrid
//! vsock socket (`hvsock:/path/to/socket:PORT`).
//!
//! A hybrid vsock socket is the UNIX socket through which Firecracker, Cloud Hypervisor
//! and rust-vmm's vhost-device-vsock let the host reach a guest's vsock ports: the host
//! connects, writes `CONNECT PORT\n`, reads `OK ...\n` (the rest of the line is the
//! VMM's: vhost-device-vsock says the port, Firecracker a host port), and the stream
//! to the guest's port follows. When nothing listens on that port the VMM closes the
//! socket instead. Facts about vhost-device-vsock 0.3 that shape this code:
//! * bytes sent in the same write as the CONNECT line are lost: nothing is sent before
//!   the OK;
//! * closing the socket between CONNECT and OK makes it fail every later connection to
//!   that guest (it panics writing the OK): a handshake that times out leaves its
//!   socket to a background thread, which waits for the answer before closing;
//! * a plain close() while data is unread leaves the guest's end open for ever: a
//!   hybrid stream is closed with shutdown(SHUT_WR), read to its end, then closed
//!   ([`Stream::close`]).

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, VsockAddr};

use crate::stream::{Stream, VsockStream};

/// How an agent is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A UNIX socket (a QEMU chardev, an agent's unix-listen socket) or a device.
    Path(PathBuf),
    /// A guest's vsock port, through the host kernel's vsock (`vsock:CID:PORT`; QEMU's
    /// vhost-vsock-pci, libvirt's `<vsock>`).
    Vsock {
        /// The guest's CID.
        cid: u32,
        /// The agent's port.
        port: u32,
    },
    /// A guest's vsock port behind a VMM's hybrid vsock socket (`hvsock:PATH:PORT`;
    /// Firecracker, Cloud Hypervisor, vhost-device-vsock).
    Hybrid {
        /// The VMM's UNIX socket.
        path: PathBuf,
        /// The agent's port.
        port: u32,
    },
}

impl Target {
    /// Reads `vsock:CID:PORT`, `hvsock:PATH:PORT`, or else a path. A path that starts
    /// with one of those prefixes is spelled `./vsock:...`.
    pub fn parse(text: impl AsRef<OsStr>) -> Result<Self, String> {
        let text = text.as_ref();
        let bytes = text.as_bytes();
        if let Some(rest) = bytes.strip_prefix(b"vsock:") {
            let rest = std::str::from_utf8(rest).map_err(|_| bad(text, VSOCK))?;
            let (cid, port) = rest.split_once(':').ok_or_else(|| bad(text, VSOCK))?;
            let cid = cid.parse().map_err(|_| bad(text, VSOCK))?;
            let port = port.parse().map_err(|_| bad(text, VSOCK))?;
            return Ok(Target::Vsock { cid, port });
        }
        if let Some(rest) = bytes.strip_prefix(b"hvsock:") {
            // The path may hold colons: the port is after the last.
            let at = rest.iter().rposition(|&b| b == b':');
            let (path, port) = at
                .map(|i| (&rest[..i], &rest[i + 1..]))
                .filter(|(path, _)| !path.is_empty())
                .ok_or_else(|| bad(text, HVSOCK))?;
            let port = std::str::from_utf8(port)
                .ok()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad(text, HVSOCK))?;
            let path = PathBuf::from(OsStr::from_bytes(path));
            return Ok(Target::Hybrid { path, port });
        }
        Ok(Target::Path(PathBuf::from(text)))
    }

    /// Opens the stream to the agent; `timeout` bounds a vsock connection and the
    /// hybrid socket's handshake.
    pub(crate) fn open(&self, timeout: Duration) -> io::Result<Stream> {
        match self {
            Target::Path(path) => Stream::open(path),
            Target::Vsock { cid, port } => vsock_connect(*cid, *port, timeout).map(Stream::Vsock),
            Target::Hybrid { path, port } => {
                hybrid_connect(path, *port, timeout).map(Stream::Hybrid)
            }
        }
    }
}

const VSOCK: &str = "vsock:CID:PORT";
const HVSOCK: &str = "hvsock:PATH:PORT";

fn bad(text: &OsStr, form: &str) -> String {
    format!("{}: expected {form}", text.to_string_lossy())
}

impl fmt::Display for Target {
    /// The form [`Target::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Path(path) => write!(f, "{}", path.display()),
            Target::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Target::Hybrid { path, port } => write!(f, "hvsock:{}:{port}", path.display()),
        }
    }
}

impl From<&Path> for Target {
    /// [`Target::parse`], where a string that is not a valid vsock address is a path.
    fn from(path: &Path) -> Self {
        Target::parse(path).unwrap_or_else(|_| Target::Path(path.to_path_buf()))
    }
}

/// What went wrong on the way to the agent, in words, with the system's error below.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct Why {
    what: String,
    #[source]
    source: Option<io::Error>,
}

fn why(kind: io::ErrorKind, what: impl Into<String>, source: Option<io::Error>) -> io::Error {
    io::Error::new(
        kind,
        Why {
            what: what.into(),
            source,
        },
    )
}

/// Connects to `cid:port` through the host kernel's vsock, waiting at most `timeout`.
fn vsock_connect(cid: u32, port: u32, timeout: Duration) -> io::Result<VsockStream> {
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| {
        let what = "this host has no vsock (load the vhost_vsock module)";
        why(io::ErrorKind::Unsupported, what, Some(e.into()))
    })?;
    set_connect_timeout(&fd, timeout);
    match connect(fd.as_raw_fd(), &VsockAddr::new(cid, port)) {
        Ok(()) => Ok(VsockStream::new(fd)),
        Err(e) => {
            let what = match e {
                Errno::ECONNRESET | Errno::ECONNREFUSED => {
                    format!("nothing listens on vsock port {port} of guest {cid}")
                }
                Errno::ETIMEDOUT => format!("guest {cid} did not answer within {timeout:?}"),
                Errno::ENODEV | Errno::EHOSTUNREACH | Errno::ENETUNREACH => {
                    format!("no guest with CID {cid} here (or no vhost_vsock on this host)")
                }
                _ => format!("vsock connection to guest {cid}, port {port}"),
            };
            Err(why(io::Error::from(e).kind(), what, Some(e.into())))
        }
    }
}

/// `SO_VM_SOCKETS_CONNECT_TIMEOUT` (the kernel's default is 2 s).
fn set_connect_timeout(fd: &OwnedFd, timeout: Duration) {
    const SO_VM_SOCKETS_CONNECT_TIMEOUT: libc::c_int = 6;
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::timeval>()).unwrap_or(16);
    // SAFETY: `fd` is an open vsock socket; `tv` is a timeval that outlives the call and
    // `len` its size, as the kernel expects for this option.
    let _ = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::AF_VSOCK,
            SO_VM_SOCKETS_CONNECT_TIMEOUT,
            std::ptr::from_ref(&tv).cast(),
            len,
        )
    };
}

/// Longest answer line to CONNECT that is read.
const MAX_ANSWER: usize = 256;

/// How long a socket whose handshake timed out is kept for the VMM's answer.
const ORPHAN_WAIT: Duration = Duration::from_secs(300);

/// Connects through the hybrid vsock socket at `path` to the guest's `port`.
fn hybrid_connect(path: &Path, port: u32, timeout: Duration) -> io::Result<UnixStream> {
    let mut sock = UnixStream::connect(path).map_err(|e| {
        let what = format!("no VMM's vsock socket at {}", path.display());
        why(e.kind(), what, Some(e))
    })?;
    sock.write_all(format!("CONNECT {port}\n").as_bytes())?;
    let deadline = Instant::now().checked_add(timeout);
    match read_answer(&sock, deadline) {
        Ok(Some(line)) if line == b"OK" || line.starts_with(b"OK ") => Ok(sock),
        Ok(Some(line)) => Err(why(
            io::ErrorKind::InvalidData,
            format!(
                "the VMM answered CONNECT {port} with {:?}",
                String::from_utf8_lossy(&line)
            ),
            None,
        )),
        Ok(None) => Err(why(
            io::ErrorKind::ConnectionRefused,
            format!("nothing listens on vsock port {port} (the VMM closed the connection)"),
            None,
        )),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            keep_until_answered(sock);
            Err(why(
                io::ErrorKind::TimedOut,
                format!("no answer to CONNECT {port} within {timeout:?}"),
                None,
            ))
        }
        Err(e) => Err(e),
    }
}

/// Reads the VMM's answer line, a byte at a time: what follows it is the agent's. `None`
/// when the VMM closed the socket first.
fn read_answer(mut sock: &UnixStream, deadline: Option<Instant>) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        wait_readable(sock, deadline)?;
        let mut byte = [0u8];
        match sock.read(&mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) if byte[0] == b'\n' => return Ok(Some(line)),
            Ok(_) if line.len() < MAX_ANSWER => line.push(byte[0]),
            Ok(_) => {
                return Err(why(
                    io::ErrorKind::InvalidData,
                    "the VMM's answer to CONNECT is not a line",
                    None,
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // ECONNRESET and the like: the VMM is gone.
            Err(_) => return Ok(None),
        }
    }
}

/// Waits until `sock` is readable; TimedOut past `deadline`.
fn wait_readable(sock: &impl AsFd, deadline: Option<Instant>) -> io::Result<()> {
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
                PollTimeout::from(ms)
            }
        };
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => {}
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Holds a socket whose CONNECT is unanswered until the VMM answers or gives up (see
/// the module doc), on a thread of its own, then closes it the careful way.
fn keep_until_answered(sock: UnixStream) {
    let sock = std::sync::Arc::new(sock);
    let held = std::sync::Arc::clone(&sock);
    let spawned = std::thread::Builder::new()
        .name("hvsock-orphan".into())
        .spawn(move || {
            if let Ok(Some(_)) = read_answer(&held, Some(Instant::now() + ORPHAN_WAIT)) {
                close_hybrid(&held, Duration::from_secs(10));
            }
        });
    if spawned.is_err() {
        // No thread: leak the descriptor rather than close it too early.
        std::mem::forget(sock);
    }
}

/// Closes a hybrid stream so that the guest's end closes too: shut the writing side,
/// read (and drop) what is still coming until the end, at most `limit`.
pub(crate) fn close_hybrid(sock: &UnixStream, limit: Duration) {
    if sock.shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now().checked_add(limit);
    let mut buf = vec![0u8; 64 << 10];
    let mut reader = sock;
    while wait_readable(sock, deadline).is_ok() {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        let vsock = Target::parse("vsock:3:1023").unwrap();
        assert_eq!(vsock, Target::Vsock { cid: 3, port: 1023 });
        let hybrid = Target::parse("hvsock:/run/fc/v:m.sock:52").unwrap();
        assert_eq!(
            hybrid,
            Target::Hybrid {
                path: "/run/fc/v:m.sock".into(),
                port: 52
            }
        );
        let path = Target::parse("/run/vm1-ga.sock").unwrap();
        assert_eq!(path, Target::Path("/run/vm1-ga.sock".into()));
        for t in [vsock, hybrid, path] {
            assert_eq!(Target::parse(t.to_string()).unwrap(), t);
        }
        assert_eq!(
            Target::parse("./vsock:3:4").unwrap(),
            Target::Path("./vsock:3:4".into())
        );
        for bad in [
            "vsock:",
            "vsock:3",
            "vsock:x:4",
            "vsock:3:4:5",
            "vsock:-1:4",
            "vsock:3:99999999999",
            "hvsock:",
            "hvsock:/x",
            "hvsock::5",
            "hvsock:/x:",
            "hvsock:/x:y",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert!(e.starts_with(bad) && e.contains("expected"), "{bad}: {e}");
        }
        // Given as a path, a malformed address stays a path.
        assert_eq!(
            Target::from(Path::new("vsock:x")),
            Target::Path("vsock:x".into())
        );
    }
}
