//! The handle table: limit, unknown and closed handles, reconnects, concurrency.

use std::fs;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;

use crate::helpers::*;
use phoenix_testkit::{err, ret, RawConn};

#[test]
fn handle_limit_is_emfile_and_numbers_are_not_reused() {
    let a = agent(&["--max-handles", "3"]);
    let p = a.dir.path().join("keep");
    fs::write(&p, "keep").unwrap();
    let mut c = a.raw();
    let open = |c: &mut RawConn| call(c, "file-open", json!({"path": s(&p)}));
    for want in 1..=3 {
        assert_eq!(ret(&open(&mut c)), want);
    }
    let (msg, code) = err(&open(&mut c));
    assert_eq!(
        (code, msg.as_str()),
        (24, "too many open handles (limit 3)")
    );
    // At the limit, a write open must not truncate the file.
    assert_eq!(
        fails(&mut c, "file-open", json!({"path": s(&p), "mode": "w"})).1,
        24
    );
    assert_eq!(fs::read(&p).unwrap(), b"keep");
    ok(&mut c, "file-close", json!({"handle_id": 2}));
    assert_eq!(ret(&open(&mut c)), 4);
    assert_eq!(err(&open(&mut c)).1, 24);
    assert_eq!(fails(&mut c, "file-read", json!({"handle_id": 2})).1, 9);
    // A read to eof frees a place.
    let r = ok(&mut c, "file-read", json!({"handle_id": 4}));
    assert_eq!(r, json!({"bufb64": STANDARD.encode("keep"), "eof": true}));
    assert_eq!(ret(&open(&mut c)), 5);
}

#[test]
fn bad_handles_and_wrong_directions() {
    let a = agent(&[]);
    let p = a.dir.path().join("f");
    fs::write(&p, "data").unwrap();
    let mut c = a.raw();
    for (cmd, args) in [
        ("file-read", json!({"handle_id": 999})),
        (
            "file-write",
            json!({"handle_id": 999, "bufb64": "", "eof": true}),
        ),
        ("file-close", json!({"handle_id": 999})),
    ] {
        let (msg, code) = fails(&mut c, cmd, args);
        assert_eq!((code, msg.as_str()), (9, "handle 999 is not open"), "{cmd}");
    }
    assert_eq!(fails(&mut c, "file-read", json!({})).1, -1);
    assert_eq!(fails(&mut c, "file-read", json!({"handle_id": "1"})).1, -1);
    assert_eq!(fails(&mut c, "file-read", json!({"handle_id": -1})).1, -1);
    let r = ok(&mut c, "file-open", json!({"path": s(&p)}));
    let (msg, code) = fails(
        &mut c,
        "file-write",
        json!({"handle_id": r, "bufb64": "eA=="}),
    );
    assert_eq!(code, 9);
    assert!(
        msg.starts_with(&format!("write {}: ", p.display())),
        "{msg}"
    );
    let w = ok(
        &mut c,
        "file-open",
        json!({"path": s(&a.dir.path().join("g")), "mode": "w"}),
    );
    assert_eq!(fails(&mut c, "file-read", json!({"handle_id": w})).1, 9);
    assert_eq!(fs::read(&p).unwrap(), b"data");
}

#[test]
fn handles_survive_a_reconnect() {
    let a = agent(&[]);
    let p = a.dir.path().join("f");
    fs::write(&p, "still here").unwrap();
    let h = {
        let mut c = a.raw();
        ok(&mut c, "file-open", json!({"path": s(&p)}))
    };
    let mut c = a.raw();
    let r = ok(&mut c, "file-read", json!({"handle_id": h}));
    assert_eq!(
        r,
        json!({"bufb64": STANDARD.encode("still here"), "eof": true})
    );
}

#[test]
fn a_blocked_read_delays_no_other_request() {
    let a = agent(&[]);
    let fifo = a.dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Held read-write so that neither side's open blocks.
    let mut writer = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let other = a.dir.path().join("other");
    fs::write(&other, "other").unwrap();
    let mut c = a.raw();
    let f = ok(&mut c, "file-open", json!({"path": s(&fifo)}));
    c.send(
        format!(r#"{{"execute":"file-read","arguments":{{"handle_id":{f}}},"tag":"fifo"}}"#)
            .as_bytes(),
    );
    c.send(b"\n");
    let o = ok(&mut c, "file-open", json!({"path": s(&other)}));
    let r = ok(&mut c, "file-read", json!({"handle_id": o}));
    assert_eq!(r["eof"], true);
    assert_eq!(
        c.request(json!({"execute": "ping", "tag": "p"}))["tag"],
        "p"
    );
    // Closing the busy handle answers at once; the read still completes.
    assert_eq!(ok(&mut c, "file-close", json!({"handle_id": f})), true);
    assert_eq!(fails(&mut c, "file-read", json!({"handle_id": f})).1, 9);
    use std::io::Write;
    writer.write_all(b"late").unwrap();
    let r = c.recv();
    assert_eq!(r["tag"], "fifo");
    assert_eq!(
        ret(&r),
        &json!({"bufb64": STANDARD.encode("late"), "eof": false})
    );
    // Then the descriptor is closed.
    c.request(json!({"execute": "ping"}));
    let open_on_fifo = fs::read_dir(format!("/proc/{}/fd", a.pid()))
        .unwrap()
        .filter(|e| fs::read_link(e.as_ref().unwrap().path()).is_ok_and(|t| t == fifo))
        .count();
    assert_eq!(open_on_fifo, 0, "fifo still open in the agent");
}
