//! A host that vanishes mid-reply or mid-request: the next connection gets a clean
//! stream, nothing half-sent is executed, open handles go on.

use std::fs;
use std::io::Read;
use std::time::Duration;

use phoenix_testkit::{b64, fails, md5_of, ok, path_str as s, random_bytes, unb64, Launch, MIB};
use serde_json::json;

use crate::helpers::{alive, ping};
use crate::AGENT;

#[test]
fn host_vanishing_mid_reply_leaves_a_clean_stream_and_the_handle() {
    let mut agent = Launch::new(AGENT).start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let data = random_bytes(37 * MIB, 0xdead);
    fs::write(&path, &data).unwrap();

    let h = {
        let mut c = agent.raw();
        let h = ok(&mut c, "file-open", json!({"path": s(&path)}));
        c.send(
            json!({"execute": "file-read", "arguments": {"handle_id": h, "count": 33554432},
                   "tag": "huge"})
            .to_string()
            .as_bytes(),
        );
        c.send(b"\n");
        let mut first = [0u8; 8192];
        c.stream.read_exact(&mut first).unwrap();
        assert!(first.starts_with(b"{\""), "{:?}", &first[..16]);
        h
        // Dropped here: the agent is still writing a 44 MiB line.
    };

    let mut c = agent.raw();
    let r = c.request(json!({"execute": "ping", "tag": "fresh"}));
    assert_eq!(
        r["tag"], "fresh",
        "first reply on the new stream is not ours"
    );
    assert!(r["return"].is_string());
    // The 32 MiB read happened (we saw its reply start); the handle goes on after it.
    let r = ok(
        &mut c,
        "file-read",
        json!({"handle_id": h, "count": 4 * MIB}),
    );
    assert_eq!(r["eof"], json!(false));
    assert_eq!(unb64(&r["bufb64"]), &data[32 * MIB..36 * MIB]);
    assert_eq!(
        ok(&mut c, "file-close", json!({"handle_id": h})),
        json!(true)
    );
    let (_, code) = fails(&mut c, "file-read", json!({"handle_id": h}));
    assert_eq!(code, 9);
    // Nothing stale follows.
    c.stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(c.stream.read(&mut buf).is_err(), "stale bytes");
    assert!(alive(&mut agent.child));
}

#[test]
fn host_vanishing_mid_request_executes_nothing() {
    let agent = Launch::new(AGENT).start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("up.bin");
    let data = random_bytes(8 * MIB, 0xabc);
    let h = {
        let mut c = agent.raw();
        let h = ok(&mut c, "file-open", json!({"path": s(&path), "mode": "w"}));
        ok(
            &mut c,
            "file-write",
            json!({"handle_id": h, "bufb64": b64(&data[..MIB])}),
        );
        // Half of a 4 MiB write, then gone.
        let line = json!({"execute": "file-write",
                          "arguments": {"handle_id": h, "bufb64": b64(&data[MIB..5 * MIB])}})
        .to_string();
        c.send(&line.as_bytes()[..line.len() / 2]);
        h
    };
    let mut c = agent.raw();
    ping(&mut c, "fresh");
    // The cut request wrote nothing; the handle goes on from where the last whole one left.
    assert_eq!(fs::read(&path).unwrap(), &data[..MIB]);
    ok(
        &mut c,
        "file-write",
        json!({"handle_id": h, "bufb64": b64(&data[MIB..]), "eof": true}),
    );
    assert_eq!(md5_of(&fs::read(&path).unwrap()), md5_of(&data));
    assert_eq!(fails(&mut c, "file-close", json!({"handle_id": h})).1, 9);
}
