//! Running `phoenix-ctl` against the real agent.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub use phoenix_testkit::TestAgent;

/// The command under test.
pub const CTL: &str = env!("CARGO_BIN_EXE_phoenix-ctl");

/// `phoenix-ctl -s SOCK ARGS...` with `stdin` fed to it, for any socket (an agent of
/// the testkit, qemu-ga's, one in a private namespace).
pub fn ctl_at(sock: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(CTL)
        .arg("-s")
        .arg(sock)
        .args(args)
        .env_remove("PHOENIX_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn phoenix-ctl");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait phoenix-ctl");
    feeder.join().unwrap();
    out
}

/// `phoenix-ctl -s SOCK ARGS...` with `stdin` fed to it.
pub fn ctl_with_input(agent: &TestAgent, args: &[&str], stdin: &[u8]) -> Output {
    ctl_at(&agent.sock, args, stdin)
}

/// `phoenix-ctl -s SOCK ARGS...`.
pub fn ctl(agent: &TestAgent, args: &[&str]) -> Output {
    ctl_with_input(agent, args, b"")
}

/// Runs and expects success; stdout as text.
pub fn ok(agent: &TestAgent, args: &[&str]) -> String {
    let out = ctl(agent, args);
    assert!(
        out.status.success(),
        "phoenix-ctl {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs with `--json` and expects success; stdout parsed.
pub fn json(agent: &TestAgent, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(agent, &all);
    assert_eq!(text.lines().count(), 1, "one line of JSON: {text:?}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON {text:?}: {e}"))
}

/// Runs and expects failure; the exit status and stderr.
pub fn fails(agent: &TestAgent, args: &[&str]) -> (i32, String) {
    let out = ctl(agent, args);
    assert!(
        !out.status.success(),
        "phoenix-ctl {args:?} should have failed; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
