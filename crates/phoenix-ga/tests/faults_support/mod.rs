//! Helpers for the injected-fault tests: requests, test data, a loop-mounted ext4
//! that is always unmounted, and a thread that keeps signalling a process.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::Signal;
use phoenix_testkit::{must, path_str as s, quiet, ret, RawConn};
use serde_json::{json, Value};

/// A ping whose reply must be exactly ours.
pub fn ping(c: &mut RawConn, tag: &str) {
    let r = c.request(json!({"execute": "ping", "tag": tag}));
    assert_eq!(r["tag"], tag, "reply to another request: {r}");
    assert!(r["return"].is_string(), "ping failed: {r}");
}

/// Whether the agent process is still running (not exited, not a zombie).
pub fn alive(child: &mut std::process::Child) -> bool {
    child.try_wait().expect("try_wait").is_none()
}

/// A small ext4 on its own loop device, mounted in a temporary directory; unmounted
/// and detached on drop, also when the test panics.
pub struct LoopExt4 {
    pub mnt: PathBuf,
    dev: String,
    mounted: bool,
    _dir: tempfile::TempDir,
}

impl LoopExt4 {
    pub fn new(bytes: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img).unwrap().set_len(bytes).unwrap();
        must("mkfs.ext4", &["-q", "-F", s(&img)]);
        let dev = must("losetup", &["--find", "--show", s(&img)]);
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mut me = LoopExt4 {
            mnt,
            dev,
            mounted: false,
            _dir: dir,
        };
        must("mount", &[&me.dev, s(&me.mnt)]);
        me.mounted = true;
        me
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        if self.mounted {
            quiet("umount", &[s(&self.mnt)]);
        }
        quiet("losetup", &["-d", &self.dev]);
    }
}

/// A thread that sends `signals` to `pid` in a loop until dropped.
pub struct SignalStorm {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl SignalStorm {
    pub fn start(pid: u32, signals: Vec<nix::sys::signal::Signal>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (st, se) = (stop.clone(), sent.clone());
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                for &sig in &signals {
                    if nix::sys::signal::kill(pid, sig).is_err() {
                        return; // the process is gone; the test sees that
                    }
                    se.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        SignalStorm {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Stops the thread; how many signals it sent.
    pub fn stop(mut self) -> u64 {
        self.halt();
        self.sent.load(Ordering::Relaxed)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SignalStorm {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Signals the agent must shrug off (none of them asks it to exit).
pub fn storm_signals() -> Vec<Signal> {
    use Signal::*;
    vec![SIGCHLD, SIGWINCH, SIGIO, SIGHUP, SIGPIPE, SIGUSR1]
}

/// One sysinfo call whose reply must be ours and complete.
pub fn sysinfo_ok(c: &mut RawConn, tag: &str, release: &str) {
    let r = c.request(json!({"execute": "sysinfo", "tag": tag}));
    assert_eq!(r["tag"], tag);
    let info = ret(&r);
    assert_eq!(info["uname"]["release"], json!(release));
    assert!(info["ram"]["total"].as_u64().unwrap() > 0, "{info}");
    assert!(info["disks"].is_array(), "{info}");
}

/// The reply on a connection the agent may have dropped: None when it was closed.
pub fn late_reply(c: &mut RawConn) -> Option<Value> {
    use std::io::BufRead;
    let mut line = String::new();
    match std::io::BufReader::new(&c.stream).read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(serde_json::from_str(&line).expect("a whole JSON reply")),
    }
}

/// Waits until the agent holds only the listening socket and the one connection (one
/// descriptor per client): the start-up probe's connection is gone, so no descriptor
/// is freed behind the test's back while it exhausts them.
pub fn settle_sockets(pid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let sockets = fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().starts_with("socket:"))
            .count();
        if sockets == 2 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{sockets} sockets");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Raw JSON texts of wrong values for a string argument.
pub fn bad_strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "123",
        "-1",
        "true",
        "[]",
        "[\"x\"]",
        "{}",
        "{\"a\":1}",
        "\"\"",
        "\"a\\u0000b\"",
    ]
    .map(String::from)
    .to_vec();
    v.push(format!("\"/{}\"", "a".repeat(100 * 1024)));
    v
}

/// Raw JSON texts of wrong values for an integer argument (2^63, 2^64, 2^40...).
pub fn bad_ints() -> Vec<String> {
    [
        "-1",
        "-9223372036854775808",
        "9223372036854775808",
        "18446744073709551616",
        "1099511627776",
        "1.5",
        "\"1\"",
        "true",
        "[]",
        "{}",
        "\"\"",
    ]
    .map(String::from)
    .to_vec()
}

/// Raw JSON texts of wrong values for a boolean argument.
pub fn bad_bools() -> Vec<String> {
    ["\"true\"", "1", "[]", "{}", "\"\""]
        .map(String::from)
        .to_vec()
}

/// The JSON type an argument expects.
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Str,
    Int,
    Bool,
}

/// A command's arguments: (name, kind, harmless baseline value as JSON text).
pub type Fields = Vec<(&'static str, Kind, String)>;

/// Whether `cmd` may legitimately succeed with `field` = `raw` (documented values).
pub fn may_succeed(cmd: &str, field: &str, raw: &str) -> bool {
    let int = raw.parse::<i64>().is_ok();
    match (cmd, field) {
        ("directory-list", "n") => int, // 0 or less means all; a large n is a cap
        ("file-chown", "uid" | "gid") => raw == "-1", // -1 leaves it unchanged
        ("file-write", "bufb64") => raw == "\"\"", // nothing to append
        ("route-add" | "route-del", "gateway" | "src") => raw == "\"\"", // none
        _ => false,
    }
}

/// The errnos a wrong argument may get besides -1.
pub const BAD_ARG_ERRNOS: &[i64] = &[2, 9, 19, 20, 22, 36];

/// A request line with `args` as raw JSON text.
pub fn request_text(cmd: &str, args: &str, tag: &str) -> String {
    format!("{{\"execute\":\"{cmd}\",\"arguments\":{args},\"tag\":\"{tag}\"}}\r\n")
}

/// Sends a raw request line; its reply, which must carry `tag`.
pub fn send_text(c: &mut RawConn, text: &str, tag: &str) -> Value {
    c.send(text.as_bytes());
    let r = c.recv();
    assert_eq!(r["tag"], tag, "reply to another request: {r}");
    r
}

/// The first 40 bytes, for messages about 100 KiB values.
pub fn short(raw: &str) -> &str {
    &raw[..raw.len().min(40)]
}
