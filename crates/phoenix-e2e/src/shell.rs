//! The host end of the guest's shell channel (a second virtio-serial port served by
//! the guest's /init): one script at a time, its stdout, stderr and exit status back.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::{Error, Result};

/// What a guest script printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShOutput {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Its exit status (as `$?` shows it).
    pub status: i32,
}

/// A connection to the shell port's host socket.
pub(crate) struct Shell {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

/// How often a waiting read wakes to check the deadline and whether QEMU still runs.
const TICK: Duration = Duration::from_millis(200);

impl Shell {
    pub(crate) fn connect(path: &Path) -> Result<Self> {
        let stream = UnixStream::connect(path)
            .map_err(|e| Error::io(format!("connect {}", path.display()), e))?;
        stream
            .set_read_timeout(Some(TICK))
            .map_err(|e| Error::io("set_read_timeout", e))?;
        let writer = stream
            .try_clone()
            .map_err(|e| Error::io("clone socket", e))?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
        })
    }

    /// Sends `script` without waiting for it (for a script that powers the guest off).
    pub(crate) fn send(&mut self, script: &str) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let b64 = base64::engine::general_purpose::STANDARD.encode(script);
        self.writer
            .write_all(format!("{id} {b64}\n").as_bytes())
            .map_err(|e| Error::io("write to the shell port", e))?;
        Ok(id)
    }

    /// Runs `script` in the guest, waiting until `timeout`; `alive` says whether the
    /// guest still runs (checked while waiting, so a dead guest fails fast).
    pub(crate) fn run(
        &mut self,
        script: &str,
        timeout: Duration,
        alive: &dyn Fn() -> bool,
    ) -> Result<ShOutput> {
        let id = self.send(script)?;
        let deadline = Instant::now() + timeout;
        let header = loop {
            let line = self.line(deadline, alive)?;
            let mut f = line.split_whitespace();
            if f.next() == Some("OUT") && f.next() == Some(id.to_string().as_str()) {
                let out: usize = num(f.next())?;
                let err: usize = num(f.next())?;
                break (out, err);
            }
            // Output of an earlier, abandoned script: skip it.
        };
        let stdout = self.bytes(header.0, deadline, alive)?;
        let stderr = self.bytes(header.1, deadline, alive)?;
        let end = self.line(deadline, alive)?;
        let status = match end.split_whitespace().collect::<Vec<_>>()[..] {
            ["END", got, status] if got == id.to_string() => num(Some(status))?,
            _ => return Err(Error::msg(format!("shell channel out of step: {end:?}"))),
        };
        Ok(ShOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            status,
        })
    }

    fn line(&mut self, deadline: Instant, alive: &dyn Fn() -> bool) -> Result<String> {
        let mut buf = Vec::new();
        loop {
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) => return Err(Error::msg("the shell channel closed (QEMU exited?)")),
                Ok(_) if buf.ends_with(b"\n") => {
                    return Ok(String::from_utf8_lossy(&buf).trim_end().to_string())
                }
                Ok(_) => {}
                Err(e) => wait_more(e, deadline, alive)?,
            }
        }
    }

    fn bytes(&mut self, n: usize, deadline: Instant, alive: &dyn Fn() -> bool) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => return Err(Error::msg("the shell channel closed (QEMU exited?)")),
                Ok(k) => got += k,
                Err(e) => wait_more(e, deadline, alive)?,
            }
        }
        Ok(buf)
    }
}

/// A read timed out (a tick) or was interrupted: go on unless the deadline passed or
/// the guest died.
fn wait_more(e: io::Error, deadline: Instant, alive: &dyn Fn() -> bool) -> Result<()> {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
            if !alive() {
                Err(Error::msg("QEMU exited while a guest script ran"))
            } else if Instant::now() >= deadline {
                Err(Error::msg("guest script timed out"))
            } else {
                Ok(())
            }
        }
        _ => Err(Error::io("read the shell port", e)),
    }
}

fn num<T: std::str::FromStr>(s: Option<&str>) -> Result<T> {
    s.and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::msg(format!("bad number {s:?} on the shell channel")))
}
