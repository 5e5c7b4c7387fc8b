//! Contents: round trips through file-write and file-read, the count extension,
//! base64 rules, get-file-md5sum.

use std::fs;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use phoenix_client::Client;
use phoenix_proto::types::files::{FileReadResult, FileWrite};
use serde_json::json;

use crate::helpers::*;
use phoenix_testkit::ret;

/// Uploads `data` in `chunk`-byte file-writes; the last one carries eof (and data).
fn upload(c: &Client, path: &Path, data: &[u8], chunk: usize) {
    let h: u64 = c
        .call("file-open", &json!({"path": s(path), "mode": "w"}))
        .unwrap();
    let mut chunks: Vec<&[u8]> = data.chunks(chunk).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    for (i, part) in chunks.into_iter().enumerate() {
        let args = FileWrite {
            handle_id: h,
            bufb64: STANDARD.encode(part),
            eof: i == last,
        };
        assert!(c.call::<_, bool>("file-write", &args).unwrap());
    }
    let e = c
        .call::<_, bool>("file-write", &json!({"handle_id": h, "bufb64": ""}))
        .unwrap_err();
    assert_eq!(
        e.errno().map(|e| e as i32),
        Some(9),
        "handle open after eof write"
    );
}

/// Downloads `path` with `count`-byte reads (None: the default 4096); every chunk but
/// the last is full, and the handle is gone after eof.
fn download(c: &Client, path: &Path, count: Option<usize>) -> Vec<u8> {
    let h: u64 = c.call("file-open", &json!({"path": s(path)})).unwrap();
    let mut args = json!({"handle_id": h});
    if let Some(n) = count {
        args["count"] = json!(n);
    }
    let full = count.unwrap_or(4096);
    let mut data = Vec::new();
    loop {
        let r: FileReadResult = c.call("file-read", &args).unwrap();
        let part = STANDARD.decode(&r.bufb64).unwrap();
        data.extend_from_slice(&part);
        if r.eof {
            assert!(
                part.len() < full || part.is_empty(),
                "eof chunk of {}",
                part.len()
            );
            break;
        }
        assert_eq!(part.len(), full, "short chunk without eof");
    }
    let e = c.call::<_, FileReadResult>("file-read", &args).unwrap_err();
    assert_eq!(
        e.errno().map(|e| e as i32),
        Some(9),
        "handle open after eof read"
    );
    data
}

fn round_trip(a: &TestAgent, name: &str, data: &[u8], chunk: usize, count: Option<usize>) {
    let c = a.client();
    let path = a.dir.path().join(name);
    upload(&c, &path, data, chunk);
    assert!(
        fs::read(&path).unwrap() == data,
        "{name}: bytes on disk differ"
    );
    assert_eq!(mode(&path) & 0o7777, 0o644);
    let back = download(&c, &path, count);
    assert!(back == data, "{name}: bytes read back differ");
    let md5: String = c
        .call("get-file-md5sum", &json!({"path": s(&path)}))
        .unwrap();
    assert_eq!(md5, md5sum(&path), "{name}");
    assert_eq!(md5, md5_of(data), "{name}");
}

#[test]
fn round_trips_of_small_files() {
    let a = agent(&[]);
    round_trip(&a, "empty", b"", 4096, None);
    round_trip(&a, "small", b"hello\n", 4096, None);
    round_trip(&a, "page", &random_bytes(4096, 1), 4096, None);
    round_trip(&a, "page1", &random_bytes(4097, 2), 4096, None);
    round_trip(&a, "odd", &random_bytes(1000, 3), 7, Some(3));
}

#[test]
fn round_trip_in_4_kib_chunks() {
    let a = agent(&[]);
    round_trip(&a, "k", &random_bytes(2 * MIB + 123, 4), 4096, None);
}

#[test]
fn round_trip_of_50_mib_in_4_mib_chunks() {
    let a = agent(&[]);
    round_trip(
        &a,
        "big",
        &random_bytes(50 * MIB, 5),
        4 * MIB,
        Some(4 * MIB),
    );
}

#[test]
fn exact_page_reads_then_empty_eof() {
    let a = agent(&[]);
    let path = a.dir.path().join("page");
    fs::write(&path, random_bytes(4096, 6)).unwrap();
    let mut c = a.raw();
    let h = ok(&mut c, "file-open", json!({"path": s(&path)}));
    let r = ok(&mut c, "file-read", json!({"handle_id": h}));
    assert_eq!(r["eof"], false);
    assert_eq!(
        STANDARD
            .decode(r["bufb64"].as_str().unwrap())
            .unwrap()
            .len(),
        4096
    );
    let r = ok(&mut c, "file-read", json!({"handle_id": h}));
    assert_eq!(r, json!({"bufb64": "", "eof": true}));
    let (msg, code) = fails(&mut c, "file-read", json!({"handle_id": h}));
    assert_eq!(
        (msg.as_str(), code),
        (format!("handle {h} is not open").as_str(), 9)
    );
    assert_eq!(fails(&mut c, "file-close", json!({"handle_id": h})).1, 9);
}

