//! `phoenix-ctl exec` against phoenix-ga in both dialects (streamed) and Debian's
//! qemu-ga (captured and polled): output on stdout and stderr, the remote exit status,
//! input, a timeout, Ctrl-C, a terminal.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestAgent, CTL};
use phoenix_testkit::{md5_of, random_bytes, QemuGa};

/// `phoenix-ctl -s SOCK exec ARGS...` with `stdin` fed to it.
fn exec(sock: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let all: Vec<&str> = std::iter::once("exec")
        .chain(args.iter().copied())
        .collect();
    common::ctl_at(sock, &all, stdin)
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
    // Once the sleep runs in the guest, Ctrl-C reaches it as SIGINT.
    let mut child = remote_sleep(&agent);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = phoenix_testkit::wait_exit(&mut child, Duration::from_secs(30)).expect("exited");
    assert_eq!(status.code(), Some(128 + 2));
    assert!(!sleeping_under(agent.pid()));
}

/// Whether a `sleep` runs as a child of `agent`.
/// `phoenix-ctl exec -- /bin/sleep 100` against `agent`, its output piped, once the
/// sleep runs under the agent.
fn remote_sleep(agent: &TestAgent) -> std::process::Child {
    let child = Command::new(CTL)
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
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sleeping_under(agent.pid()) {
        assert!(Instant::now() < deadline, "the remote sleep never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

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

nix::ioctl_write_ptr_bad!(set_window, nix::libc::TIOCSWINSZ, nix::libc::winsize);

/// Sets the window size of the terminal `fd` is on.
fn window(fd: &impl std::os::fd::AsRawFd, rows: u16, cols: u16) {
    let ws = nix::libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize`, which lives across the call.
    unsafe { set_window(fd.as_raw_fd(), &ws) }.unwrap();
}

/// Reads the terminal's master until `want` has come; all read so far.
fn read_until(master: &mut impl std::io::Read, seen: &mut Vec<u8>, want: &str) {
    let mut buf = [0u8; 4096];
    while !text(seen).contains(want) {
        let n = master.read(&mut buf).unwrap_or(0);
        assert!(
            n > 0,
            "the terminal closed before {want:?}: {:?}",
            text(seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_local_terminal_in_raw_mode_and_its_window_size() {
    use std::io::Write;
    let agent = TestAgent::start(&[]);
    let (master, slave, _) = phoenix_testkit::raw_pty();
    // A cooked terminal, as a user's is: phoenix-ctl makes it raw.
    let mut t = nix::sys::termios::tcgetattr(&slave).unwrap();
    t.local_flags |= nix::sys::termios::LocalFlags::ICANON | nix::sys::termios::LocalFlags::ECHO;
    nix::sys::termios::tcsetattr(&slave, nix::sys::termios::SetArg::TCSANOW, &t).unwrap();
    window(&slave, 30, 100);
    let mut child = Command::new(CTL)
        .args(["-s", agent.sock.to_str().unwrap(), "exec", "-t", "--"])
        .args(["/bin/sh", "-c", "stty size; read x; stty size; echo got $x"])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    let mut master = master;
    let mut seen = Vec::new();
    read_until(&mut master, &mut seen, "30 100\r\n");
    // The local terminal is raw now: no local echo, no line editing.
    let raw = nix::sys::termios::tcgetattr(&slave).unwrap();
    assert!(!raw
        .local_flags
        .contains(nix::sys::termios::LocalFlags::ICANON));
    // A window change reaches the remote terminal.
    window(&slave, 40, 120);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    master.write_all(b"go\r").unwrap();
    read_until(&mut master, &mut seen, "got go\r\n");
    assert!(text(&seen).contains("40 120\r\n"), "{:?}", text(&seen));
    let status = phoenix_testkit::wait_exit(&mut child, Duration::from_secs(30)).expect("exited");
    assert_eq!(status.code(), Some(0));
    // The terminal is as it was.
    let after = nix::sys::termios::tcgetattr(&slave).unwrap();
    assert!(after
        .local_flags
        .contains(nix::sys::termios::LocalFlags::ICANON));
}

#[test]
fn exec_ends_when_the_agent_goes_even_with_nobody_reading_its_output() {
    let agent = TestAgent::start(&[]);
    let mut child = remote_sleep(&agent);
    // Whoever read phoenix-ctl's output has gone (its error message cannot be
    // printed), then the agent goes too.
    drop((child.stdout.take(), child.stderr.take()));
    let sleeper = agent.pid();
    let orphans: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            stat.contains("(sleep)") && stat.contains(&format!(" {sleeper} "))
        })
        .collect();
    drop(agent);
    let status = phoenix_testkit::wait_exit(&mut child, Duration::from_secs(30));
    for p in orphans {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(p).unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("phoenix-ctl exec hung after the agent went");
    };
    assert_eq!(status.code(), Some(3));
}
