//! Differential: Debian's qemu-ga and ours (qga dialect) given the same harmless
//! commands and the same bad arguments: the same reply shapes and values, the same
//! error classes and descriptions.

use std::time::{Duration, Instant};

use phoenix_testkit::{qga_call, QemuGa};
use serde_json::{json, Value};

use crate::helpers::*;

/// `guest-exec` then `guest-exec-status` polled until the exit, on `c`.
fn run(c: &mut RawConn, args: &Value) -> Value {
    let pid = qga_call(c, "guest-exec", args.clone())["return"]["pid"].clone();
    assert!(pid.is_i64(), "{args}: {pid}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = qga_call(c, "guest-exec-status", json!({"pid": pid}));
        if s["return"]["exited"] == true {
            // The status that reports the exit forgot the pid.
            let again = qga_call(c, "guest-exec-status", json!({"pid": pid}));
            assert_eq!(again["error"]["class"], "GenericError", "{again}");
            return s;
        }
        assert!(Instant::now() < deadline, "{args}: never exited");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_same_replies_as_qemu_ga() {
    let theirs = QemuGa::start(&[], &[]);
    let ours = Ga::start(Dialect::Qga);
    let (mut t, mut o) = (theirs.raw(), ours.conn());
    for args in [
        json!({"path": "/bin/true"}),
        json!({"path": "/bin/false"}),
        json!({"path": "/bin/echo", "arg": ["hi"], "capture-output": true}),
        json!({"path": "/bin/echo", "arg": ["hi"], "capture-output": "separated"}),
        json!({"path": "/bin/echo", "arg": ["hi"], "capture-output": "merged"}),
        json!({"path": "/bin/echo", "arg": ["hi"], "capture-output": "stdout"}),
        json!({"path": "/bin/echo", "arg": ["hi"]}),
        json!({"path": "/bin/sh", "arg": ["-c", "echo a; echo b >&2; exit 4"], "capture-output": true}),
        json!({"path": "/bin/sh", "arg": ["-c", "kill -9 $$"]}),
        json!({"path": "/bin/echo", "arg": ["x"], "env": ["A=1"], "capture-output": true}),
    ] {
        let (a, b) = (run(&mut t, &args), run(&mut o, &args));
        assert_eq!(b, a, "{args}");
    }
}

#[test]
fn the_same_errors_as_qemu_ga() {
    let theirs = QemuGa::start(&[], &[]);
    let ours = Ga::start(Dialect::Qga);
    let (mut t, mut o) = (theirs.raw(), ours.conn());
    let cases = [
        ("guest-exec", json!({})),
        ("guest-exec", json!({"path": "/nonexistent/x"})),
        ("guest-exec", json!({"path": "nonexistent-cmd"})),
        ("guest-exec", json!({"path": "/tmp"})),
        ("guest-exec", json!({"path": 5})),
        ("guest-exec", json!({"path": "/bin/true", "arg": "x"})),
        ("guest-exec", json!({"path": "/bin/true", "arg": [1]})),
        ("guest-exec", json!({"path": "/bin/true", "env": "x"})),
        (
            "guest-exec",
            json!({"path": "/bin/true", "input-data": "!!!"}),
        ),
        (
            "guest-exec",
            json!({"path": "/bin/true", "capture-output": "bogus"}),
        ),
        (
            "guest-exec",
            json!({"path": "/bin/true", "capture-output": 1}),
        ),
        (
            "guest-exec",
            json!({"path": "/bin/true", "capture-output": null}),
        ),
        ("guest-exec", json!({"path": "/bin/true", "extra": 1})),
        ("guest-exec-status", json!({})),
        ("guest-exec-status", json!({"pid": "x"})),
        ("guest-exec-status", json!({"pid": 1.5})),
        ("guest-exec-status", json!({"pid": 1, "extra": 1})),
    ];
    for (name, args) in cases {
        let (a, b) = (
            qga_call(&mut t, name, args.clone()),
            qga_call(&mut o, name, args.clone()),
        );
        assert_eq!(
            b["error"]["class"], a["error"]["class"],
            "{name} {args}: {a} / {b}"
        );
        assert!(a["error"]["desc"].is_string(), "{name} {args}: {a}");
        assert_eq!(b["error"]["desc"], a["error"]["desc"], "{name} {args}");
    }
    // An unknown pid: the same class; qemu-ga's text has a format bug ("PID ld").
    for pid in [-1, 999_999_999] {
        let args = json!({"pid": pid});
        let a = qga_call(&mut t, "guest-exec-status", args.clone());
        let b = qga_call(&mut o, "guest-exec-status", args.clone());
        assert_eq!(
            b["error"]["class"], a["error"]["class"],
            "{args}: {a} / {b}"
        );
        assert_eq!(b["error"]["desc"], format!("PID {pid} does not exist"));
    }
}
