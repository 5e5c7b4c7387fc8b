//! The extensions, in both dialects: the exit of a child whose grandchild keeps the
//! pipe, a timeout that kills a whole process group, the kill command, a status that
//! waits, streamed output and input, the terminal.

use serde_json::json;

use crate::helpers::*;

/// The pid a child printed on its first line.
fn first_pid(out: &[u8]) -> u32 {
    let text = String::from_utf8_lossy(out);
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text:?}"))
}

/// Kills a grandchild a test left behind.
fn sigkill(pid: u32) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
}

#[test]
fn a_grandchild_holding_stdout_does_not_hide_the_exit() {
    for d in BOTH {
        let mut ga = Ga::start(d);
        // sh exits at once; the sleep it left behind keeps standard output open.
        let pid = ga.exec(
            json!({"path": "/bin/sh", "arg": ["-c", "sleep 1000 & echo $!; exit 3"],
                                 "capture-output": true}),
        );
        let s = ga.status(pid, WAIT);
        assert_eq!(
            s["exited"], true,
            "{d:?}: the exit hidden by the grandchild: {s}"
        );
        assert_eq!(s["exitcode"], 3, "{d:?}");
        let grandchild = first_pid(&data(&s, "out-data"));
        assert!(
            alive(grandchild),
            "the grandchild still runs, and holds the pipe"
        );
        // The same with streamed output: the end is reported, and the streams end.
        let pid = ga.exec(
            json!({"path": "/bin/sh", "arg": ["-c", "sleep 1000 & echo $!"],
                                 "stream": true}),
        );
        let (out, _, last) = ga.read_all(pid);
        assert_eq!(last["exitcode"], 0, "{d:?}");
        let second = first_pid(&out);
        assert!(alive(second));
        sigkill(grandchild);
        sigkill(second);
        assert!(zombies(ga.agent.pid()).is_empty());
    }
}

#[test]
fn a_timeout_kills_a_group_that_ignores_sigterm() {
    for d in BOTH {
        let mut ga = Ga::start(d);
        // The shell and its sleep both ignore SIGTERM; only the SIGKILL after the
        // grace period ends them.
        let pid = ga.exec(json!({"path": "/bin/sh",
                                 "arg": ["-c", "trap '' TERM; sleep 1000 & echo $!; wait"],
                                 "stream": true, "timeout": 0.5}));
        let first = ga.ok("guest-exec-read", json!({"pid": pid, "wait": WAIT}));
        let grandchild = first_pid(&unb64(&first["out-data"]));
        let s = ga.status(pid, WAIT);
        assert_eq!(
            (s["exited"].clone(), s["signal"].clone()),
            (json!(true), json!(9)),
            "{d:?}: {s}"
        );
        // The whole group is gone: the sleep too (reaped by init once killed).
        eventually("the grandchild is killed", || {
            !alive(grandchild) || phoenix_testkit::proc_state(grandchild) == Some('Z')
        });
        // (Dead members may wait as zombies for whoever reaps orphans here.)
        eventually("the process group is gone", || {
            group(u32::try_from(pid).unwrap())
                .iter()
                .all(|&(_, state)| state == 'Z')
        });
    }
}

