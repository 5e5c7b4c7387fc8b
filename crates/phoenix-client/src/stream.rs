//! The byte stream to the agent: a UNIX socket, a character device, a vsock
//! connection or a hybrid vsock socket past its handshake ([`crate::Target`]), read one
//! reply line at a time with a deadline.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, send, setsockopt, sockopt, MsgFlags};
use nix::sys::termios;
use nix::sys::time::{TimeVal, TimeValLike};

/// A connection to the agent.
#[derive(Debug)]
pub enum Stream {
    /// A UNIX socket (the QEMU chardev, or the agent's unix-listen socket).
    Unix(UnixStream),
    /// A character device (a pty or serial line).
    Device(File),
    /// An AF_VSOCK connection to the guest.
    Vsock(VsockStream),
    /// A hybrid vsock socket past its `CONNECT`/`OK` (closed with [`Stream::close`]).
    Hybrid(UnixStream),
}

/// A connected AF_VSOCK socket (std has no vsock stream type). Writes never raise
/// SIGPIPE.
#[derive(Debug)]
pub struct VsockStream(OwnedFd);

impl VsockStream {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self(fd)
    }
}

impl Stream {
    /// Connects to a socket, or opens a device, at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let is_socket = std::fs::metadata(path)?.file_type().is_socket();
        if is_socket {
            Ok(Stream::Unix(UnixStream::connect(path)?))
        } else {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(nix::libc::O_NOCTTY)
                .open(path)?;
            make_raw_if_tty(&f)?;
            Ok(Stream::Device(f))
        }
    }

    /// A second handle on the same connection (one for reading, one for writing).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Device(f) => Stream::Device(f.try_clone()?),
            Stream::Vsock(v) => Stream::Vsock(VsockStream(v.0.try_clone()?)),
            Stream::Hybrid(s) => Stream::Hybrid(s.try_clone()?),
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) | Stream::Hybrid(s) => s.as_fd(),
            Stream::Device(f) => f.as_fd(),
            Stream::Vsock(v) => v.0.as_fd(),
        }
    }

    /// Bounds every write: one that moves no byte for `timeout` fails with TimedOut
    /// (sockets only; a device path keeps blocking writes).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = timeout.filter(|t| !t.is_zero());
        match self {
            Stream::Unix(s) | Stream::Hybrid(s) => s.set_write_timeout(timeout),
            Stream::Device(_) => Ok(()),
            Stream::Vsock(v) => {
                let t = timeout.map_or(TimeVal::new(0, 0), |t| {
                    TimeVal::microseconds(i64::try_from(t.as_micros()).unwrap_or(i64::MAX / 2))
                });
                Ok(setsockopt(&v.0, sockopt::SendTimeout, &t)?)
            }
        }
    }

    /// Writes all of `buf`.
    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_all_unbounded(buf).map_err(|e| match e.kind() {
            // SO_SNDTIMEO expired (EAGAIN on a blocking socket).
            io::ErrorKind::WouldBlock => io::Error::new(
                io::ErrorKind::TimedOut,
                "the agent took no byte of the request within the timeout",
            ),
            _ => e,
        })
    }

    fn write_all_unbounded(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) | Stream::Hybrid(s) => s.write_all(buf),
            Stream::Device(f) => f.write_all(buf),
            Stream::Vsock(v) => {
                let mut rest = buf;
                while !rest.is_empty() {
                    match send(v.0.as_raw_fd(), rest, MsgFlags::MSG_NOSIGNAL) {
                        Ok(n) => rest = &rest[n..],
                        Err(Errno::EINTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) | Stream::Hybrid(s) => s.read(buf),
            Stream::Device(f) => f.read(buf),
            Stream::Vsock(v) => Ok(recv(v.0.as_raw_fd(), buf, MsgFlags::empty())?),
        }
    }

    /// Ends the connection. A hybrid vsock stream is shut for writing and read to its
    /// end first (at most `limit`): closed while data is unread, vhost-device-vsock
    /// would leave the guest's end open for ever.
    pub fn close(&self, limit: std::time::Duration) {
        if let Stream::Hybrid(s) = self {
            crate::target::close_hybrid(s, limit);
        }
    }
}

