//! What a child gets from the agent: none of its descriptors, none of its blocked
//! signals, a session of its own, a PATH; and the refusal while frozen.

use phoenix_e2e::loopfs::LoopFs;
use serde_json::json;

use crate::helpers::*;
use crate::AGENT;

fn text(s: &serde_json::Value) -> String {
    String::from_utf8(data(s, "out-data")).unwrap()
}

#[test]
fn a_child_has_only_its_three_descriptors() {
    for d in BOTH {
        let mut ga = Ga::start(d);
        // The agent holds more: a file handle, its socket, a second connection, and
        // the reactor's epoll set and eventfd (made by the first exec).
        let file = ga.agent.path("held");
        std::fs::write(&file, "x").unwrap();
        let _other = ga.conn();
        match d {
            Dialect::Qga => {
                ga.ok("guest-file-open", json!({"path": file.to_str().unwrap()}));
            }
            Dialect::Phoenix => {
                ga.ok(
                    "file-open",
                    json!({"path": file.to_str().unwrap(), "mode": "r"}),
                );
            }
        }
        ga.run(json!({"path": "/bin/true"}));
        let agent_fds = fd_count(ga.agent.pid());
        assert!(agent_fds >= 8, "{agent_fds}");
        // ls opens the directory itself as descriptor 3.
        let s =
            ga.run(json!({"path": "/bin/ls", "arg": ["/proc/self/fd"], "capture-output": true}));
        assert_eq!(text(&s), "0\n1\n2\n3\n", "{d:?}");
        let pid = ga.exec(
            json!({"path": "/bin/ls", "arg": ["/proc/self/fd"], "stream": true,
                                 "stdin": true, "timeout": 30}),
        );
        assert_eq!(ga.read_all(pid).0, b"0\n1\n2\n3\n", "{d:?}");
        let pid = ga.exec(json!({"path": "/bin/ls", "arg": ["-1", "/proc/self/fd"], "pty": true}));
        let (out, _, _) = ga.read_all(pid);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "0\r\n1\r\n2\r\n3\r\n",
            "{d:?}"
        );
    }
}

#[test]
fn no_signal_is_blocked_or_ignored_and_the_child_leads_its_session() {
    let mut ga = Ga::start(Dialect::Qga);
    let s = ga.run(
        json!({"path": "/bin/grep", "arg": ["-E", "^Sig(Blk|Ign)", "/proc/self/status"],
                          "capture-output": true}),
    );
    assert_eq!(
        text(&s),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
        "the agent blocks nearly every signal; its children must not"
    );
    let s = ga.run(json!({"path": "/bin/cat", "arg": ["/proc/self/stat"], "capture-output": true}));
    let stat = text(&s);
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let pid = stat.split(' ').next().unwrap();
    assert_eq!(
        (f[1], f[2], f[3]),
        (ga.agent.pid().to_string().as_str(), pid, pid),
        "parent, process group and session: {stat}"
    );
}

#[test]
fn a_path_when_the_agent_has_none_and_no_private_variables() {
    let launch = Launch::new(AGENT).wrapper(&["env", "-i", "NOTIFY_SOCKET=/run/x", "KEEP=1"]);
    let mut ga = Ga::start_with(Dialect::Qga, launch, &[]);
    // A name is found through the default PATH.
    let s = ga.run(json!({"path": "env", "capture-output": true}));
    let mut lines: Vec<String> = text(&s).lines().map(String::from).collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "KEEP=1",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ]
    );
}

#[test]
fn exec_is_refused_while_frozen_and_the_rest_still_works() {
    let fs = LoopFs::new();
    let mut ga = Ga::start(Dialect::Qga);
    let pid = ga.exec(json!({"path": "/bin/sleep", "arg": ["60"]}));
    let n = ga.ok(
        "guest-fsfreeze-freeze-list",
        json!({"mountpoints": [fs.path()]}),
    );
    assert_eq!(n, 1);
    // qemu-ga's words for a command a freeze disables.
    let f = ga.fails("guest-exec", json!({"path": "/bin/true"}));
    assert_eq!(f.class.as_deref(), Some("CommandNotFound"), "{f:?}");
    assert_eq!(
        f.message,
        "Command guest-exec has been disabled: the command is not allowed"
    );
    // What was started can still be watched and stopped.
    assert_eq!(ga.status(pid, 0.0), json!({"exited": false}));
    ga.ok("guest-exec-kill", json!({"pid": pid, "signal": 9}));
    assert_eq!(ga.status(pid, WAIT), json!({"exited": true, "signal": 9}));
    assert_eq!(ga.ok("guest-fsfreeze-thaw", json!({})), 1);
    ga.run(json!({"path": "/bin/true"}));
}
