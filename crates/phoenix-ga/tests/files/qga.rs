//! The qemu-ga dialect's file commands against the real binary (files in temp dirs,
//! checked with what the OS shows), and side by side with Debian's qemu-ga: the same
//! requests to both, comparing reply shapes and error classes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use phoenix_testkit::{
    b64, qga_call, qga_err, qga_fails, qga_ok, random_bytes, shape, unb64, QemuGa, RawConn,
};
use serde_json::{json, Value};

use crate::helpers::*;

/// Our agent in the qemu-ga dialect, umask 077 (so a mode that comes out right was set
/// exactly).
fn qga_agent() -> TestAgent {
    agent(&["--dialect", "qga"])
}

fn open(c: &mut RawConn, path: &Path, mode: &str) -> i64 {
    qga_ok(c, "guest-file-open", json!({"path": s(path), "mode": mode}))
        .as_i64()
        .expect("a handle")
}

fn read(c: &mut RawConn, h: i64, count: i64) -> Value {
    qga_ok(c, "guest-file-read", json!({"handle": h, "count": count}))
}

fn write(c: &mut RawConn, h: i64, data: &[u8]) -> Value {
    qga_ok(
        c,
        "guest-file-write",
        json!({"handle": h, "buf-b64": b64(data)}),
    )
}

fn close(c: &mut RawConn, h: i64) {
    assert_eq!(
        qga_ok(c, "guest-file-close", json!({"handle": h})),
        json!({})
    );
}

/// `(count, bytes, eof)` of a read reply, checked against each other.
fn chunk(v: &Value) -> (i64, Vec<u8>, bool) {
    let data = unb64(&v["buf-b64"]);
    let count = v["count"].as_i64().unwrap();
    assert_eq!(count, i64::try_from(data.len()).unwrap(), "{v}");
    (count, data, v["eof"].as_bool().unwrap())
}

#[test]
fn every_fopen_mode_reads_writes_creates_and_truncates_as_fopen() {
    let a = qga_agent();
    let d = a.dir.path();
    let mut c = a.raw();
    // (mode, may read, may write, creates, truncates, appends)
    let modes = [
        ("r", true, false, false, false, false),
        ("rb", true, false, false, false, false),
        ("r+", true, true, false, false, false),
        ("rb+", true, true, false, false, false),
        ("r+b", true, true, false, false, false),
        ("w", false, true, true, true, false),
        ("wb", false, true, true, true, false),
        ("w+", true, true, true, true, false),
        ("wb+", true, true, true, true, false),
        ("w+b", true, true, true, true, false),
        ("a", false, true, true, false, true),
        ("ab", false, true, true, false, true),
        ("a+", true, true, true, false, true),
        ("ab+", true, true, true, false, true),
        ("a+b", true, true, true, false, true),
    ];
    for (i, (mode, reads, writes, creates, truncates, appends)) in modes.into_iter().enumerate() {
        let existing = d.join(format!("e{i}"));
        fs::write(&existing, "0123456789").unwrap();
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o640)).unwrap();
        let h = open(&mut c, &existing, mode);
        let r = qga_call(&mut c, "guest-file-read", json!({"handle": h, "count": 4}));
        if reads {
            let (_, data, _) = chunk(&r["return"]);
            let want: &[u8] = if truncates { b"" } else { b"0123" };
            assert_eq!(data, want, "{mode}: {r}");
        } else {
            let (class, desc) = qga_err(&r);
            assert_eq!(class, "GenericError");
            assert!(desc.starts_with("read "), "{mode}: {desc}");
        }
        let w = qga_call(
            &mut c,
            "guest-file-write",
            json!({"handle": h, "buf-b64": b64(b"XY")}),
        );
        if writes {
            assert_eq!(w["return"], json!({"count": 2, "eof": false}), "{mode}");
        } else {
            assert!(qga_err(&w).1.starts_with("write "), "{mode}: {w}");
        }
        close(&mut c, h);
        let got = fs::read(&existing).unwrap();
        let want: &[u8] = match (writes, truncates, appends, reads) {
            (false, _, _, _) => b"0123456789",
            (true, true, _, _) => b"XY",
            (true, false, true, _) => b"0123456789XY",
            // r+: written where the read left off.
            (true, false, false, true) => b"0123XY6789",
            (true, false, false, false) => unreachable!(),
        };
        assert_eq!(got, want, "{mode}");
        assert_eq!(
            mode_of(&existing),
            0o100640,
            "{mode}: an existing file keeps its mode"
        );

        let missing = d.join(format!("m{i}"));
        let r = qga_call(
            &mut c,
            "guest-file-open",
            json!({"path": s(&missing), "mode": mode}),
        );
        if creates {
            close(&mut c, r["return"].as_i64().unwrap());
            // Created rw-r--r-- although the agent's umask is 077.
            assert_eq!(mode_of(&missing), 0o100644, "{mode}");
        } else {
            let (class, desc) = qga_err(&r);
            assert_eq!(class, "GenericError");
            assert_eq!(
                desc,
                format!("open {}: No such file or directory", s(&missing)),
                "{mode}"
            );
            assert!(!missing.exists());
        }
    }
    // No mode: "r".
    let p = d.join("e0");
    let h = qga_ok(&mut c, "guest-file-open", json!({"path": s(&p)}))
        .as_i64()
        .unwrap();
    assert!(qga_err(&qga_call(
        &mut c,
        "guest-file-write",
        json!({"handle": h, "buf-b64": "QQ=="})
    ))
    .1
    .starts_with("write "));
    close(&mut c, h);
}

