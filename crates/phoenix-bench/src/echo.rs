//! The transport floor of the guest sections: a bare echo in the guest (this program,
//! copied in and started with `--guest-echo`), pinged through the same vsock or port
//! as the agents. Its round trip is what the transport alone costs; what an agent adds
//! to it is the agent's own share.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    accept4, bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, VsockAddr,
};

use crate::harness::OrPanic;

/// What the host sends and the echo returns: as long as a qemu-ga ping request.
const LINE: &[u8] = b"{\"execute\":\"guest-ping\"}\n";

/// Serves an echo on `spec`: `vsock:PORT` until killed (every connection on a thread
/// of its own), or the path of a virtio-serial port until its host leaves (start it
/// once the host is connected: without one, a port reads end-of-file at once). Runs
/// in the guest.
pub fn serve(spec: &str) -> io::Result<()> {
    match spec.strip_prefix("vsock:") {
        Some(port) => {
            let port: u32 = port.parse().map_err(io::Error::other)?;
            let fd = socket(
                AddressFamily::Vsock,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )?;
            bind(fd.as_raw_fd(), &VsockAddr::new(u32::MAX, port))?;
            listen(&fd, Backlog::new(8)?)?;
            loop {
                let conn = accept4(fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC)?;
                // SAFETY: accept4 just returned this descriptor, which nothing else owns.
                let conn = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(conn) });
                std::thread::spawn(move || echo(&conn));
            }
        }
        None => {
            // One open, read and written: a port may be open once at a time.
            let port = OpenOptions::new().read(true).write(true).open(spec)?;
            echo(&port);
            Ok(())
        }
    }
}

/// Writes back what it reads until the end of the stream or an error.
fn echo(mut stream: &std::fs::File) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut out = stream;
                if out.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// A connection to an echo through a hybrid vsock socket (`CONNECT PORT`, `OK ...`).
pub fn connect_vsock(socket: &Path, port: u32) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = UnixStream::connect(socket).and_then(|mut s| {
            s.write_all(format!("CONNECT {port}\n").as_bytes())?;
            // Byte by byte: what follows the answer line is the echo's.
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while byte[0] != b'\n' {
                if s.read(&mut byte)? == 0 {
                    return Err(io::Error::other("closed before OK"));
                }
                line.push(byte[0]);
            }
            match line.starts_with(b"OK") {
                true => Ok(s),
                false => Err(io::Error::other(
                    String::from_utf8_lossy(&line).into_owned(),
                )),
            }
        });
        match attempt {
            Ok(s) => return s,
            Err(e) if Instant::now() >= deadline => panic!("echo on vsock port {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A host connection to the echo.
pub struct Pinger {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    back: Vec<u8>,
}

impl Pinger {
    /// Pings the echo at the other end of `stream`.
    pub fn new(stream: UnixStream) -> Self {
        Self {
            reader: BufReader::new(stream.try_clone().or_panic("clone the echo stream")),
            writer: stream,
            back: Vec::with_capacity(LINE.len()),
        }
    }

    /// One line there and back.
    pub fn ping(&mut self) {
        self.writer.write_all(LINE).or_panic("echo write");
        self.back.clear();
        self.reader
            .read_until(b'\n', &mut self.back)
            .or_panic("echo read");
        assert_eq!(self.back, LINE, "the echo sent back something else");
    }
}