#[test]
fn a_child_that_ends_before_its_timeout_leaves_the_agent_asleep() {
    let mut ga = Ga::start(Dialect::Qga);
    // Its status is not collected: the entry stays, with a timeout that passes at 0.3 s.
    let pid = ga.exec(json!({"path": "/bin/true", "timeout": 0.3}));
    eventually("the child is reaped", || {
        zombies(ga.agent.pid()).is_empty() && children(ga.agent.pid()).is_empty()
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    // A reactor that kept the passed deadline would wake at once, for ever: a whole
    // core. Asleep, it takes no tick (10 ms) in a second; a busy machine gets a few.
    let before = ga.agent.cpu_ticks();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let used = ga.agent.cpu_ticks() - before;
    assert!(
        used < 20,
        "the agent used {used} ticks of CPU in 1 s while idle"
    );
    assert_eq!(ga.status(pid, WAIT)["exitcode"], json!(0));
}

#[test]
fn kill_signals_the_group_or_the_process() {
    for d in BOTH {
        let mut ga = Ga::start(d);
        let pid = ga.exec(json!({"path": "/bin/sleep", "arg": ["1000"]}));
        assert_eq!(ga.status(pid, 0.0), json!({"exited": false}));
        ga.ok("guest-exec-kill", json!({"pid": pid, "signal": 0}));
        assert_eq!(
            ga.status(pid, 0.0),
            json!({"exited": false}),
            "signal 0 only checks"
        );
        ga.ok("guest-exec-kill", json!({"pid": pid}));
        assert_eq!(
            ga.status(pid, WAIT),
            json!({"exited": true, "signal": 15}),
            "{d:?}"
        );
        assert!(!alive(u32::try_from(pid).unwrap()));
        // group=false reaches the process alone: its child lives on.
        let pid = ga.exec(
            json!({"path": "/bin/sh", "arg": ["-c", "sleep 1000 & echo $!; wait"],
                                 "stream": true}),
        );
        let r = ga.ok("guest-exec-read", json!({"pid": pid, "wait": WAIT}));
        let grandchild = first_pid(&unb64(&r["out-data"]));
        ga.ok(
            "guest-exec-kill",
            json!({"pid": pid, "signal": 9, "group": false}),
        );
        let (_, _, last) = ga.read_all(pid);
        assert_eq!(last["signal"], 9);
        assert!(alive(grandchild), "{d:?}: group=false signalled the group");
        sigkill(grandchild);
        // A real-time signal (beyond the 31 with names) is sent and reported.
        let rt = ga.exec(json!({"path": "/bin/sleep", "arg": ["1000"]}));
        for bad in [-1, 65] {
            let f = ga.fails("guest-exec-kill", json!({"pid": rt, "signal": bad}));
            assert!(f.message.contains("invalid signal"), "{d:?} {bad}: {f:?}");
        }
        ga.ok("guest-exec-kill", json!({"pid": rt, "signal": 40}));
        assert_eq!(
            ga.status(rt, WAIT),
            json!({"exited": true, "signal": 40}),
            "{d:?}"
        );
        // A forgotten pid.
        let f = ga.fails("guest-exec-kill", json!({"pid": pid}));
        assert_eq!(f.message, format!("PID {pid} does not exist"));
    }
}

#[test]
fn sixty_four_mib_of_output_streamed_whole() {
    const SIZE: usize = 64 << 20;
    let mut ga = Ga::start(Dialect::Qga);
    let file = ga.agent.path("big");
    let bytes = phoenix_testkit::random_bytes(SIZE, 15);
    std::fs::write(&file, &bytes).unwrap();
    let want = phoenix_testkit::md5_of(&bytes);
    drop(bytes);
    // Standard output and standard error at once, each 64 MiB, read as they come.
    let script = format!("cat {0} & cat {0} >&2; wait", file.display());
    let pid = ga.exec(json!({"path": "/bin/sh", "arg": ["-c", script], "stream": true}));
    let (out, err, last) = ga.read_all(pid);
    assert_eq!(last["exitcode"], 0);
    assert_eq!((out.len(), err.len()), (SIZE, SIZE));
    assert_eq!(phoenix_testkit::md5_of(&out), want, "stdout");
    assert_eq!(phoenix_testkit::md5_of(&err), want, "stderr");
    // Read to its end, the process is forgotten.
    assert!(ga
        .fails("guest-exec-status", json!({"pid": pid}))
        .message
        .contains("does not exist"));
}

#[test]
fn ten_mib_of_stdin_delivered() {
    const SIZE: usize = 10 << 20;
    for d in BOTH {
        let mut ga = Ga::start(d);
        let bytes = phoenix_testkit::random_bytes(SIZE, 10);
        let pid = ga.exec(json!({"path": "/usr/bin/md5sum", "stdin": true, "stream": true}));
        let mut at = 0;
        while at < SIZE {
            let end = (at + (1 << 20)).min(SIZE);
            let r = ga.ok(
                "guest-exec-write",
                json!({"pid": pid, "input-data": b64(&bytes[at..end]),
                                 "close": end == SIZE}),
            );
            let n = usize::try_from(r["count"].as_u64().unwrap()).unwrap();
            assert!(n > 0, "nothing taken at {at}");
            if at + n < end {
                // Partly taken: the rest again, without closing.
                at += n;
                continue;
            }
            at = end;
        }
        let (out, _, last) = ga.read_all(pid);
        assert_eq!(last["exitcode"], 0);
        let got = String::from_utf8(out).unwrap();
        assert_eq!(
            got,
            format!("{}  -\n", phoenix_testkit::md5_of(&bytes)),
            "{d:?}"
        );
        // Standard input is closed now.
        let f = ga.fails(
            "guest-exec-write",
            json!({"pid": pid, "input-data": "eA=="}),
        );
        assert!(f.message.contains("does not exist"), "{f:?}");
    }
}

#[test]
fn a_terminal_with_its_window_size() {
    for d in BOTH {
        let mut ga = Ga::start(d);
        let pid = ga.exec(json!({"path": "/bin/sh",
                                 "arg": ["-c", "tty; stty size; read x; stty size; echo got $x"],
                                 "pty": true, "rows": 30, "cols": 100}));
        let mut out = Vec::new();
        while !String::from_utf8_lossy(&out).contains("30 100\r\n") {
            let r = ga.ok(
                "guest-exec-read",
                json!({"pid": pid, "out-offset": out.len(), "wait": WAIT}),
            );
            out.extend(unb64(&r["out-data"]));
            assert_ne!(r["exited"], true, "{}", String::from_utf8_lossy(&out));
        }
        ga.ok(
            "guest-exec-resize",
            json!({"pid": pid, "rows": 40, "cols": 120}),
        );
        ga.ok(
            "guest-exec-write",
            json!({"pid": pid, "input-data": b64s("go\n")}),
        );
        let offset = out.len();
        let (rest, err, last) = ga.read_all_from(pid, offset);
        out.extend(rest);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("/dev/pts/"), "{text:?}");
        assert!(text.contains("40 120\r\ngot go\r\n"), "{d:?}: {text:?}");
        assert!(err.is_empty(), "standard error is the terminal too");
        assert_eq!(last["exitcode"], 0);
        // Not a terminal: resize refused, with ENOTTY's words in Phoenix's dialect.
        let pid = ga.exec(json!({"path": "/bin/sleep", "arg": ["1000"], "stream": true}));
        let f = ga.fails(
            "guest-exec-resize",
            json!({"pid": pid, "rows": 1, "cols": 1}),
        );
        if d == Dialect::Phoenix {
            assert_eq!(f.code, Some(25), "{f:?}");
        }
        ga.ok("guest-exec-kill", json!({"pid": pid, "signal": 9}));
    }
}

#[test]
fn a_terminal_s_end_of_file_and_ctrl_c() {
    let mut ga = Ga::start(Dialect::Phoenix);
    // close gives the terminal its end-of-file character: cat ends.
    let pid = ga.exec(json!({"path": "/bin/cat", "pty": true}));
    ga.ok(
        "guest-exec-write",
        json!({"pid": pid, "input-data": b64s("abc\n"), "close": true}),
    );
    let (out, _, last) = ga.read_all(pid);
    assert_eq!(last["exitcode"], 0, "{}", String::from_utf8_lossy(&out));
    // A ^C written to the terminal interrupts its foreground group.
    let pid = ga.exec(json!({"path": "/bin/sleep", "arg": ["1000"], "pty": true}));
    ga.ok(
        "guest-exec-write",
        json!({"pid": pid, "input-data": b64(&[3])}),
    );
    let (_, _, last) = ga.read_all(pid);
    assert_eq!(last["signal"], 2);
}

#[test]
fn a_status_that_waits() {
    for d in BOTH {
        let mut ga = Ga::start(d);
        let pid = ga.exec(
            json!({"path": "/bin/sh", "arg": ["-c", "sleep 0.3; echo done"],
                                 "capture-output": true}),
        );
        // One request, answered at the exit: no polling.
        let s = ga.status(pid, WAIT);
        assert_eq!(
            s,
            json!({"exited": true, "exitcode": 0, "out-data": b64s("done\n")}),
            "{d:?}"
        );
        // A wait that ends before the exit answers "not yet".
        let pid = ga.exec(json!({"path": "/bin/sleep", "arg": ["1000"]}));
        assert_eq!(ga.status(pid, 0.1), json!({"exited": false}));
        // Kill reaches it while another connection waits for it.
        let mut other = ga.conn();
        let waiter = std::thread::spawn(move || {
            other.request(
                json!({"execute": "guest-exec-status", "arguments": {"pid": pid, "wait": WAIT}}),
            )
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        ga.ok("guest-exec-kill", json!({"pid": pid, "signal": 9}));
        let reply = waiter.join().unwrap();
        assert_eq!(
            reply["return"],
            json!({"exited": true, "signal": 9}),
            "{d:?}"
        );
    }
}

#[test]
fn bad_extension_arguments() {
    for d in BOTH {
        let mut ga = Ga::start(d);
        let captured = ga.exec(json!({"path": "/bin/sleep", "arg": ["1000"]}));
        let streamed = ga.exec(json!({"path": "/bin/sleep", "arg": ["1000"], "stream": true}));
        // (command, arguments, Phoenix's code: -1 for a bad argument, else the errno)
        let cases = [
            ("guest-exec", json!({"path": "/bin/true", "timeout": 0}), -1),
            (
                "guest-exec",
                json!({"path": "/bin/true", "timeout": -1}),
                -1,
            ),
            ("guest-exec", json!({"path": "/bin/true", "rows": 10}), -1),
            (
                "guest-exec",
                json!({"path": "/bin/true", "pty": true, "capture-output": true}),
                -1,
            ),
            (
                "guest-exec",
                json!({"path": "/bin/true", "pty": true, "cols": 70000}),
                -1,
            ),
            (
                "guest-exec",
                json!({"path": "/bin/true", "stream": "yes"}),
                -1,
            ),
            (
                "guest-exec-status",
                json!({"pid": captured, "wait": 61}),
                -1,
            ),
            (
                "guest-exec-status",
                json!({"pid": captured, "wait": -1}),
                -1,
            ),
            ("guest-exec-read", json!({"pid": captured}), 22),
            ("guest-exec-read", json!({"pid": streamed, "count": 0}), -1),
            (
                "guest-exec-read",
                json!({"pid": streamed, "out-offset": 5}),
                22,
            ),
            ("guest-exec-read", json!({"pid": 999999999}), 3),
            (
                "guest-exec-write",
                json!({"pid": streamed, "input-data": "eA=="}),
                32,
            ),
            (
                "guest-exec-write",
                json!({"pid": streamed, "input-data": "!"}),
                -1,
            ),
            (
                "guest-exec-kill",
                json!({"pid": captured, "signal": 65}),
                -1,
            ),
            ("guest-exec-kill", json!({"pid": 999999999}), 3),
            (
                "guest-exec-resize",
                json!({"pid": captured, "rows": 0, "cols": 10}),
                -1,
            ),
            (
                "guest-exec-resize",
                json!({"pid": captured, "rows": 10, "cols": 10}),
                25,
            ),
        ];
        for (name, args, errno) in cases {
            let f = ga.fails(name, args.clone());
            match d {
                Dialect::Phoenix => assert_eq!(f.code, Some(errno), "{name} {args}: {f:?}"),
                Dialect::Qga => assert_eq!(
                    f.class.as_deref(),
                    Some("GenericError"),
                    "{name} {args}: {f:?}"
                ),
            }
        }
        for pid in [captured, streamed] {
            ga.ok("guest-exec-kill", json!({"pid": pid, "signal": 9}));
        }
    }
}

#[test]
fn in_the_qga_dialect_a_sync_drops_the_replies_still_pending() {
    let mut ga = Ga::start(Dialect::Qga);
    let line = |name: &str, args: serde_json::Value| {
        phoenix_testkit::request_line(&json!({"execute": name, "arguments": args}))
    };
    // A status waiting for the exit, then a sync and a ping, in one write. The sync
    // and the ping are answered at once; the status's reply, ready later, is dropped:
    // sent after the sync's, the host would take it for its next command's.
    let pid = ga.exec(json!({"path": "/bin/sleep", "arg": ["0.3"]}));
    let mut batch = line("guest-exec-status", json!({"pid": pid, "wait": WAIT}));
    batch.extend(line("guest-sync", json!({"id": 7})));
    batch.extend(line("guest-ping", json!({})));
    ga.c.send(&batch);
    assert_eq!(ga.c.recv(), json!({"return": 7}));
    assert_eq!(ga.c.recv(), json!({"return": {}}));
    std::thread::sleep(std::time::Duration::from_secs(1));
    ga.c.send(&line("guest-sync", json!({"id": 9})));
    assert_eq!(
        ga.c.recv(),
        json!({"return": 9}),
        "a stale reply came first"
    );

    // A kill acts at once, even behind the status that waits for its process.
    let pid = ga.exec(json!({"path": "/bin/sleep", "arg": ["1000"]}));
    let mut batch = line("guest-exec-status", json!({"pid": pid, "wait": WAIT}));
    batch.extend(line("guest-exec-kill", json!({"pid": pid, "signal": 9})));
    ga.c.send(&batch);
    assert_eq!(ga.c.recv(), json!({"return": {}}));
    // Had the kill waited its turn, the status would end its wait unexited.
    assert_eq!(
        ga.c.recv(),
        json!({"return": {"exited": true, "signal": 9}})
    );
}