fn mode_of(p: &Path) -> u32 {
    mode(p)
}

#[test]
fn bad_modes_and_arguments_are_refused_in_qemu_ga_words() {
    let a = qga_agent();
    let p = a.dir.path().join("x");
    let mut c = a.raw();
    for m in ["q", "rw", "br", "rt", "", "re", "rx", "wbb", "R"] {
        let (class, desc) = qga_fails(&mut c, "guest-file-open", json!({"path": s(&p), "mode": m}));
        assert_eq!(class, "GenericError");
        assert_eq!(desc, format!("invalid file open mode '{m}'"));
    }
    assert!(!p.exists(), "a refused mode created the file");
    let cases = [
        ("guest-file-open", json!({}), "Parameter 'path' is missing"),
        (
            "guest-file-open",
            json!({"path": 5}),
            "Invalid parameter type for 'path', expected: string",
        ),
        (
            "guest-file-open",
            json!({"path": "/x", "perm": 420}),
            "Parameter 'perm' is unexpected",
        ),
        (
            "guest-file-read",
            json!({"handle": "1"}),
            "Invalid parameter type for 'handle', expected: integer",
        ),
        (
            "guest-file-read",
            json!({}),
            "Parameter 'handle' is missing",
        ),
        (
            "guest-file-write",
            json!({"handle": 1}),
            "Parameter 'buf-b64' is missing",
        ),
        (
            "guest-file-seek",
            json!({"handle": 1, "offset": 0}),
            "Parameter 'whence' is missing",
        ),
        (
            "guest-file-close",
            json!({"handle": 1.5}),
            "Invalid parameter type for 'handle', expected: integer",
        ),
    ];
    for (cmd, args, want) in cases {
        let (class, desc) = qga_fails(&mut c, cmd, args);
        assert_eq!(
            (class.as_str(), desc.as_str()),
            ("GenericError", want),
            "{cmd}"
        );
    }
}

#[test]
fn unknown_handles_are_not_found_for_every_command() {
    let a = qga_agent();
    let mut c = a.raw();
    let p = a.dir.path().join("f");
    fs::write(&p, "data").unwrap();
    let h = open(&mut c, &p, "r");
    close(&mut c, h);
    for handle in [999, -5, h, 0] {
        let calls = [
            ("guest-file-read", json!({"handle": handle})),
            (
                "guest-file-write",
                json!({"handle": handle, "buf-b64": "!!!"}),
            ),
            (
                "guest-file-seek",
                json!({"handle": handle, "offset": 0, "whence": 7}),
            ),
            ("guest-file-flush", json!({"handle": handle})),
            ("guest-file-close", json!({"handle": handle})),
        ];
        for (cmd, args) in calls {
            let (class, desc) = qga_fails(&mut c, cmd, args);
            // The handle is checked before the other values (invalid base64, whence 7).
            assert_eq!(class, "GenericError", "{cmd}");
            assert_eq!(
                desc,
                format!("handle '{handle}' has not been found"),
                "{cmd}"
            );
        }
    }
}