/// A tty (a serial line, a pty) would echo and edit lines; the protocol needs every
/// byte as sent. Other devices are left as they are.
fn make_raw_if_tty(dev: &File) -> io::Result<()> {
    let mut attrs = match termios::tcgetattr(dev.as_fd()) {
        Ok(attrs) => attrs,
        Err(Errno::ENOTTY) | Err(Errno::EINVAL) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    termios::cfmakeraw(&mut attrs);
    termios::tcsetattr(dev.as_fd(), termios::SetArg::TCSANOW, &attrs)?;
    Ok(())
}

/// How long a reader polls for a reply before it sleeps.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Bytes asked of one `read()`.
const READ_CHUNK: usize = 256 << 10;

/// What [`LineReader::read_line`] got.
#[derive(Debug)]
pub enum Line<'a> {
    /// A complete line (without the LF), in the reader's buffer until the next call.
    Complete(&'a [u8]),
    /// The deadline passed first; a partial line is kept for the next call.
    Timeout,
    /// The agent closed the connection.
    Closed,
}

/// Reads reply lines; keeps a partial line across timeouts.
///
/// `buf` is always initialised up to its length; `start..end` holds unread bytes, so
/// no read zeroes memory again (a 4 MiB-chunk download reads many MiB per call). A
/// line is lent from the buffer rather than copied out of it.
#[derive(Debug)]
pub struct LineReader {
    stream: Stream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Length of the last line returned.
    last_len: usize,
}

/// Free space kept ahead of a read.
const MIN_FREE: usize = 64 << 10;

impl LineReader {
    /// The stream read from.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Reads from `stream`.
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            last_len: 0,
        }
    }

    /// The next line, waiting at most until `deadline` (forever when `None`).
    pub fn read_line(&mut self, deadline: Option<Instant>) -> io::Result<Line<'_>> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // Large replies are over (the last line was short): the buffer they grew
            // goes. During a transfer it stays, so each chunk lands in memory
            // already mapped.
            if self.buf.len() > 4 * READ_CHUNK && self.last_len < READ_CHUNK {
                self.buf.truncate(READ_CHUNK);
                self.buf.shrink_to_fit();
            }
        }
        let mut scanned = self.start;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[scanned..self.end]) {
                let nl = scanned + i;
                let start = self.start;
                self.start = nl + 1;
                let body = &self.buf[start..nl];
                self.last_len = body.len();
                return Ok(Line::Complete(body.strip_suffix(b"\r").unwrap_or(body)));
            }
            scanned = self.end;
            self.make_room(&mut scanned);
            let at = self.end;
            // Spin only for the start of a reply: the rest of a long one comes as fast
            // as the agent writes it, and spinning would take the CPU it needs.
            let spun = if self.start == self.end {
                self.spin_read(at)
            } else {
                None
            };
            let got = match spun {
                Some(got) => got,
                None => {
                    if !self.wait_readable(deadline)? {
                        return Ok(Line::Timeout);
                    }
                    self.stream.read(&mut self.buf[at..])
                }
            };
            match got {
                Ok(0) => return Ok(Line::Closed),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Ensures [`MIN_FREE`] bytes after `end`: moves unread bytes to the front, then
    /// grows the buffer (doubling) if that is not enough.
    fn make_room(&mut self, scanned: &mut usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            *scanned = 0;
        }
        if self.buf.len() - self.end >= MIN_FREE {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            *scanned -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < MIN_FREE {
            let grown = (self.buf.len() * 2).max(self.end + READ_CHUNK);
            self.buf.resize(grown, 0);
        }
    }

    /// A reply usually arrives within microseconds of the request on a local socket;
    /// polling for it briefly without sleeping saves two scheduler round trips per
    /// call. Gives up after [`SPIN`]; `None` means "nothing yet, go to sleep".
    fn spin_read(&mut self, at: usize) -> Option<io::Result<usize>> {
        if matches!(self.stream, Stream::Device(_)) {
            return None;
        }
        let fd = self.stream.fd().as_raw_fd();
        let start = Instant::now();
        loop {
            match recv(fd, &mut self.buf[at..], MsgFlags::MSG_DONTWAIT) {
                Ok(n) => return Some(Ok(n)),
                Err(Errno::EAGAIN) => {}
                Err(Errno::EINTR) => {}
                Err(e) => return Some(Err(e.into())),
            }
            if start.elapsed() >= SPIN {
                return None;
            }
            std::hint::spin_loop();
        }
    }

    fn wait_readable(&self, deadline: Option<Instant>) -> io::Result<bool> {
        loop {
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    PollTimeout::try_from(left.as_millis().clamp(1, 60_000) as u32)
                        .unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(self.stream.fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => continue,
                Ok(_) => return Ok(true),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (UnixStream, LineReader) {
        let (a, b) = UnixStream::pair().unwrap();
        (a, LineReader::new(Stream::Unix(b)))
    }

    fn line(r: &mut LineReader) -> Vec<u8> {
        let deadline = Some(Instant::now() + Duration::from_secs(10));
        match r.read_line(deadline).unwrap() {
            Line::Complete(l) => l.to_vec(),
            other => panic!("no line: {other:?}"),
        }
    }

    #[test]
    fn lines_split_anyhow_come_back_whole() {
        let (mut w, mut r) = pair();
        let big: Vec<u8> = (0..6 * READ_CHUNK + 5)
            .map(|i| b'a' + u8::try_from(i % 26).unwrap())
            .collect();
        let writer = std::thread::spawn(move || {
            w.write_all(b"one\r\ntw").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            w.write_all(b"o\n").unwrap();
            w.write_all(&big).unwrap();
            w.write_all(b"\nshort\npart").unwrap();
            (w, big)
        });
        assert_eq!(line(&mut r), b"one");
        assert_eq!(line(&mut r), b"two");
        let big_line = line(&mut r);
        let (mut w, big) = writer.join().unwrap();
        assert!(big_line == big);
        assert_eq!(line(&mut r), b"short");
        // A partial line waits for its end across a timeout.
        let soon = Some(Instant::now() + Duration::from_millis(30));
        assert!(matches!(r.read_line(soon).unwrap(), Line::Timeout));
        w.write_all(b"ial\n").unwrap();
        assert_eq!(line(&mut r), b"partial");
        assert!(r.buf.len() > 6 * READ_CHUNK);
        drop(w);
        assert!(matches!(r.read_line(None).unwrap(), Line::Closed));
        // The buffer grown for the big line went once short lines followed.
        assert_eq!(r.buf.len(), READ_CHUNK);
    }
}
