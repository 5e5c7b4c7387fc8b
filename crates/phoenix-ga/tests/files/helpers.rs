//! Starting agents and talking to them.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{err, ret, RawConn, TestAgent};
pub(crate) use crate::common::{md5_of, random_bytes};

pub(crate) const MIB: usize = 1 << 20;

/// An agent whose umask is 077, so perms that come out right were set exactly.
pub(crate) fn agent(args: &[&str]) -> TestAgent {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 077; exec \"$@\"", "sh"]);
    TestAgent::unix_with(cmd, args)
}

/// An agent running as nobody, listening in `dir` (which nobody must own).
pub(crate) fn agent_as_nobody(dir: tempfile::TempDir) -> TestAgent {
    let sock: PathBuf = dir.path().join("ga.sock");
    let child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            crate::common::AGENT,
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

pub(crate) fn call(c: &mut RawConn, name: &str, args: Value) -> Value {
    c.request(json!({"execute": name, "arguments": args}))
}

pub(crate) fn ok(c: &mut RawConn, name: &str, args: Value) -> Value {
    ret(&call(c, name, args)).clone()
}

pub(crate) fn fails(c: &mut RawConn, name: &str, args: Value) -> (String, i64) {
    err(&call(c, name, args))
}

pub(crate) fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

pub(crate) fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode()
}

/// md5 of a file as coreutils computes it.
pub(crate) fn md5sum(p: &Path) -> String {
    let out = Command::new("md5sum").arg(p).output().expect("md5sum");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..32].to_string()
}
