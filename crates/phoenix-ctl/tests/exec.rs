//! `phoenix-ctl exec` against phoenix-ga in both dialects (streamed) and Debian's
//! qemu-ga (captured and polled): output on stdout and stderr, the remote exit status,
//! input, a timeout, Ctrl-C, a terminal.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestAgent, CTL};
use phoenix_testkit::{md5_of, random_bytes, QemuGa};

fn exec(sock: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(CTL)
        .arg("-s")
        .arg(sock)
        .arg("exec")
        .args(args)
        .env_remove("PHOENIX_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn agents() -> Vec<TestAgent> {
    vec![
        TestAgent::start(&[]),
        TestAgent::start(&["--dialect", "qga"]),
    ]
}

#[test]
fn output_streams_and_the_exit_status() {
    for agent in agents() {
        let out = exec(
            &agent.sock,
            &["--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
            b"",
        );
        assert_eq!(
            (text(&out.stdout), text(&out.stderr)),
            ("out\n".into(), "err\n".into())
        );
        assert_eq!(out.status.code(), Some(3));
        // A death by signal N: 128 + N, as a shell says it.
        let out = exec(&agent.sock, &["--", "/bin/sh", "-c", "kill -9 $$"], b"");
        assert_eq!(out.status.code(), Some(137));
        // Without `--` too, with the command's own options.
        let out = exec(&agent.sock, &["/bin/echo", "-n", "x"], b"");
        assert_eq!(text(&out.stdout), "x");
        // --env is the command's environment.
        let out = exec(&agent.sock, &["--env", "A=1", "--", "/usr/bin/env"], b"");
        assert!(
            text(&out.stdout).lines().any(|l| l == "A=1"),
            "{}",
            text(&out.stdout)
        );
        assert!(
            !text(&out.stdout).contains("PHOENIX"),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn input_is_streamed() {
    let data = random_bytes(3 << 20, 7);
    for agent in agents() {
        let out = exec(&agent.sock, &["-i", "--", "/usr/bin/md5sum"], &data);
        assert_eq!(
            text(&out.stdout),
            format!("{}  -\n", md5_of(&data)),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0));
    }
}

#[test]
fn a_timeout_and_ctrl_c() {
    let agent = TestAgent::start(&[]);
    let out = exec(
        &agent.sock,
        &["--timeout", "0.3", "--", "/bin/sleep", "100"],
        b"",
    );
    assert_eq!(out.status.code(), Some(128 + 15), "{}", text(&out.stderr));
    let mut child = Command::new(CTL)
        .args([
            "-s",
            agent.sock.to_str().unwrap(),
            "exec",
            "--",
            "/bin/sleep",
            "100",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the sleep runs in the guest, Ctrl-C reaches it as SIGINT.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sleeping_under(agent.pid()) {
        assert!(Instant::now() < deadline, "the remote sleep never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = phoenix_testkit::wait_exit(&mut child, Duration::from_secs(30)).expect("exited");
    assert_eq!(status.code(), Some(128 + 2));
    assert!(!sleeping_under(agent.pid()));
}

/// Whether a `sleep` runs as a child of `agent`.
fn sleeping_under(agent: u32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some(close) = stat.rfind(')') else {
            return false;
        };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        stat.contains("(sleep)")
            && fields.get(1) == Some(&agent.to_string().as_str())
            && fields[0] != "Z"
    })
}

#[test]
fn a_terminal() {
    let agent = TestAgent::start(&[]);
    // No local terminal here: the remote one is 24 by 80, and the input is typed in.
    let out = exec(
        &agent.sock,
        &[
            "-t",
            "--",
            "/bin/sh",
            "-c",
            "tty; stty size; read x; echo got $x",
        ],
        b"hey\n",
    );
    let t = text(&out.stdout);
    assert!(t.contains("/dev/pts/"), "{t:?}");
    assert!(t.contains("24 80\r\n"), "{t:?}");
    assert!(t.contains("got hey\r\n"), "{t:?}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn against_qemu_ga_the_status_is_polled() {
    let qga = QemuGa::start(&["unshare", "-n"], &[]);
    let out = exec(&qga.sock, &["--", "/bin/echo", "hi"], b"");
    assert_eq!(text(&out.stdout), "hi\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    let out = exec(
        &qga.sock,
        &["--", "/bin/sh", "-c", "echo e >&2; exit 5"],
        b"",
    );
    assert_eq!(
        (text(&out.stderr), out.status.code()),
        ("e\n".into(), Some(5))
    );
    let out = exec(&qga.sock, &["-i", "--", "/bin/cat"], b"abc");
    assert_eq!(text(&out.stdout), "abc");
    // What qemu-ga cannot do is refused, as a usage error.
    let out = exec(&qga.sock, &["-t", "--", "/bin/sh"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
