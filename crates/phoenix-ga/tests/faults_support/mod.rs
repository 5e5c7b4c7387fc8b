//! Helpers for the injected-fault tests: requests, test data, a loop-mounted ext4
//! that is always unmounted, and a thread that keeps signalling a process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{err, ret, RawConn};

pub const MIB: usize = 1 << 20;

/// Sends `name` with `args` and returns the reply.
pub fn call(c: &mut RawConn, name: &str, args: Value) -> Value {
    c.request(json!({"execute": name, "arguments": args}))
}

/// The `return` of a call that must succeed.
pub fn ok(c: &mut RawConn, name: &str, args: Value) -> Value {
    ret(&call(c, name, args)).clone()
}

/// The `(message, code)` of a call that must fail.
pub fn fails(c: &mut RawConn, name: &str, args: Value) -> (String, i64) {
    err(&call(c, name, args))
}

/// A ping whose reply must be exactly ours.
pub fn ping(c: &mut RawConn, tag: &str) {
    let r = c.request(json!({"execute": "ping", "tag": tag}));
    assert_eq!(r["tag"], tag, "reply to another request: {r}");
    assert!(r["return"].is_string(), "ping failed: {r}");
}

pub fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn unb64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("bufb64 string"))
        .expect("valid base64")
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

pub fn md5_of(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&img)
            .output()
            .expect("losetup");
        assert!(out.status.success(), "losetup: {out:?}");
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mut me = LoopExt4 {
            mnt,
            dev,
            mounted: false,
            _dir: dir,
        };
        run(Command::new("mount").arg(&me.dev).arg(&me.mnt));
        me.mounted = true;
        me
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.mnt).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Runs a command that must succeed.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
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
