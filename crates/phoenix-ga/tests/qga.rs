//! The qemu-ga dialect's envelope, protocol commands and command line, against the real
//! binary: the assertions of QEMU's own agent test suite (tests/unit/test-qga.c) that
//! apply to these, and the same requests sent to Debian's qemu-ga beside ours.

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use phoenix_testkit::{qga_call, qga_err, qga_fails, qga_ok, shape, Launch, QemuGa, RawConn};
use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn qga(args: &[&str]) -> phoenix_testkit::TestAgent {
    let mut all = vec!["--dialect", "qga"];
    all.extend_from_slice(args);
    Launch::new(AGENT).start(&all)
}

/// Reads raw bytes up to and including `stop`.
fn read_through(c: &mut RawConn, stop: u8) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        c.stream.read_exact(&mut byte).expect("read");
        seen.push(byte[0]);
        if byte[0] == stop {
            return seen;
        }
    }
}

#[test]
fn sync_delimited_after_a_resync_byte() {
    let agent = qga(&[]);
    let mut c = agent.raw();
    c.send(b"\xff");
    c.send(br#"{"execute":"guest-sync-delimited","arguments":{"id":123456}}"#);
    c.send(b"\n");
    // qemu-ga answers the 0xFF with a parse error first; we send nothing before the
    // sentinel.
    assert_eq!(read_through(&mut c, 0xff), [0xff]);
    assert_eq!(c.recv(), json!({"return": 123456}));
}

#[test]
fn sync_ping_and_ids() {
    let agent = qga(&[]);
    let mut c = agent.raw();
    assert_eq!(qga_ok(&mut c, "guest-sync", json!({"id": 987})), json!(987));
    assert_eq!(qga_ok(&mut c, "guest-ping", Value::Null), json!({}));
    for id in [json!(1), json!("a"), json!({"x": [1, 2]})] {
        let r = c.request(json!({"execute": "guest-ping", "id": id}));
        assert_eq!(r, json!({"return": {}, "id": id}));
    }
    // Without an id, the reply has none.
    let r = qga_call(&mut c, "guest-ping", Value::Null);
    assert!(r.get("id").is_none(), "{r}");
}

#[test]
fn bad_requests_get_qemu_ga_errors_and_the_stream_goes_on() {
    let agent = qga(&[]);
    let mut c = agent.raw();
    let cases = [
        (
            json!({"exec-oob": "guest-ping"}),
            "QMP input member 'exec-oob' is unexpected",
        ),
        (json!({"id": 8}), "QMP input lacks member 'execute'"),
        (
            json!({"execute": 5}),
            "QMP input member 'execute' must be a string",
        ),
        (
            json!({"execute": "guest-ping", "arguments": [1]}),
            "QMP input member 'arguments' must be an object",
        ),
        (json!([1]), "QMP input must be a JSON object"),
        (
            json!({"execute": "guest-ping", "arguments": {"foo": 42}}),
            "Parameter 'foo' is unexpected",
        ),
        (
            json!({"execute": "guest-sync", "arguments": {}}),
            "Parameter 'id' is missing",
        ),
        (
            json!({"execute": "guest-sync", "arguments": {"id": "x"}}),
            "Invalid parameter type for 'id', expected: integer",
        ),
    ];
    for (req, desc) in cases {
        let r = c.request(req.clone());
        assert_eq!(qga_err(&r), ("GenericError".into(), desc.into()), "{req}");
    }
    let (class, desc) = qga_fails(&mut c, "guest-invalid-cmd", Value::Null);
    assert_eq!(class, "CommandNotFound");
    assert_eq!(desc, "The command guest-invalid-cmd has not been found");
    // A request of the other dialect is just an unknown command here.
    assert_eq!(qga_fails(&mut c, "ping", Value::Null).0, "CommandNotFound");
    c.send(b"{not json\n");
    let (class, desc) = qga_err(&c.recv());
    assert_eq!(class, "GenericError");
    assert!(desc.starts_with("JSON parse error, "), "{desc}");
    // The id of a bad request is echoed when it could be read.
    let r = c.request(json!({"execute": "guest-ping", "id": 7, "extra": 1}));
    assert_eq!(r["id"], json!(7));
    assert_eq!(qga_ok(&mut c, "guest-ping", Value::Null), json!({}));
}

#[test]
fn several_requests_in_one_write_and_on_one_line() {
    let agent = qga(&[]);
    let mut c = agent.raw();
    c.send(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1}}\n{\"execute\":\"guest-ping\",\"id\":2}\r\n");
    assert_eq!(c.recv(), json!({"return": 1}));
    assert_eq!(c.recv(), json!({"return": {}, "id": 2}));
    c.send(b"{\"execute\":\"guest-ping\",\"id\":3}{\"execute\":\"guest-ping\",\"id\":4} {\"execute\":\"guest-sync\",\"arguments\":{\"id\":5}}\n");
    assert_eq!(c.recv(), json!({"return": {}, "id": 3}));
    assert_eq!(c.recv(), json!({"return": {}, "id": 4}));
    assert_eq!(c.recv(), json!({"return": 5}));
}

