//! File and directory commands against the real binary, checked against what the OS
//! shows afterwards (contents, md5sum, lstat).

mod common;

use std::borrow::Cow;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::{err, ret, RawConn, TestAgent};
use phoenix_client::Client;
use phoenix_proto::types::files::{FileReadResult, FileWrite};
use serde_json::{json, Value};

const MIB: usize = 1 << 20;

/// An agent whose umask is 077, so perms that come out right were set exactly.
fn agent(args: &[&str]) -> TestAgent {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 077; exec \"$@\"", "sh"]);
    TestAgent::unix_with(cmd, args)
}

/// An agent running as nobody, listening in `dir` (which nobody must own).
fn agent_as_nobody(dir: tempfile::TempDir) -> TestAgent {
    let sock: PathBuf = dir.path().join("ga.sock");
    let child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            common::AGENT,
        ])
        .args(["-m", "unix-listen", "-p"])
        .arg(&sock)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn setpriv phoenix-ga");
    let a = TestAgent { child, dir, sock };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&a.sock).is_err() {
        assert!(Instant::now() < deadline, "agent did not start listening");
        std::thread::sleep(Duration::from_millis(5));
    }
    a
}

fn call(c: &mut RawConn, name: &str, args: Value) -> Value {
    c.request(json!({"execute": name, "arguments": args}))
}

fn ok(c: &mut RawConn, name: &str, args: Value) -> Value {
    ret(&call(c, name, args)).clone()
}

fn fails(c: &mut RawConn, name: &str, args: Value) -> (String, i64) {
    err(&call(c, name, args))
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode()
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
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

/// md5 of a file as coreutils computes it.
fn md5sum(p: &Path) -> String {
    let out = Command::new("md5sum").arg(p).output().expect("md5sum");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..32].to_string()
}

