//! The download loop both transfer sections time (files on the host, guest through a
//! real port): the same client work for both agents, one request or a window of them
//! in flight.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use phoenix_client::{Client, Dialect};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::harness::{Kind, OrPanic};

/// A read reply of either agent; the data is borrowed from the reply where it has no
/// escapes (qemu-ga writes `/` as `\/`).
#[derive(Deserialize)]
struct ReadReply<'a> {
    #[serde(alias = "buf-b64", borrow)]
    bufb64: Cow<'a, str>,
    eof: bool,
}

/// A transfer row's label: chunk size, and how many requests were in flight.
pub fn label(chunk: usize, window: usize) -> String {
    let size = if chunk >= 1 << 20 {
        format!("{} MiB", chunk >> 20)
    } else {
        format!("{} KiB", chunk >> 10)
    };
    if window == 1 {
        format!("{size} chunks")
    } else {
        format!("{size} chunks, {window} in flight")
    }
}

/// Calls `name` with raw JSON `args`, panicking on any failure.
pub fn call(c: &Client, name: &str, args: &str, timeout: Duration) -> Box<RawValue> {
    let args = RawValue::from_string(args.to_string()).expect("valid JSON");
    c.call_raw(name, Some(&args), Some(timeout)).or_panic(name)
}

/// Downloads the file at `path_json` (a JSON string) in `chunk`-byte reads, `window`
/// of them in flight; the time taken. Each chunk is decoded (SIMD, as phoenix-client
/// does) into one reused buffer and compared with `want`, so the client touches no
/// fresh memory per chunk.
pub fn download(
    kind: Kind,
    c: &Client,
    path_json: &str,
    chunk: usize,
    window: usize,
    want: &[u8],
    timeout: Duration,
) -> Duration {
    let name = kind.name();
    let t0 = Instant::now();
    let (open, read, close) = match kind.dialect() {
        Dialect::Phoenix => ("file-open", "file-read", None),
        Dialect::Qga => (
            "guest-file-open",
            "guest-file-read",
            Some("guest-file-close"),
        ),
    };
    let h = call(
        c,
        open,
        &format!(r#"{{"path":{path_json},"mode":"r"}}"#),
        timeout,
    );
    let h = h.get();
    let args = RawValue::from_string(match kind.dialect() {
        Dialect::Phoenix => format!(r#"{{"handle_id":{h},"count":{chunk}}}"#),
        Dialect::Qga => format!(r#"{{"handle":{h},"count":{chunk}}}"#),
    })
    .expect("valid JSON");
    // The last read returns nothing and eof (ours closes the handle then).
    let mut reads_left = want.len() / chunk + 1;
    let mut pending = VecDeque::new();
    let (mut part, mut off) = (Vec::new(), 0);
    loop {
        while pending.len() < window && reads_left > 0 {
            pending.push_back(c.send_request(read, Some(&args)).expect(read));
            reads_left -= 1;
        }
        let reply = pending
            .pop_front()
            .expect("a read in flight")
            .wait(Some(timeout))
            .or_panic(read);
        let r: ReadReply = serde_json::from_str(reply.get()).expect("read reply");
        part.resize(r.bufb64.len() / 4 * 3, 0);
        let n = base64_simd::STANDARD
            .decode(
                r.bufb64.as_bytes(),
                base64_simd::Out::from_slice(&mut part[..]),
            )
            .expect("base64")
            .len();
        part.truncate(n);
        assert!(
            want.get(off..off + part.len()) == Some(&part[..]),
            "{name}: downloaded bytes differ at {off}"
        );
        off += part.len();
        if r.eof {
            break;
        }
    }
    assert!(pending.is_empty(), "{name}: eof came early");
    if let Some(close) = close {
        call(c, close, &format!(r#"{{"handle":{h}}}"#), timeout);
    }
    let t = t0.elapsed();
    assert_eq!(off, want.len(), "{name}: download too short");
    t
}