#[test]
fn proxmox_framing_is_a_sentinel_and_exactly_two_lines() {
    // PVE::QMPClient writes guest-sync-delimited and the command in one write, then
    // matches /\xff([^\n]+}\r?\n[^\n]+})\r?\n/: anything else between breaks every call.
    let agent = qga(&[]);
    let mut c = agent.raw();
    c.set_timeout(Duration::from_secs(10));
    let write = b"{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":424201}}\n{\"execute\":\"guest-ping\",\"arguments\":{}}\n";
    for _ in 0..3 {
        c.send(write);
        assert_eq!(read_through(&mut c, 0xff), [0xff]);
        let first = String::from_utf8(read_through(&mut c, b'\n')).unwrap();
        let second = String::from_utf8(read_through(&mut c, b'\n')).unwrap();
        assert_eq!(first, "{\"return\":424201}\n");
        assert_eq!(second, "{\"return\":{}}\n");
    }
}

#[test]
fn guest_info_lists_every_command_and_what_is_disabled() {
    let agent = qga(&["-b", "guest-ping,guest-does-not-exist"]);
    let mut c = agent.raw();
    let info = qga_ok(&mut c, "guest-info", Value::Null);
    assert_eq!(info["version"], json!(VERSION));
    let cmds = info["supported_commands"].as_array().unwrap();
    let find = |name: &str| {
        cmds.iter()
            .find(|e| e["name"] == json!(name))
            .unwrap_or_else(|| panic!("{name} not listed"))
    };
    for name in ["guest-sync", "guest-sync-delimited", "guest-info"] {
        assert_eq!(find(name)["enabled"], json!(true));
        assert_eq!(find(name)["success-response"], json!(true));
    }
    assert_eq!(find("guest-ping")["enabled"], json!(false));
    // Only this dialect's commands.
    assert!(!cmds.iter().any(|e| e["name"] == json!("ping")));
    assert_eq!(
        shape(&cmds[0]),
        json!({"name": "string", "enabled": "bool", "success-response": "bool"})
    );
}

#[test]
fn blocked_and_allowed_commands_as_qemu_ga_does() {
    // test-qga.c's blockedrpcs and allowedrpcs, unknown names ignored.
    let agent = qga(&["-b", "guest-ping,guest-no-such-command"]);
    let mut c = agent.raw();
    let (class, desc) = qga_fails(&mut c, "guest-ping", Value::Null);
    assert_eq!(class, "CommandNotFound");
    assert!(desc.contains("has been disabled"), "{desc}");
    qga_ok(&mut c, "guest-sync", json!({"id": 1}));

    let agent = qga(&["-a", "guest-ping,guest-no-such-command"]);
    let mut c = agent.raw();
    qga_ok(&mut c, "guest-ping", Value::Null);
    let (class, desc) = qga_fails(&mut c, "guest-info", Value::Null);
    assert_eq!(class, "CommandNotFound");
    assert!(desc.contains("has been disabled"), "{desc}");
    // Our own lists cover both dialects, and stay strict.
    let agent = qga(&["--block-commands", "guest-sync,ping"]);
    assert_eq!(
        qga_fails(&mut agent.raw(), "guest-sync", json!({"id": 1})).0,
        "CommandNotFound"
    );
    let out = Command::new(AGENT)
        .args([
            "-m",
            "unix-listen",
            "-p",
            "/nonexistent/x.sock",
            "--block-commands",
            "guest-nope",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command \"guest-nope\""));
}