#[test]
fn reads_count_and_keep_the_handle_open_at_end_of_file() {
    let a = qga_agent();
    let mut c = a.raw();
    let p = a.dir.path().join("ten");
    fs::write(&p, "0123456789").unwrap();
    let h = open(&mut c, &p, "r");
    assert_eq!(chunk(&read(&mut c, h, 4)), (4, b"0123".to_vec(), false));
    assert_eq!(chunk(&read(&mut c, h, 4)), (4, b"4567".to_vec(), false));
    // The read that meets the end says so, and the handle stays open.
    assert_eq!(chunk(&read(&mut c, h, 4)), (2, b"89".to_vec(), true));
    for _ in 0..2 {
        assert_eq!(
            read(&mut c, h, 4),
            json!({"count": 0, "buf-b64": "", "eof": true})
        );
    }
    // count 0 reads nothing and is not end of file.
    assert_eq!(
        read(&mut c, h, 0),
        json!({"count": 0, "buf-b64": "", "eof": false})
    );
    let sought = qga_ok(
        &mut c,
        "guest-file-seek",
        json!({"handle": h, "offset": 0, "whence": "set"}),
    );
    assert_eq!(sought, json!({"position": 0, "eof": false}));
    // Without count: 4096 bytes at most.
    let r = qga_ok(&mut c, "guest-file-read", json!({"handle": h}));
    assert_eq!(chunk(&r), (10, b"0123456789".to_vec(), true));
    for bad in [-1i64, (48 << 20) + 1, i64::MAX] {
        let (class, desc) = qga_fails(
            &mut c,
            "guest-file-read",
            json!({"handle": h, "count": bad}),
        );
        assert_eq!(class, "GenericError");
        assert_eq!(desc, format!("value '{bad}' is invalid for argument count"));
    }
    // The largest count is allowed.
    qga_ok(
        &mut c,
        "guest-file-seek",
        json!({"handle": h, "offset": 5, "whence": 0}),
    );
    assert_eq!(
        chunk(&read(&mut c, h, 48 << 20)),
        (5, b"56789".to_vec(), true)
    );
    close(&mut c, h);

    // A large file, in large reads (the reply is encoded as it is written) and in
    // small ones (answered from the page cache on the reader thread).
    let data = random_bytes(5 * MIB + 123, 7);
    let big = a.dir.path().join("big");
    fs::write(&big, &data).unwrap();
    for count in [3 * MIB, 4096, 65_536] {
        let h = open(&mut c, &big, "rb");
        let mut back = Vec::new();
        loop {
            let (n, bytes, eof) = chunk(&read(&mut c, h, i64::try_from(count).unwrap()));
            back.extend_from_slice(&bytes);
            if eof {
                break;
            }
            assert_eq!(
                n,
                i64::try_from(count).unwrap(),
                "short chunk before the end"
            );
        }
        assert!(back == data, "count {count}");
        close(&mut c, h);
    }
}

