//! Files and directories pulled away under the agent: truncated or deleted while
//! open, removed between and during a listing.

use std::fs;

use phoenix_testkit::{call, err, fails, ok, path_str as s, random_bytes, unb64, Launch, MIB};
use serde_json::json;

use crate::helpers::{alive, ping};
use crate::AGENT;

#[test]
fn truncated_file_reads_eof_and_a_deleted_one_stays_readable() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(MIB, 7);

    // Truncated to nothing after the first read: the next read is an empty eof.
    let p = dir.path().join("t0");
    fs::write(&p, &data).unwrap();
    let h = ok(&mut c, "file-open", json!({"path": s(&p)}));
    let r = ok(&mut c, "file-read", json!({"handle_id": h, "count": 4096}));
    assert_eq!(unb64(&r["bufb64"]), &data[..4096]);
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    let r = ok(&mut c, "file-read", json!({"handle_id": h, "count": 4096}));
    assert_eq!(r, json!({"bufb64": "", "eof": true}));
    assert_eq!(fails(&mut c, "file-read", json!({"handle_id": h})).1, 9);

    // Truncated behind the offset's back to a middle size: the rest up to the new end.
    let p = dir.path().join("t1");
    fs::write(&p, &data).unwrap();
    let h = ok(&mut c, "file-open", json!({"path": s(&p)}));
    ok(&mut c, "file-read", json!({"handle_id": h, "count": 4096}));
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(10000)
        .unwrap();
    let r = ok(&mut c, "file-read", json!({"handle_id": h, "count": 65536}));
    assert_eq!(r["eof"], json!(true));
    assert_eq!(unb64(&r["bufb64"]), &data[4096..10000]);

    // Deleted while open: the open handle reads the whole file.
    let p = dir.path().join("gone");
    fs::write(&p, &data).unwrap();
    let h = ok(&mut c, "file-open", json!({"path": s(&p)}));
    let r = ok(&mut c, "file-read", json!({"handle_id": h, "count": 1000}));
    let mut got = unb64(&r["bufb64"]);
    fs::remove_file(&p).unwrap();
    assert!(!p.exists());
    loop {
        let r = ok(
            &mut c,
            "file-read",
            json!({"handle_id": h, "count": 300_000}),
        );
        got.extend_from_slice(&unb64(&r["bufb64"]));
        if r["eof"] == json!(true) {
            break;
        }
    }
    assert_eq!(got, data);
    // And get-file-md5sum of the name now says ENOENT.
    assert_eq!(
        fails(&mut c, "get-file-md5sum", json!({"path": s(&p)})).1,
        2
    );
    ping(&mut c, "alive");
}

#[test]
fn directory_removed_between_and_during_listing() {
    let mut agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let dir = tempfile::tempdir().unwrap();

    // Between calls.
    let d = dir.path().join("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("a"), b"a").unwrap();
    let list = ok(&mut c, "directory-list", json!({"path": s(&d)}));
    assert_eq!(list.as_array().unwrap().len(), 1);
    fs::remove_dir_all(&d).unwrap();
    let (msg, code) = fails(&mut c, "directory-list", json!({"path": s(&d)}));
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains(s(&d)), "{msg}");

    // Replaced by a file: ENOTDIR.
    fs::write(&d, b"x").unwrap();
    assert_eq!(
        fails(&mut c, "directory-list", json!({"path": s(&d)})).1,
        20
    );

    // Removed while it is being listed: either a partial list of real entries or
    // ENOENT, never a crash or an entry that never existed.
    for round in 0..3 {
        let big = dir.path().join(format!("big{round}"));
        fs::create_dir(&big).unwrap();
        for i in 0..2000 {
            fs::write(big.join(format!("e{i:05}")), b"").unwrap();
        }
        let remover = {
            let big = big.clone();
            std::thread::spawn(move || fs::remove_dir_all(&big).unwrap())
        };
        let r = call(&mut c, "directory-list", json!({"path": s(&big)}));
        remover.join().unwrap();
        if let Some(entries) = r.get("return") {
            for e in entries.as_array().unwrap() {
                let name = e["name"].as_str().unwrap();
                assert!(
                    name.len() == 6 && name.starts_with('e'),
                    "unknown entry {e}"
                );
            }
        } else {
            let (msg, code) = err(&r);
            assert_eq!(code, 2, "{msg}");
        }
        assert!(!big.exists());
        ping(&mut c, &format!("r{round}"));
    }
    assert!(alive(&mut agent.child));
}