/// Runs our binary under qemu-ga's name (a symlink in a temp dir), with `env`.
fn as_qemu_ga(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("qemu-ga");
    std::os::unix::fs::symlink(AGENT, &link).unwrap();
    Command::new(&link)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn qemu_ga_configuration_file_and_dump() {
    // test-qga.c's config test: QGA_CONF read by an agent started as qemu-ga, then -D.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("qemu-ga.conf");
    std::fs::write(
        &conf,
        "[general]\ndaemonize=0\nmethod=virtio-serial\npath=/path/to/org.qemu.guest_agent.0\n\
         pidfile=/var/foo/qemu-ga.pid\nstatedir=/var/state\nverbose=1\n\
         block-rpcs=guest-ping;guest-get-time\n",
    )
    .unwrap();
    let out = as_qemu_ga(&["-D"], &[("QGA_CONF", conf.to_str().unwrap())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "[general]",
        "daemon=false",
        "method=virtio-serial",
        "path=/path/to/org.qemu.guest_agent.0",
        "pidfile=/var/foo/qemu-ga.pid",
        "statedir=/var/state",
        "verbose=true",
        "block-rpcs=guest-ping;guest-get-time",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
    }
    // Debian's qemu-ga says the same of the same file.
    if QemuGa::installed() {
        let theirs = Command::new(phoenix_testkit::QEMU_GA)
            .arg("-D")
            .env("QGA_CONF", &conf)
            .output()
            .unwrap();
        let theirs = String::from_utf8(theirs.stdout).unwrap();
        for key in [
            "daemon",
            "method",
            "path",
            "pidfile",
            "statedir",
            "verbose",
            "block-rpcs",
        ] {
            let get = |t: &str| {
                t.lines()
                    .find(|l| l.starts_with(&format!("{key}=")))
                    .map(str::to_string)
            };
            assert_eq!(get(&text), get(&theirs), "{key}");
        }
    }
    // An unknown flag is a clear error.
    let out = as_qemu_ga(&["--frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
    // -V prints the version, under either name.
    let out = as_qemu_ga(&["-V"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(VERSION));
}

#[test]
fn started_as_qemu_ga_a_socket_speaks_qga_and_writes_its_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("qemu-ga");
    std::os::unix::fs::symlink(AGENT, &link).unwrap();
    let sock = dir.path().join("qga.sock");
    let pid = dir.path().join("qga.pid");
    let mut child = Command::new(&link)
        .args(["-m", "unix-listen", "-p"])
        .arg(&sock)
        .arg("-f")
        .arg(&pid)
        .args(["-t"])
        .arg(dir.path())
        .spawn()
        .unwrap();
    phoenix_testkit::wait_listening(&sock);
    let mut c = RawConn::connect(&sock);
    assert_eq!(qga_ok(&mut c, "guest-ping", Value::Null), json!({}));
    let written = std::fs::read_to_string(&pid).unwrap();
    assert_eq!(written.trim(), child.id().to_string());
    // A second agent on the same pid file refuses to start.
    let out = Command::new(&link)
        .args(["-m", "unix-listen", "-p"])
        .arg(dir.path().join("other.sock"))
        .arg("-f")
        .arg(&pid)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another agent holds it"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(!pid.exists(), "the pid file stays after a clean exit");
}

#[test]
fn a_missing_port_is_an_error_or_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let port = dir.path().join("org.qemu.guest_agent.0");
    // Without -p and without any agent port (as on this build machine): a clear error
    // naming both.
    if !std::path::Path::new("/dev/virtio-ports/org.guest-agent.0").exists()
        && !std::path::Path::new("/dev/virtio-ports/org.qemu.guest_agent.0").exists()
    {
        let out = Command::new(AGENT).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("org.guest-agent.0") && err.contains("org.qemu.guest_agent.0"),
            "{err}"
        );
    }
    // With --retry-path the agent waits (asleep) and serves the port once it appears:
    // a pty stands for the port here.
    let mut child = Command::new(AGENT)
        .args(["-m", "isa-serial", "--dialect", "qga", "-r", "-p"])
        .arg(&port)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        child.try_wait().unwrap(),
        None,
        "gave up on the missing port"
    );
    let ticks = phoenix_testkit::cpu_ticks(child.id());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        phoenix_testkit::cpu_ticks(child.id()) - ticks <= 1,
        "spins while waiting"
    );
    let (mut master, _slave, name) = phoenix_testkit::raw_pty();
    std::os::unix::fs::symlink(&name, &port).unwrap();
    use std::io::Write;
    master
        .write_all(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":77}}\n")
        .unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.last() != Some(&b'\n') {
        master.read_exact(&mut byte).unwrap();
        line.push(byte[0]);
    }
    assert_eq!(line, b"{\"return\":77}\n");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The same requests to Debian's qemu-ga and to ours: the same reply shapes, error
/// classes and, for the envelope's own errors, the same words.
#[test]
fn same_answers_as_qemu_ga() {
    let theirs = QemuGa::start(&[], &[]);
    let ours = qga(&[]);
    let (mut t, mut o) = (theirs.raw(), ours.raw());
    let requests = [
        json!({"execute": "guest-ping"}),
        json!({"execute": "guest-ping", "id": "x"}),
        json!({"execute": "guest-sync", "arguments": {"id": 42}}),
        json!({"execute": "guest-sync", "arguments": {"id": "x"}}),
        json!({"execute": "guest-sync", "arguments": {}}),
        json!({"execute": "guest-sync", "arguments": {"id": 1, "extra": 2}}),
        json!({"execute": "guest-ping", "arguments": {"foo": 42}}),
        json!({"execute": "guest-ping", "arguments": [1]}),
        json!({"execute": "guest-invalid-cmd", "id": 3}),
        json!({"execute": 5}),
        json!({"id": 8}),
        json!({"exec-oob": "guest-ping"}),
        json!([1]),
        json!({"execute": "guest-info"}),
    ];
    for req in requests {
        let (a, b) = (t.request(req.clone()), o.request(req.clone()));
        match (a.get("error"), b.get("error")) {
            (None, None) => {
                // guest-info: the entries' shape (the command lists differ by design).
                let (sa, sb) = (shape(&a), shape(&b));
                assert_eq!(sa, sb, "{req}: {a} vs {b}");
                assert_eq!(a.get("id"), b.get("id"), "{req}");
                if req["execute"] == json!("guest-sync") {
                    assert_eq!(a, b, "{req}");
                }
            }
            (Some(_), Some(_)) => {
                let (ca, cb) = (qga_err(&a), qga_err(&b));
                assert_eq!(ca.0, cb.0, "{req}: class");
                if ca.0 == "GenericError" || ca.1.starts_with("The command") {
                    assert_eq!(ca.1, cb.1, "{req}: desc");
                }
                assert_eq!(a.get("id"), b.get("id"), "{req}");
            }
            _ => panic!("{req}: qemu-ga said {a}, we said {b}"),
        }
    }
    // guest-sync-delimited: the same bytes.
    let req = b"{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":5}}\n";
    t.send(req);
    o.send(req);
    assert_eq!(read_through(&mut t, 0xff), read_through(&mut o, 0xff));
    assert_eq!(t.recv(), o.recv());
}