#[test]
fn writes_count_and_refuse_what_qemu_ga_refuses() {
    let a = qga_agent();
    let mut c = a.raw();
    let p = a.dir.path().join("w");
    let h = open(&mut c, &p, "w");
    assert_eq!(
        write(&mut c, h, b"hello"),
        json!({"count": 5, "eof": false})
    );
    // count takes the first bytes of the decoded data.
    let w = qga_ok(
        &mut c,
        "guest-file-write",
        json!({"handle": h, "buf-b64": b64(b"world"), "count": 2}),
    );
    assert_eq!(w, json!({"count": 2, "eof": false}));
    for bad in [6i64, -1] {
        let (class, desc) = qga_fails(
            &mut c,
            "guest-file-write",
            json!({"handle": h, "buf-b64": b64(b"world"), "count": bad}),
        );
        assert_eq!(class, "GenericError");
        assert_eq!(desc, format!("value '{bad}' is invalid for argument count"));
    }
    // A character outside the alphabet, and CR (which qemu-ga refuses even where a
    // line break would be allowed).
    for bad in ["a!b=", "aGVs\r\nbG8="] {
        let (class, desc) = qga_fails(
            &mut c,
            "guest-file-write",
            json!({"handle": h, "buf-b64": bad}),
        );
        assert_eq!(
            (class.as_str(), desc.as_str()),
            ("GenericError", "Base64 data contains invalid characters"),
            "{bad:?}"
        );
    }
    // An incomplete last group: qemu-ga drops it silently; we refuse it.
    let (class, desc) = qga_fails(
        &mut c,
        "guest-file-write",
        json!({"handle": h, "buf-b64": "aGVsbG8"}),
    );
    assert_eq!(class, "GenericError");
    assert!(desc.starts_with("Base64 data is invalid"), "{desc}");
    // Line breaks are allowed, and an empty chunk writes nothing.
    let w = qga_ok(
        &mut c,
        "guest-file-write",
        json!({"handle": h, "buf-b64": "IS\nE="}),
    );
    assert_eq!(w["count"], 2);
    assert_eq!(write(&mut c, h, b""), json!({"count": 0, "eof": false}));
    // Written straight to the kernel: visible before any flush or close.
    assert_eq!(fs::read(&p).unwrap(), b"hellowo!!");
    assert_eq!(
        qga_ok(&mut c, "guest-file-flush", json!({"handle": h})),
        json!({})
    );
    close(&mut c, h);
    assert_eq!(fs::read(&p).unwrap(), b"hellowo!!");
    // A read-only handle refuses writes with the OS's reason.
    let h = open(&mut c, &p, "r");
    let (class, desc) = qga_fails(
        &mut c,
        "guest-file-write",
        json!({"handle": h, "buf-b64": "QQ=="}),
    );
    assert_eq!(class, "GenericError");
    assert!(desc.starts_with(&format!("write {}: ", s(&p))), "{desc}");
    close(&mut c, h);
}

#[test]
fn seek_takes_integers_and_names_and_reports_the_position() {
    let a = qga_agent();
    let mut c = a.raw();
    let p = a.dir.path().join("s");
    fs::write(&p, "0123456789").unwrap();
    let h = open(&mut c, &p, "r+");
    let seek = |c: &mut RawConn, offset: i64, whence: Value| {
        qga_call(
            c,
            "guest-file-seek",
            json!({"handle": h, "offset": offset, "whence": whence}),
        )
    };
    let pos = |v: Value| {
        assert_eq!(v["return"]["eof"], false, "{v}");
        v["return"]["position"]
            .as_i64()
            .unwrap_or_else(|| panic!("{v}"))
    };
    assert_eq!(pos(seek(&mut c, 3, json!(0))), 3);
    assert_eq!(pos(seek(&mut c, 2, json!(1))), 5);
    assert_eq!(pos(seek(&mut c, -1, json!(2))), 9);
    assert_eq!(pos(seek(&mut c, 1, json!("set"))), 1);
    assert_eq!(pos(seek(&mut c, 1, json!("cur"))), 2);
    assert_eq!(chunk(&read(&mut c, h, 3)), (3, b"234".to_vec(), false));
    assert_eq!(pos(seek(&mut c, 0, json!("cur"))), 5);
    // Past the end is allowed; a write there extends the file with a hole.
    assert_eq!(pos(seek(&mut c, 5, json!("end"))), 15);
    assert_eq!(
        read(&mut c, h, 4),
        json!({"count": 0, "buf-b64": "", "eof": true})
    );
    write(&mut c, h, b"Z");
    assert_eq!(fs::read(&p).unwrap(), b"0123456789\0\0\0\0\0Z");
    // Before the start: lseek's EINVAL.
    let (class, desc) = qga_err(&seek(&mut c, -100, json!("set")));
    assert_eq!(class, "GenericError");
    assert_eq!(desc, format!("seek {}: Invalid argument", s(&p)));
    let refused = [
        (json!(7), "invalid whence code 7"),
        (json!(-1), "invalid whence code -1"),
        (
            json!("foo"),
            "Parameter 'whence' does not accept value 'foo'",
        ),
        (
            json!(1.5),
            "Invalid parameter type for 'whence', expected: integer",
        ),
        (
            json!(true),
            "Invalid parameter type for 'whence', expected: GuestFileWhence",
        ),
        (
            json!(null),
            "Invalid parameter type for 'whence', expected: GuestFileWhence",
        ),
        (
            json!([0]),
            "Invalid parameter type for 'whence', expected: GuestFileWhence",
        ),
    ];
    for (whence, want) in refused {
        let (class, desc) = qga_err(&seek(&mut c, 0, whence.clone()));
        assert_eq!(
            (class.as_str(), desc.as_str()),
            ("GenericError", want),
            "{whence}"
        );
    }
    // The position did not move.
    assert_eq!(pos(seek(&mut c, 0, json!(1))), 16);
    close(&mut c, h);
}

