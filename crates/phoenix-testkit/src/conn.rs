//! A raw byte stream to the agent, and the envelope of its replies.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

/// A raw byte stream to the agent: what is sent is exactly what the test wrote, and
/// replies are read one line at a time.
#[derive(Debug)]
pub struct RawConn {
    /// The socket, for tests that write, read or shut it down themselves.
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl RawConn {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Self {
        Self::from_stream(UnixStream::connect(path).expect("connect"))
    }

    /// Wraps a connected stream; a reply must come within 20 s (see
    /// [`RawConn::set_timeout`]).
    pub fn from_stream(stream: UnixStream) -> Self {
        let conn = RawConn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        };
        conn.set_timeout(Duration::from_secs(20));
        conn
    }

    /// How long a read may wait for the agent.
    pub fn set_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next reply line, parsed.
    pub fn recv(&mut self) -> Value {
        self.recv_sized().0
    }

    /// The next reply line, parsed, and its length in bytes (newline included).
    pub fn recv_sized(&mut self) -> (Value, usize) {
        let mut line = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut line)
            .expect("read reply");
        assert!(n > 0, "agent closed the connection");
        assert!(
            line.ends_with(b"\n"),
            "reply not newline-terminated: {:?}",
            String::from_utf8_lossy(&line)
        );
        let v = serde_json::from_slice(&line)
            .unwrap_or_else(|e| panic!("bad reply {:?}: {e}", String::from_utf8_lossy(&line)));
        (v, n)
    }

    /// Sends one request (a JSON value) and returns the next reply.
    pub fn request(&mut self, req: Value) -> Value {
        self.send(&request_line(&req));
        self.recv()
    }
}

/// A request as one line on the wire: its JSON text and CRLF, as QEMU's agent clients
/// send it.
pub fn request_line(req: &Value) -> Vec<u8> {
    let mut line = req.to_string().into_bytes();
    line.extend_from_slice(b"\r\n");
    line
}

/// Sends command `name` with `args` and returns the reply.
pub fn call(c: &mut RawConn, name: &str, args: Value) -> Value {
    c.request(json!({"execute": name, "arguments": args}))
}

/// The `return` of a call that must succeed.
pub fn ok(c: &mut RawConn, name: &str, args: Value) -> Value {
    ret(&call(c, name, args)).clone()
}

/// The decoded `(message, code)` of a call that must fail.
pub fn fails(c: &mut RawConn, name: &str, args: Value) -> (String, i64) {
    err(&call(c, name, args))
}

/// The `return` member of a reply, panicking with the decoded error otherwise.
pub fn ret(reply: &Value) -> &Value {
    match reply.get("return") {
        Some(v) => v,
        None => panic!("expected success, got error {:?}", err(reply)),
    }
}

/// The decoded `(message, code)` of an error reply (the message travels in base64).
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