#[test]
fn eof_write_keeps_its_bytes_and_closes() {
    let a = agent(&[]);
    let path = a.dir.path().join("f");
    let mut c = a.raw();
    let h = ok(&mut c, "file-open", json!({"path": s(&path), "mode": "w"}));
    let args =
        |b: &str, eof: bool| json!({"handle_id": h, "bufb64": STANDARD.encode(b), "eof": eof});
    assert_eq!(ok(&mut c, "file-write", args("abc", false)), true);
    assert_eq!(ok(&mut c, "file-write", args("def", true)), true);
    assert_eq!(fs::read(&path).unwrap(), b"abcdef");
    assert_eq!(fails(&mut c, "file-write", args("x", false)).1, 9);
    assert_eq!(fs::read(&path).unwrap(), b"abcdef");
}

#[test]
fn file_close_closes() {
    let a = agent(&[]);
    let path = a.dir.path().join("f");
    let mut c = a.raw();
    let h = ok(&mut c, "file-open", json!({"path": s(&path), "mode": "w"}));
    let fd_count = || {
        fs::read_dir(format!("/proc/{}/fd", a.pid()))
            .unwrap()
            .count()
    };
    let before = fd_count();
    assert_eq!(ok(&mut c, "file-close", json!({"handle_id": h})), true);
    assert_eq!(fd_count(), before - 1, "descriptor not closed");
    assert_eq!(fails(&mut c, "file-close", json!({"handle_id": h})).1, 9);
    assert_eq!(
        fails(&mut c, "file-write", json!({"handle_id": h, "bufb64": ""})).1,
        9
    );
}

#[test]
fn read_count_extension() {
    let a = agent(&[]);
    let p = a.dir.path().join("f");
    fs::write(&p, "abc").unwrap();
    let mut c = a.raw();
    let h = ok(&mut c, "file-open", json!({"path": s(&p)}));
    for bad in [json!(0), json!(32 * MIB + 1), json!(-5), json!("1")] {
        let (msg, code) = fails(&mut c, "file-read", json!({"handle_id": h, "count": bad}));
        assert_eq!(code, -1, "{bad}: {msg}");
    }
    for want in ["a", "b"] {
        let r = ok(&mut c, "file-read", json!({"handle_id": h, "count": 1}));
        assert_eq!(r, json!({"bufb64": STANDARD.encode(want), "eof": false}));
    }
    let r = ok(
        &mut c,
        "file-read",
        json!({"handle_id": h, "count": 32 * MIB}),
    );
    assert_eq!(r, json!({"bufb64": STANDARD.encode("c"), "eof": true}));
}

#[test]
fn invalid_base64_writes_nothing() {
    let a = agent(&[]);
    let p = a.dir.path().join("f");
    let mut c = a.raw();
    let h = ok(&mut c, "file-open", json!({"path": s(&p), "mode": "w"}));
    for bad in ["not base64!", "YWJj\u{e9}", "YWJ", "YQ=x"] {
        let (msg, code) = fails(
            &mut c,
            "file-write",
            json!({"handle_id": h, "bufb64": bad, "eof": true}),
        );
        assert_eq!(code, -1, "{bad}");
        assert!(msg.contains("not valid base64"), "{msg}");
    }
    assert_eq!(fails(&mut c, "file-write", json!({"handle_id": h})).1, -1);
    assert_eq!(fs::metadata(&p).unwrap().len(), 0);
    // The handle is still usable; line breaks are ignored as by the original.
    let args = json!({"handle_id": h, "bufb64": "YWJj\r\nZGVm", "eof": true});
    assert_eq!(ok(&mut c, "file-write", args), true);
    assert_eq!(fs::read(&p).unwrap(), b"abcdef");
}

#[test]
fn md5_runs_while_pings_answer() {
    let a = agent(&[]);
    let p = a.dir.path().join("sparse");
    fs::File::create(&p)
        .unwrap()
        .set_len(256 * MIB as u64)
        .unwrap();
    let mut c = a.raw();
    let req = json!({"execute": "get-file-md5sum", "arguments": {"path": s(&p)}, "tag": "md5"});
    c.send(format!("{req}\r\n").as_bytes());
    for i in 0..3 {
        let r = c.request(json!({"execute": "ping", "tag": format!("p{i}")}));
        assert_eq!(r["tag"], format!("p{i}"), "ping waited for md5");
    }
    let r = c.recv();
    assert_eq!(r["tag"], "md5");
    assert_eq!(ret(&r), &json!(md5sum(&p)));
    // Errors.
    let (msg, code) = fails(
        &mut c,
        "get-file-md5sum",
        json!({"path": s(&a.dir.path().join("no"))}),
    );
    assert_eq!(code, 2, "{msg}");
    let (msg, code) = fails(&mut c, "get-file-md5sum", json!({"path": s(a.dir.path())}));
    assert_eq!(
        (code, msg),
        (
            21,
            format!("read {}: Is a directory", a.dir.path().display())
        )
    );
}