/// A process holding a FIFO open for writing, writing `data` once told to.
struct FifoWriter(Child);

impl FifoWriter {
    fn start(fifo: &Path) -> Self {
        let child = Command::new("sh")
            .arg("-c")
            .arg("exec 3>\"$1\"; read line; printf %s \"$line\" >&3; sleep 30")
            .arg("sh")
            .arg(fifo)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        FifoWriter(child)
    }

    fn say(&mut self, line: &str) {
        let stdin = self.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for FifoWriter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn fifos_never_block_the_connection() {
    let a = qga_agent();
    let mut c = a.raw();
    let fifo = a.dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // No writer: the open does not wait, and a read is end of file.
    let h = open(&mut c, &fifo, "r");
    assert_eq!(
        read(&mut c, h, 10),
        json!({"count": 0, "buf-b64": "", "eof": true})
    );
    // With a writer that has written nothing yet: nothing now, not end of file (qemu-ga
    // answers EAGAIN as an error); the connection goes on.
    let mut writer = FifoWriter::start(&fifo);
    let deadline = Instant::now() + Duration::from_secs(20);
    // The writer's open completes once a reader exists (ours); wait until it has.
    loop {
        let r = read(&mut c, h, 10);
        if r["eof"] == false {
            assert_eq!(r, json!({"count": 0, "buf-b64": "", "eof": false}));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writer never opened the FIFO"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(qga_ok(&mut c, "guest-ping", Value::Null), json!({}));
    writer.say("ping");
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let (n, bytes, _) = chunk(&read(&mut c, h, 10));
        if n > 0 {
            break bytes;
        }
        assert!(Instant::now() < deadline, "the data never came");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(got, b"ping");
    // A FIFO cannot seek: lseek's ESPIPE.
    let (_, desc) = qga_fails(
        &mut c,
        "guest-file-seek",
        json!({"handle": h, "offset": 0, "whence": 0}),
    );
    assert_eq!(desc, format!("seek {}: Illegal seek", s(&fifo)));
    close(&mut c, h);
    drop(writer);
    // Opening for writing with no reader fails at once (ENXIO) instead of waiting.
    let (class, desc) = qga_fails(
        &mut c,
        "guest-file-open",
        json!({"path": s(&fifo), "mode": "w"}),
    );
    assert_eq!(class, "GenericError");
    assert_eq!(
        desc,
        format!("open {}: No such device or address", s(&fifo))
    );
}

#[test]
fn directories_are_refused_at_open() {
    let a = qga_agent();
    let mut c = a.raw();
    let d = a.dir.path();
    for mode in ["r", "r+", "w", "a+"] {
        let (class, desc) = qga_fails(
            &mut c,
            "guest-file-open",
            json!({"path": s(d), "mode": mode}),
        );
        assert_eq!(class, "GenericError");
        assert_eq!(desc, format!("open {}: Is a directory", s(d)), "{mode}");
    }
}

#[test]
fn handles_are_numbered_from_one_and_never_reused() {
    let a = qga_agent();
    let mut c = a.raw();
    let p = a.dir.path().join("n");
    fs::write(&p, "x").unwrap();
    let first = open(&mut c, &p, "r");
    let second = open(&mut c, &p, "r");
    assert_eq!((first, second), (1, 2));
    close(&mut c, first);
    assert_eq!(open(&mut c, &p, "r"), 3);
    // A second connection sees the same handles (they belong to the agent).
    let mut other = a.raw();
    assert_eq!(
        chunk(&read(&mut other, second, 5)),
        (1, b"x".to_vec(), true)
    );
    close(&mut other, second);
    assert_eq!(
        qga_fails(&mut c, "guest-file-read", json!({"handle": second})).1,
        "handle '2' has not been found"
    );
}

/// The replies of one scripted session of file commands in `dir`, each with a label;
/// handles are taken from the session's own replies.
fn file_session(c: &mut RawConn, dir: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut call = |c: &mut RawConn, label: &str, cmd: &str, args: Value| {
        let reply = qga_call(c, cmd, args);
        out.push((label.to_string(), reply.clone()));
        reply
    };
    let f = dir.join("f.txt");
    let h = call(
        c,
        "open w+",
        "guest-file-open",
        json!({"path": s(&f), "mode": "w+"}),
    );
    let h = h["return"].as_i64().unwrap();
    call(
        c,
        "write",
        "guest-file-write",
        json!({"handle": h, "buf-b64": b64(b"hello world")}),
    );
    call(
        c,
        "write count",
        "guest-file-write",
        json!({"handle": h, "buf-b64": b64(b"abc"), "count": 2}),
    );
    call(
        c,
        "write count too large",
        "guest-file-write",
        json!({"handle": h, "buf-b64": b64(b"abc"), "count": 4}),
    );
    call(
        c,
        "write count negative",
        "guest-file-write",
        json!({"handle": h, "buf-b64": b64(b"abc"), "count": -1}),
    );
    call(
        c,
        "write bad base64",
        "guest-file-write",
        json!({"handle": h, "buf-b64": "a!b="}),
    );
    call(c, "flush", "guest-file-flush", json!({"handle": h}));
    call(
        c,
        "seek set",
        "guest-file-seek",
        json!({"handle": h, "offset": 0, "whence": "set"}),
    );
    call(
        c,
        "read 5",
        "guest-file-read",
        json!({"handle": h, "count": 5}),
    );
    call(c, "read rest", "guest-file-read", json!({"handle": h}));
    call(c, "read at eof", "guest-file-read", json!({"handle": h}));
    call(
        c,
        "read count 0",
        "guest-file-read",
        json!({"handle": h, "count": 0}),
    );
    call(
        c,
        "read count -1",
        "guest-file-read",
        json!({"handle": h, "count": -1}),
    );
    call(
        c,
        "read count too large",
        "guest-file-read",
        json!({"handle": h, "count": (48 << 20) + 1}),
    );
    call(
        c,
        "seek 1 end",
        "guest-file-seek",
        json!({"handle": h, "offset": -1, "whence": 2}),
    );
    call(
        c,
        "seek cur",
        "guest-file-seek",
        json!({"handle": h, "offset": 0, "whence": 1}),
    );
    call(
        c,
        "seek whence 7",
        "guest-file-seek",
        json!({"handle": h, "offset": 0, "whence": 7}),
    );
    call(
        c,
        "seek whence foo",
        "guest-file-seek",
        json!({"handle": h, "offset": 0, "whence": "foo"}),
    );
    call(
        c,
        "seek whence float",
        "guest-file-seek",
        json!({"handle": h, "offset": 0, "whence": 1.5}),
    );
    call(
        c,
        "seek whence bool",
        "guest-file-seek",
        json!({"handle": h, "offset": 0, "whence": true}),
    );
    call(
        c,
        "seek before start",
        "guest-file-seek",
        json!({"handle": h, "offset": -100, "whence": 0}),
    );
    call(
        c,
        "seek no whence",
        "guest-file-seek",
        json!({"handle": h, "offset": 0}),
    );
    call(c, "close", "guest-file-close", json!({"handle": h}));
    call(c, "close again", "guest-file-close", json!({"handle": h}));
    call(c, "read closed", "guest-file-read", json!({"handle": h}));
    call(
        c,
        "open bad mode",
        "guest-file-open",
        json!({"path": s(&f), "mode": "q"}),
    );
    call(
        c,
        "open missing",
        "guest-file-open",
        json!({"path": s(&dir.join("nope"))}),
    );
    call(
        c,
        "open unexpected",
        "guest-file-open",
        json!({"path": s(&f), "x": 1}),
    );
    call(c, "open no path", "guest-file-open", json!({}));
    let r = call(c, "open r", "guest-file-open", json!({"path": s(&f)}));
    let r = r["return"].as_i64().unwrap();
    call(
        c,
        "write read-only",
        "guest-file-write",
        json!({"handle": r, "buf-b64": "QQ=="}),
    );
    call(
        c,
        "read r",
        "guest-file-read",
        json!({"handle": r, "count": 100}),
    );
    call(c, "close r", "guest-file-close", json!({"handle": r}));
    let a = call(
        c,
        "open a",
        "guest-file-open",
        json!({"path": s(&f), "mode": "a"}),
    );
    let a = a["return"].as_i64().unwrap();
    call(
        c,
        "read append-only",
        "guest-file-read",
        json!({"handle": a}),
    );
    call(
        c,
        "write append",
        "guest-file-write",
        json!({"handle": a, "buf-b64": b64(b"!")}),
    );
    call(c, "close a", "guest-file-close", json!({"handle": a}));
    for (label, cmd) in [
        ("unknown read", "guest-file-read"),
        ("unknown flush", "guest-file-flush"),
        ("unknown close", "guest-file-close"),
    ] {
        call(c, label, cmd, json!({"handle": 424242}));
    }
    out
}

/// An error's text with the handle number left out (qemu-ga's count from 1000).
fn no_handle(desc: &Value) -> String {
    let desc = desc.as_str().unwrap();
    match desc.strip_prefix("handle '") {
        Some(rest) => format!(
            "handle 'N{}",
            rest.trim_start_matches(|c: char| c.is_ascii_digit())
        ),
        None => desc.to_string(),
    }
}

#[test]
fn file_commands_side_by_side_with_qemu_ga() {
    let ours = qga_agent();
    let theirs = QemuGa::start(&[], &[]);
    let our_dir = tempfile::tempdir().unwrap();
    let their_dir = tempfile::tempdir().unwrap();
    let mine = file_session(&mut ours.raw(), our_dir.path());
    let qemu = file_session(&mut theirs.raw(), their_dir.path());
    assert_eq!(mine.len(), qemu.len());
    // What the file holds afterwards is the same.
    assert_eq!(
        fs::read(our_dir.path().join("f.txt")).unwrap(),
        fs::read(their_dir.path().join("f.txt")).unwrap()
    );
    // Errors whose words differ on purpose: the guest's failures name the call and the
    // path in our words (the class is the same).
    let own_words = [
        "seek before start",
        "open missing",
        "write read-only",
        "read append-only",
    ];
    for ((label, a), (_, b)) in mine.iter().zip(&qemu) {
        match (a.get("error"), b.get("error")) {
            (None, None) => {
                // The handle numbers differ (qemu-ga counts from 1000); their type does not.
                assert_eq!(
                    shape(&a["return"]),
                    shape(&b["return"]),
                    "{label}: {a} vs {b}"
                );
                if label.starts_with("read")
                    || label.starts_with("seek")
                    || label.starts_with("write")
                {
                    assert_eq!(a["return"], b["return"], "{label}");
                }
            }
            (Some(x), Some(y)) => {
                assert_eq!(x["class"], y["class"], "{label}: {a} vs {b}");
                if !own_words.contains(&label.as_str()) {
                    assert_eq!(no_handle(&x["desc"]), no_handle(&y["desc"]), "{label}");
                }
            }
            _ => panic!("{label}: ours {a}, qemu-ga {b}"),
        }
    }
    // New files: 0644 here, 0666 from qemu-ga (deliberate: not world-writable).
    assert_eq!(mode(&our_dir.path().join("f.txt")) & 0o777, 0o644);
    assert_eq!(mode(&their_dir.path().join("f.txt")) & 0o777, 0o666);
}
