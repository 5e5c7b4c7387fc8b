//! qemu-ga's contract, with only qemu-ga's arguments, in both dialects: the output
//! comes with the status that reports the exit, which forgets the pid; capture modes;
//! exit codes and signals; the errors a host sees.

use serde_json::json;

use crate::helpers::*;

#[test]
fn the_exit_comes_with_the_output_and_forgets_the_pid() {
    for d in BOTH {
        let mut ga = Ga::start(d);
        let pid = ga.exec(json!({"path": "/bin/echo", "arg": ["hi"], "capture-output": true}));
        let s = ga.run(json!({"path": "/bin/false"}));
        assert_eq!(s, json!({"exited": true, "exitcode": 1}), "{d:?}");
        // Polled as qemu-ga's hosts poll, without `wait`.
        let s = loop {
            let s = ga.ok("guest-exec-status", json!({"pid": pid}));
            if s["exited"] == true {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(
            s,
            json!({"exited": true, "exitcode": 0, "out-data": "aGkK"}),
            "{d:?}"
        );
        let f = ga.fails("guest-exec-status", json!({"pid": pid}));
        assert_eq!(f.message, format!("PID {pid} does not exist"), "{d:?}");
        match d {
            Dialect::Qga => assert_eq!(f.class.as_deref(), Some("GenericError")),
            Dialect::Phoenix => assert_eq!(f.code, Some(3), "ESRCH"),
        }
        assert!(zombies(ga.agent.pid()).is_empty());
    }
}

#[test]
fn capture_modes() {
    let mut ga = Ga::start(Dialect::Qga);
    let script = "echo out; echo err >&2";
    let mut run = |mode: serde_json::Value| {
        ga.run(json!({"path": "/bin/sh", "arg": ["-c", script], "capture-output": mode}))
    };
    let s = run(json!(true));
    assert_eq!(
        (data(&s, "out-data"), data(&s, "err-data")),
        (b"out\n".to_vec(), b"err\n".to_vec())
    );
    let s = run(json!("separated"));
    assert_eq!(
        (data(&s, "out-data"), data(&s, "err-data")),
        (b"out\n".to_vec(), b"err\n".to_vec())
    );
    let s = run(json!("stdout"));
    assert_eq!(
        s,
        json!({"exited": true, "exitcode": 0, "out-data": b64s("out\n")})
    );
    // qemu-ga 10.0.2 never reports this one as exited.
    let s = run(json!("stderr"));
    assert_eq!(
        s,
        json!({"exited": true, "exitcode": 0, "err-data": b64s("err\n")})
    );
    let s = run(json!("merged"));
    assert_eq!(
        s,
        json!({"exited": true, "exitcode": 0, "out-data": b64s("out\nerr\n")})
    );
    for none in [json!(false), json!("none")] {
        assert_eq!(run(none), json!({"exited": true, "exitcode": 0}));
    }
}

#[test]
fn signals_exit_codes_environment_and_input() {
    for d in BOTH {
        let mut ga = Ga::start(d);
        let s = ga.run(json!({"path": "/bin/sh", "arg": ["-c", "kill -9 $$"]}));
        assert_eq!(s, json!({"exited": true, "signal": 9}), "{d:?}");
        let s = ga.run(json!({"path": "sh", "arg": ["-c", "exit 77"]}));
        assert_eq!(s["exitcode"], 77, "a name is looked up in PATH");
        // The environment given is the whole environment, plus a PATH.
        let s = ga.run(json!({"path": "/usr/bin/env", "env": ["A=1", "B=x y"],
                              "capture-output": true}));
        let env = String::from_utf8(data(&s, "out-data")).unwrap();
        let mut lines: Vec<&str> = env.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "A=1",
                "B=x y",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            ]
        );
        // input-data reaches standard input, and its end closes it (qemu-ga 10.0.2
        // gives the child a closed descriptor instead).
        let s = ga.run(json!({"path": "/bin/cat", "input-data": b64s("hello"),
                              "capture-output": true}));
        assert_eq!(
            s,
            json!({"exited": true, "exitcode": 0, "out-data": b64s("hello")})
        );
        // Without it, standard input is /dev/null.
        let s = ga.run(json!({"path": "/bin/cat", "capture-output": true}));
        assert_eq!(s, json!({"exited": true, "exitcode": 0}));
        // Unpadded base64, as GLib takes it.
        let s = ga.run(json!({"path": "/bin/cat", "input-data": "aGVsbG8",
                              "capture-output": true}));
        assert_eq!(data(&s, "out-data"), b"hello");
    }
}

#[test]
fn errors_are_qemu_ga_s() {
    let mut ga = Ga::start(Dialect::Qga);
    let cases = [
        (
            json!({"path": "/nonexistent/x"}),
            "Failed to execute child process “/nonexistent/x” (No such file or directory)",
        ),
        (
            json!({"path": "nonexistent-cmd"}),
            "Failed to execute child process “nonexistent-cmd” (No such file or directory)",
        ),
        (
            json!({"path": "/tmp"}),
            "Failed to execute child process “/tmp” (Permission denied)",
        ),
        (
            json!({"path": "/bin/cat", "input-data": "!!!"}),
            "Base64 data contains invalid characters",
        ),
        (json!({}), "Parameter 'path' is missing"),
        (
            json!({"path": "/bin/true", "capture-output": "bogus"}),
            "Parameter 'capture-output' does not accept value 'bogus'",
        ),
        (
            json!({"path": "/bin/true", "capture-output": 1}),
            "Invalid parameter type for 'capture-output', expected: GuestExecCaptureOutput",
        ),
        (
            json!({"path": "/bin/true", "arg": "x"}),
            "Invalid parameter type for 'arg', expected: array",
        ),
        (
            json!({"path": "/bin/true", "extra": 1}),
            "Parameter 'extra' is unexpected",
        ),
    ];
    for (args, desc) in cases {
        let f = ga.fails("guest-exec", args.clone());
        assert_eq!(
            (f.class.as_deref(), f.message.as_str()),
            (Some("GenericError"), desc),
            "{args}"
        );
    }
    for (args, desc) in [
        (json!({}), "Parameter 'pid' is missing"),
        (
            json!({"pid": "x"}),
            "Invalid parameter type for 'pid', expected: integer",
        ),
        (json!({"pid": -1}), "PID -1 does not exist"),
        (json!({"pid": 999999999}), "PID 999999999 does not exist"),
    ] {
        let f = ga.fails("guest-exec-status", args.clone());
        assert_eq!(
            (f.class.as_deref(), f.message.as_str()),
            (Some("GenericError"), desc),
            "{args}"
        );
    }
    // The Phoenix dialect: the errno of the failing call.
    let mut ph = Ga::start(Dialect::Phoenix);
    assert_eq!(
        ph.fails("guest-exec", json!({"path": "/nonexistent/x"}))
            .code,
        Some(2)
    );
    assert_eq!(
        ph.fails("guest-exec", json!({"path": "/tmp"})).code,
        Some(13)
    );
    assert_eq!(
        ph.fails("guest-exec-status", json!({"pid": 1})).code,
        Some(3)
    );
}
