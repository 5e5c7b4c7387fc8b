//! Pipelined transfers: a host that sends a handle's reads or writes without waiting
//! for each reply gets them carried out in the order it sent them.

use std::collections::HashMap;
use std::fs;

use serde_json::{json, Value};

use crate::helpers::*;
use phoenix_testkit::{b64, err, request_line, ret, unb64, RawConn};

/// Sends every request in one write, then collects one reply per request by tag.
fn pipeline(conn: &mut RawConn, requests: &[Value]) -> HashMap<String, Value> {
    let mut bytes = Vec::new();
    for r in requests {
        bytes.extend_from_slice(&request_line(r));
    }
    conn.send(&bytes);
    let mut replies = HashMap::new();
    for _ in requests {
        let reply = conn.recv();
        let tag = reply["tag"].as_str().expect("tag").to_string();
        assert!(
            replies.insert(tag, reply).is_none(),
            "a tag came back twice"
        );
    }
    replies
}

#[test]
fn pipelined_writes_land_in_order() {
    let a = agent(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let mut c = a.raw();
    let h = ret(
        &c.request(json!({"execute": "file-open", "arguments": {"path": s(&path), "mode": "w"}}))
    )
    .as_u64()
    .unwrap();
    let data = random_bytes(300 * 1000 + 17, 5);
    let chunks: Vec<&[u8]> = data.chunks(1000).collect();
    let mut requests: Vec<Value> = chunks
        .iter()
        .enumerate()
        .map(|(i, part)| {
            json!({"execute": "file-write", "tag": format!("w{i}"), "arguments": {
                "handle_id": h, "bufb64": b64(part), "eof": i == chunks.len() - 1}})
        })
        .collect();
    // Other commands still run beside the handle's queue.
    requests.insert(150, json!({"execute": "ping", "tag": "p"}));
    let replies = pipeline(&mut c, &requests);
    for i in 0..chunks.len() {
        assert_eq!(ret(&replies[&format!("w{i}")]), &json!(true), "write {i}");
    }
    ret(&replies["p"]);
    assert!(
        fs::read(&path).unwrap() == data,
        "the file differs from the bytes sent"
    );
}

#[test]
fn pipelined_reads_come_back_in_order_and_stop_at_eof() {
    let a = agent(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in");
    let data = random_bytes(1 << 20, 9);
    fs::write(&path, &data).unwrap();
    let mut c = a.raw();
    let h = ret(&c.request(json!({"execute": "file-open", "arguments": {"path": s(&path)}})))
        .as_u64()
        .unwrap();
    // 64 full chunks, the empty one that says eof, and five past the end.
    let count = 16 << 10;
    let requests: Vec<Value> = (0..70)
        .map(|i| {
            json!({"execute": "file-read", "tag": format!("r{i}"),
                   "arguments": {"handle_id": h, "count": count}})
        })
        .collect();
    let replies = pipeline(&mut c, &requests);
    let mut back = Vec::new();
    for i in 0..65 {
        let r = ret(&replies[&format!("r{i}")]);
        let part = unb64(&r["bufb64"]);
        assert_eq!(part.len(), if i < 64 { count } else { 0 }, "read {i}");
        assert_eq!(r["eof"], json!(i == 64), "read {i}");
        back.extend_from_slice(&part);
    }
    assert!(back == data, "the chunks do not add up to the file");
    for i in 65..70 {
        let (msg, code) = err(&replies[&format!("r{i}")]);
        assert_eq!(code, 9, "read {i} after eof: {msg}");
    }
}

/// Small reads are tried on the reader thread without blocking (RWF_NOWAIT); a file
/// whose pages were dropped from the page cache makes some of them fall back to the
/// pool, some halfway through. The bytes must come back whole and in place.
#[test]
fn reads_of_a_file_partly_out_of_the_page_cache_come_back_whole() {
    use std::os::fd::AsRawFd;
    let a = agent(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold");
    let data = random_bytes(8 << 20, 11);
    fs::write(&path, &data).unwrap();
    for count in [4096, 65_536, 65_535] {
        let f = fs::File::open(&path).unwrap();
        f.sync_all().unwrap();
        nix::fcntl::posix_fadvise(
            f.as_raw_fd(),
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .unwrap();
        let mut c = a.raw();
        let h = ret(&c.request(json!({"execute": "file-open", "arguments": {"path": s(&path)}})))
            .as_u64()
            .unwrap();
        let mut back = Vec::new();
        loop {
            let r = c.request(json!({"execute": "file-read",
                                     "arguments": {"handle_id": h, "count": count}}));
            let r = ret(&r);
            let part = unb64(&r["bufb64"]);
            assert!(
                r["eof"] == json!(true) || part.len() == count,
                "short chunk"
            );
            back.extend_from_slice(&part);
            if r["eof"] == json!(true) {
                break;
            }
        }
        assert!(
            back == data,
            "count {count}: the chunks do not add up to the file"
        );
    }
}

/// A small read of a file whose data is in memory (cached from disk, or on tmpfs, which
/// has no RWF_NOWAIT) is answered on the reader thread: it overtakes an MD5 of 8 GiB
/// that holds the only worker.
#[test]
fn small_reads_of_cached_and_tmpfs_files_overtake_a_busy_pool() {
    let a = agent(&["--max-workers", "1"]);
    let tmpfs = phoenix_testkit::Tmpfs::new("16m");
    let disk = tempfile::tempdir().unwrap();
    let data = random_bytes(8192, 21);
    let mut c = a.raw();
    let mut handles = Vec::new();
    for dir in [tmpfs.path(), disk.path()] {
        let path = dir.join("small");
        fs::write(&path, &data).unwrap();
        let open = json!({"execute": "file-open", "arguments": {"path": s(&path)}});
        handles.push(ret(&c.request(open)).as_u64().unwrap());
    }
    let sparse = tmpfs.path().join("sparse");
    fs::File::create(&sparse).unwrap().set_len(8 << 30).unwrap();
    for (i, h) in handles.into_iter().enumerate() {
        let replies = [
            json!({"execute": "get-file-md5sum", "tag": "md5", "arguments": {"path": s(&sparse)}}),
            json!({"execute": "file-read", "tag": "read",
                   "arguments": {"handle_id": h, "count": 4096}}),
        ];
        let mut bytes = Vec::new();
        for r in &replies {
            bytes.extend_from_slice(&request_line(r));
        }
        c.send(&bytes);
        let first = c.recv();
        assert_eq!(first["tag"], "read", "file {i}: the read waited: {first}");
        assert!(unb64(&ret(&first)["bufb64"]) == data[..4096], "file {i}");
    }
}