fn md5_of(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

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
            bufb64: Cow::Owned(STANDARD.encode(part)),
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
fn open_perms_are_exact_whatever_the_umask() {
    let a = agent(&[]);
    let d = a.dir.path();
    let mut c = a.raw();
    let h = ok(
        &mut c,
        "file-open",
        json!({"path": s(&d.join("def")), "mode": "w"}),
    );
    ok(&mut c, "file-close", json!({"handle_id": h}));
    assert_eq!(mode(&d.join("def")), 0o100644);
    for perm in [0o600u32, 0o755, 0o4750, 0o666] {
        let p = d.join(format!("p{perm:o}"));
        let h = ok(
            &mut c,
            "file-open",
            json!({"path": s(&p), "mode": "w", "perm": perm}),
        );
        ok(&mut c, "file-close", json!({"handle_id": h}));
        assert_eq!(mode(&p), 0o100000 | perm, "perm {perm:o}");
    }
    // An existing file is truncated and keeps its permissions.
    let p = d.join("existing");
    fs::write(&p, "old contents").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    let h = ok(
        &mut c,
        "file-open",
        json!({"path": s(&p), "mode": "w", "perm": 511}),
    );
    ok(&mut c, "file-close", json!({"handle_id": h}));
    assert_eq!(mode(&p), 0o100640);
    assert_eq!(fs::metadata(&p).unwrap().len(), 0);
    // Close-on-exec.
    let h = ok(&mut c, "file-open", json!({"path": s(&p)}));
    let fds: Vec<_> = fs::read_dir(format!("/proc/{}/fd", a.pid()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|l| fs::read_link(l).is_ok_and(|t| t == p))
        .collect();
    assert_eq!(fds.len(), 1);
    let fd = fds[0].file_name().unwrap().to_str().unwrap().to_string();
    let info = fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", a.pid())).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .unwrap()
        .trim();
    let flags = u32::from_str_radix(flags, 8).unwrap();
    assert_ne!(flags & libc::O_CLOEXEC as u32, 0, "not close-on-exec");
    ok(&mut c, "file-close", json!({"handle_id": h}));
}

#[test]
fn open_argument_errors() {
    let a = agent(&[]);
    let p = a.dir.path().join("x");
    let mut c = a.raw();
    for m in ["a", "", "rw", "W"] {
        let (msg, code) = fails(&mut c, "file-open", json!({"path": s(&p), "mode": m}));
        assert_eq!(code, -1);
        assert!(msg.contains("mode must be"), "{msg}");
    }
    let (msg, code) = fails(
        &mut c,
        "file-open",
        json!({"path": s(&p), "mode": "w", "perm": 4096}),
    );
    assert_eq!(code, -1, "{msg}");
    let (_, code) = fails(
        &mut c,
        "file-open",
        json!({"path": s(&p), "mode": "w", "perm": "420"}),
    );
    assert_eq!(code, -1);
    assert_eq!(fails(&mut c, "file-open", json!({"mode": "r"})).1, -1);
    assert!(!p.exists(), "a refused open created the file");
}

#[test]
fn open_errors_carry_errno_and_path() {
    let a = agent(&[]);
    let d = a.dir.path();
    let file = d.join("file");
    fs::write(&file, "x").unwrap();
    let mut c = a.raw();
    let cases = [
        (d.join("missing"), "r", 2, "No such file or directory"),
        (d.join("no/such"), "w", 2, "No such file or directory"),
        (d.to_path_buf(), "r", 21, "Is a directory"),
        (d.to_path_buf(), "w", 21, "Is a directory"),
        (file.join("x"), "r", 20, "Not a directory"),
        (file.join("x"), "w", 20, "Not a directory"),
    ];
    for (path, m, code, desc) in cases {
        let (msg, got) = fails(&mut c, "file-open", json!({"path": s(&path), "mode": m}));
        assert_eq!(got, code, "{}: {msg}", path.display());
        assert_eq!(msg, format!("open {}: {desc}", path.display()));
    }
}

#[test]
fn eacces_as_an_unprivileged_user() {
    let top = tempfile::tempdir().unwrap();
    fs::set_permissions(top.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let secret = top.path().join("secret");
    fs::write(&secret, "root only").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let closed = top.path().join("closed");
    fs::create_dir(&closed).unwrap();
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
    // The agent's own directory, owned by nobody.
    let dir = tempfile::tempdir_in(top.path()).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let a = agent_as_nobody(dir);
    let mut c = a.raw();
    let t = |p: &Path| s(p);
    let cases = [
        ("file-open", json!({"path": t(&secret)}), "open", &secret),
        (
            "file-open",
            json!({"path": t(&top.path().join("new")), "mode": "w"}),
            "open",
            &top.path().join("new"),
        ),
        (
            "get-file-md5sum",
            json!({"path": t(&secret)}),
            "open",
            &secret,
        ),
        (
            "directory-list",
            json!({"path": t(&closed)}),
            "open",
            &closed,
        ),
        (
            "directory-create",
            json!({"path": t(&top.path().join("d/e"))}),
            "mkdir",
            &top.path().join("d"),
        ),
        (
            "file-stat",
            json!({"path": t(&closed.join("x"))}),
            "lstat",
            &closed.join("x"),
        ),
    ];
    for (cmd, args, op, path) in cases {
        let (msg, code) = fails(&mut c, cmd, args);
        assert_eq!(code, 13, "{cmd}: {msg}");
        assert_eq!(msg, format!("{op} {}: Permission denied", path.display()));
    }
    // Not the owner: chmod and chown are EPERM.
    let (msg, code) = fails(
        &mut c,
        "file-chmod",
        json!({"path": t(&secret), "perm": 511}),
    );
    assert_eq!(
        (code, msg),
        (
            1,
            format!("chmod {}: Operation not permitted", secret.display())
        )
    );
    assert_eq!(
        fails(
            &mut c,
            "file-chown",
            json!({"path": t(&secret), "uid": 65534})
        )
        .1,
        1
    );
    assert_eq!(mode(&secret), 0o100600);
}

#[test]
fn etxtbsy_and_force() {
    let a = agent(&[]);
    let prog = a.dir.path().join("prog");
    fs::copy("/bin/sleep", &prog).unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    let mut running = Command::new(&prog).arg("60").spawn().unwrap();
    let ino = fs::metadata(&prog).unwrap().ino();
    let mut c = a.raw();
    let (msg, code) = fails(&mut c, "file-open", json!({"path": s(&prog), "mode": "w"}));
    assert_eq!(
        (code, msg),
        (26, format!("open {}: Text file busy", prog.display()))
    );
    assert_eq!(fs::metadata(&prog).unwrap().ino(), ino);
    let h = ok(
        &mut c,
        "file-open",
        json!({"path": s(&prog), "mode": "w", "force": true, "perm": 448}),
    );
    let args = json!({"handle_id": h, "bufb64": STANDARD.encode("#!/bin/sh\n"), "eof": true});
    assert_eq!(ok(&mut c, "file-write", args), true);
    let meta = fs::metadata(&prog).unwrap();
    assert_ne!(meta.ino(), ino, "not a new file");
    assert_eq!(meta.mode(), 0o100700);
    assert_eq!(fs::read(&prog).unwrap(), b"#!/bin/sh\n");
    assert!(
        running.try_wait().unwrap().is_none(),
        "the running program was disturbed"
    );
    running.kill().unwrap();
    running.wait().unwrap();
}

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

fn check_stat(st: &Value, p: &Path) {
    let m = fs::symlink_metadata(p).unwrap();
    let keys: Vec<&str> = st.as_object().unwrap().keys().map(String::as_str).collect();
    let mut keys = keys;
    keys.sort_unstable();
    let mut want = [
        "Dev",
        "Ino",
        "Nlink",
        "Mode",
        "Uid",
        "Gid",
        "X__pad0",
        "Rdev",
        "Size",
        "Blksize",
        "Blocks",
        "Atim",
        "Mtim",
        "Ctim",
        "X__unused",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(st["Dev"], m.dev());
    assert_eq!(st["Ino"], m.ino());
    assert_eq!(st["Nlink"], m.nlink());
    assert_eq!(st["Mode"], m.mode());
    assert_eq!(st["Uid"], m.uid());
    assert_eq!(st["Gid"], m.gid());
    assert_eq!(st["Rdev"], m.rdev());
    assert_eq!(st["Size"], m.size());
    assert_eq!(st["Blksize"], m.blksize());
    assert_eq!(st["Blocks"], m.blocks());
    assert_eq!(
        st["Mtim"],
        json!({"Sec": m.mtime(), "Nsec": m.mtime_nsec()})
    );
    assert_eq!(
        st["Ctim"],
        json!({"Sec": m.ctime(), "Nsec": m.ctime_nsec()})
    );
    assert_eq!(
        st["Atim"],
        json!({"Sec": m.atime(), "Nsec": m.atime_nsec()})
    );
    assert_eq!(st["X__pad0"], 0);
    assert_eq!(st["X__unused"], json!([0, 0, 0]));
}

#[test]
fn file_stat_is_lstat_with_go_keys() {
    let a = agent(&[]);
    let d = a.dir.path();
    let f = d.join("f");
    fs::write(&f, "12345").unwrap();
    let sub = d.join("sub");
    fs::create_dir(&sub).unwrap();
    let link = d.join("link");
    std::os::unix::fs::symlink(&sub, &link).unwrap();
    let mut c = a.raw();
    let r = ok(&mut c, "file-stat", json!({"path": s(&f)}));
    assert_eq!((&r["name"], &r["isdir"]), (&json!("f"), &json!(false)));
    check_stat(&r["stat"], &f);
    assert_eq!(r["stat"]["Size"], 5);
    let r = ok(
        &mut c,
        "file-stat",
        json!({"path": format!("{}/", s(&sub))}),
    );
    assert_eq!((&r["name"], &r["isdir"]), (&json!("sub"), &json!(true)));
    check_stat(&r["stat"], &sub);
    let r = ok(&mut c, "file-stat", json!({"path": s(&link)}));
    assert_eq!((&r["name"], &r["isdir"]), (&json!("link"), &json!(false)));
    check_stat(&r["stat"], &link);
    assert_eq!(
        r["stat"]["Mode"].as_u64().unwrap() as u32 & libc::S_IFMT,
        libc::S_IFLNK
    );
    let r = ok(&mut c, "file-stat", json!({"path": "/"}));
    assert_eq!((&r["name"], &r["isdir"]), (&json!("/"), &json!(true)));
    let (msg, code) = fails(&mut c, "file-stat", json!({"path": s(&d.join("no"))}));
    assert_eq!(
        (code, msg),
        (
            2,
            format!(
                "lstat {}: No such file or directory",
                d.join("no").display()
            )
        )
    );
    assert_eq!(
        fails(&mut c, "file-stat", json!({"path": s(&f.join("x"))})).1,
        20
    );
    assert_eq!(fails(&mut c, "file-stat", json!({})).1, -1);
}

#[test]
fn chown_and_chmod() {
    let a = agent(&[]);
    let f = a.dir.path().join("f");
    fs::write(&f, "x").unwrap();
    let mut c = a.raw();
    let own = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(
        ok(
            &mut c,
            "file-chown",
            json!({"path": s(&f), "uid": 65534, "gid": 100})
        ),
        true
    );
    assert_eq!(own(&f), (65534, 100));
    assert_eq!(
        ok(
            &mut c,
            "file-chown",
            json!({"path": s(&f), "uid": -1, "gid": 65534})
        ),
        true
    );
    assert_eq!(own(&f), (65534, 65534));
    assert_eq!(ok(&mut c, "file-chown", json!({"path": s(&f)})), true);
    assert_eq!(own(&f), (0, 0));
    for bad in [
        json!({"path": s(&f), "uid": "1"}),
        json!({"path": s(&f), "gid": -2}),
        json!({"uid": 1}),
    ] {
        assert_eq!(fails(&mut c, "file-chown", bad).1, -1);
    }
    assert_eq!(own(&f), (0, 0));
    let (msg, code) = fails(
        &mut c,
        "file-chown",
        json!({"path": s(&f.with_extension("no"))}),
    );
    assert_eq!(
        (code, msg),
        (
            2,
            format!(
                "chown {}: No such file or directory",
                f.with_extension("no").display()
            )
        )
    );

    for perm in [0o640u32, 0o4755, 0o7777, 0] {
        assert_eq!(
            ok(&mut c, "file-chmod", json!({"path": s(&f), "perm": perm})),
            true
        );
        assert_eq!(mode(&f), 0o100000 | perm);
    }
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    let (msg, code) = fails(&mut c, "file-chmod", json!({"path": s(&f)}));
    assert_eq!(code, -1);
    assert!(msg.contains("missing field `perm`"), "{msg}");
    assert_eq!(
        fails(&mut c, "file-chmod", json!({"path": s(&f), "perm": 4096})).1,
        -1
    );
    assert_eq!(mode(&f), 0o100640);
    let (_, code) = fails(
        &mut c,
        "file-chmod",
        json!({"path": s(&f.join("x")), "perm": 420}),
    );
    assert_eq!(code, 20);
}

#[test]
fn directory_create_is_mkdir_p_with_exact_perms() {
    let a = agent(&[]);
    let d = a.dir.path();
    let mut c = a.raw();
    let deep = d.join("a/b/c");
    assert_eq!(
        ok(&mut c, "directory-create", json!({"path": s(&deep)})),
        true
    );
    for p in [d.join("a"), d.join("a/b"), deep.clone()] {
        assert_eq!(mode(&p), 0o40755, "{}", p.display());
    }
    let x = d.join("x/y");
    assert_eq!(
        ok(
            &mut c,
            "directory-create",
            json!({"path": s(&x), "perm": 0o750})
        ),
        true
    );
    assert_eq!((mode(&d.join("x")), mode(&x)), (0o40750, 0o40750));
    // Existing: true, left as it is.
    assert_eq!(
        ok(
            &mut c,
            "directory-create",
            json!({"path": s(&x), "perm": 0o700})
        ),
        true
    );
    assert_eq!(mode(&x), 0o40750);
    let f = d.join("file");
    fs::write(&f, "").unwrap();
    let (msg, code) = fails(&mut c, "directory-create", json!({"path": s(&f)}));
    assert_eq!(
        (code, msg),
        (20, format!("mkdir {}: Not a directory", f.display()))
    );
    assert_eq!(
        fails(
            &mut c,
            "directory-create",
            json!({"path": s(&f.join("sub"))})
        )
        .1,
        20
    );
    let dangling = d.join("dangling");
    std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
    let (msg, code) = fails(&mut c, "directory-create", json!({"path": s(&dangling)}));
    assert_eq!(
        (code, msg),
        (17, format!("mkdir {}: File exists", dangling.display()))
    );
    assert_eq!(
        fails(
            &mut c,
            "directory-create",
            json!({"path": s(&d.join("p")), "perm": 4096})
        )
        .1,
        -1
    );
    assert!(!d.join("p").exists());
}

#[test]
fn directory_list_lstats_and_honours_n() {
    let a = agent(&[]);
    let d = a.dir.path().join("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("f1"), "abc").unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink(d.join("sub"), d.join("link")).unwrap();
    std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangle")).unwrap();
    let mut c = a.raw();
    let list = ok(&mut c, "directory-list", json!({"path": s(&d)}));
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["dangle", "f1", "link", "sub"]);
    for e in list.as_array().unwrap() {
        let p = d.join(e["name"].as_str().unwrap());
        check_stat(&e["stat"], &p);
        assert_eq!(e["isdir"], e["name"] == "sub");
    }
    for (n, want) in [(0, 4), (-1, 4), (2, 2), (1, 1), (100, 4)] {
        let list = ok(&mut c, "directory-list", json!({"path": s(&d), "n": n}));
        assert_eq!(list.as_array().unwrap().len(), want, "n = {n}");
    }
    let empty = a.dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert_eq!(
        ok(&mut c, "directory-list", json!({"path": s(&empty)})),
        json!([])
    );
    let (msg, code) = fails(&mut c, "directory-list", json!({"path": s(&d.join("f1"))}));
    assert_eq!(
        (code, msg),
        (
            20,
            format!("open {}: Not a directory", d.join("f1").display())
        )
    );
    assert_eq!(
        fails(&mut c, "directory-list", json!({"path": s(&d.join("no"))})).1,
        2
    );
    assert_eq!(
        fails(&mut c, "directory-list", json!({"path": s(&d), "n": "1"})).1,
        -1
    );
}

#[test]
fn directory_list_of_100000_files() {
    let a = agent(&[]);
    let d = a.dir.path().join("many");
    fs::create_dir(&d).unwrap();
    for i in 0..100_000 {
        fs::File::create(d.join(format!("f{i}"))).unwrap();
    }
    let mut c = a.raw();
    let list = ok(&mut c, "directory-list", json!({"path": s(&d)}));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 100_000);
    let names: std::collections::HashSet<&str> =
        list.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 100_000);
    assert!(names.contains("f99999"));
    let some = ok(&mut c, "directory-list", json!({"path": s(&d), "n": 10}));
    assert_eq!(some.as_array().unwrap().len(), 10);
}

#[test]
fn reference_documents_every_file_command() {
    let a = agent(&[]);
    let names: Vec<String> = a.client().commands().unwrap();
    let doc = include_str!("../../../docs/commands/files.md");
    let ours: Vec<&String> = names
        .iter()
        .filter(|n| {
            n.starts_with("file-") || n.starts_with("directory-") || *n == "get-file-md5sum"
        })
        .collect();
    assert_eq!(ours.len(), 10, "{ours:?}");
    for n in ours {
        assert!(
            doc.contains(&format!("## `{n}`")),
            "{n} missing from docs/commands/files.md"
        );
    }
}
