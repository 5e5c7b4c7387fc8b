//! Test support: start the real `phoenix-ga` binary and talk to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// The agent binary under test.
pub const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");

/// A running agent on a unix-listen socket in its own temporary directory; killed on drop.
pub struct TestAgent {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
}

impl TestAgent {
    /// Starts `phoenix-ga -m unix-listen -p DIR/ga.sock ARGS...` and waits until it accepts.
    pub fn unix(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("ga.sock");
        Self::unix_at(dir, sock, args, Command::new(AGENT))
    }

    /// Like [`TestAgent::unix`] with a prepared command (e.g. `unshare -n` in front).
    pub fn unix_with(mut cmd: Command, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("ga.sock");
        cmd.arg(AGENT);
        Self::unix_at(dir, sock, args, cmd)
    }

    fn unix_at(dir: tempfile::TempDir, sock: PathBuf, args: &[&str], mut cmd: Command) -> Self {
        let child = cmd
            .args(["-m", "unix-listen", "-p"])
            .arg(&sock)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn phoenix-ga");
        let agent = TestAgent { child, dir, sock };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&agent.sock).is_err() {
            assert!(Instant::now() < deadline, "agent did not start listening");
            std::thread::sleep(Duration::from_millis(5));
        }
        agent
    }

    /// A raw connection for byte-level checks.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(&self.sock)
    }

    /// A client-library connection.
    pub fn client(&self) -> phoenix_client::Client {
        phoenix_client::Client::connect(&self.sock).expect("client connect")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime of the agent, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        cpu_ticks(self.pid())
    }

    /// Waits for the agent to exit, at most `timeout`; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of process `pid`, in clock ticks (/proc/PID/stat fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state); utime is field 14, stime 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A raw byte stream to the agent.
pub struct RawConn {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl RawConn {
    pub fn connect(path: &Path) -> Self {
        Self::from_stream(UnixStream::connect(path).expect("connect"))
    }

    pub fn from_stream(stream: UnixStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        RawConn { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next reply line, parsed.
    pub fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read reply");
        assert!(n > 0, "agent closed the connection");
        assert!(
            line.ends_with('\n'),
            "reply not newline-terminated: {line:?}"
        );
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}"))
    }

    /// Sends one request (a JSON value) and returns the next reply.
    pub fn request(&mut self, req: Value) -> Value {
        let mut line = req.to_string().into_bytes();
        line.extend_from_slice(b"\r\n");
        self.send(&line);
        self.recv()
    }
}

/// The `return` member of a reply, panicking with the decoded error otherwise.
pub fn ret(reply: &Value) -> &Value {
    match reply.get("return") {
        Some(v) => v,
        None => panic!("expected success, got error {:?}", err(reply)),
    }
}

/// The decoded `(message, code)` of an error reply.
pub fn err(reply: &Value) -> (String, i64) {
    let e = reply
        .get("error")
        .unwrap_or_else(|| panic!("expected an error reply, got {reply}"));
    let msg = base64::engine::general_purpose::STANDARD
        .decode(e["bufb64"].as_str().expect("bufb64"))
        .expect("base64");
    (
        String::from_utf8(msg).unwrap(),
        e["code"].as_i64().expect("code"),
    )
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// MD5 of `data`, lowercase hex.
pub fn md5_of(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
