//! Signal storms: the agent shrugs off every signal that does not ask it to exit, during
//! transfers, sysinfo and a read blocked on a pipe.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::Signal;
use phoenix_testkit::{
    b64, call, md5_of, ok, path_str as s, random_bytes, ret, unb64, Launch, RawConn, MIB,
};
use serde_json::json;

use crate::helpers::{alive, ping};
use crate::AGENT;

/// A thread that sends `signals` to `pid` in a loop until dropped.
struct SignalStorm {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl SignalStorm {
    fn start(pid: u32, signals: Vec<nix::sys::signal::Signal>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (st, se) = (stop.clone(), sent.clone());
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
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
    fn stop(mut self) -> u64 {
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
fn storm_signals() -> Vec<Signal> {
    use Signal::*;
    vec![SIGCHLD, SIGWINCH, SIGIO, SIGHUP, SIGPIPE, SIGUSR1]
}

/// One sysinfo call whose reply must be ours and complete.
fn sysinfo_ok(c: &mut RawConn, tag: &str, release: &str) {
    let r = c.request(json!({"execute": "sysinfo", "tag": tag}));
    assert_eq!(r["tag"], tag);
    let info = ret(&r);
    assert_eq!(info["uname"]["release"], json!(release));
    assert!(info["ram"]["total"].as_u64().unwrap() > 0, "{info}");
    assert!(info["disks"].is_array(), "{info}");
}

#[test]
fn signal_storm_during_transfers_and_sysinfo() {
    let mut agent = Launch::new(AGENT).start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    let dst = dir.path().join("dst.bin");
    let data = random_bytes(32 * MIB, 0x5157);
    fs::write(&src, &data).unwrap();
    let mut c = agent.raw();
    let storm = SignalStorm::start(agent.pid(), storm_signals());
    // sysinfo on a second connection all along the transfers.
    let release = nix::sys::utsname::uname().unwrap();
    let release = release.release().to_str().unwrap().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sysinfo_loop = {
        let (mut c2, stop, release) = (agent.raw(), stop.clone(), release.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 5 {
                sysinfo_ok(&mut c2, &format!("bg{i}"), &release);
                i += 1;
            }
            i
        })
    };

    // Download in 4 MiB chunks.
    let h = ok(&mut c, "file-open", json!({"path": s(&src), "mode": "r"}));
    let mut got = Vec::with_capacity(data.len());
    loop {
        let r = ok(
            &mut c,
            "file-read",
            json!({"handle_id": h, "count": 4 * MIB}),
        );
        got.extend_from_slice(&unb64(&r["bufb64"]));
        ping(&mut c, &format!("dl{}", got.len()));
        if r["eof"] == json!(true) {
            break;
        }
    }
    assert_eq!(got.len(), data.len());
    assert_eq!(md5_of(&got), md5_of(&data), "download corrupted");

    // Upload in 4 MiB writes, the last with eof.
    let h = ok(&mut c, "file-open", json!({"path": s(&dst), "mode": "w"}));
    let chunks: Vec<&[u8]> = data.chunks(4 * MIB).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let r = ok(
            &mut c,
            "file-write",
            json!({"handle_id": h, "bufb64": b64(chunk), "eof": last}),
        );
        assert_eq!(r, json!(true));
    }
    assert_eq!(md5_of(&fs::read(&dst).unwrap()), md5_of(&data), "upload");
    let sum = ok(&mut c, "get-file-md5sum", json!({"path": s(&dst)}));
    assert_eq!(sum, json!(md5_of(&data)));

    // And sysinfo alone under the storm.
    for i in 0..30 {
        sysinfo_ok(&mut c, &format!("si{i}"), &release);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let background = sysinfo_loop.join().expect("sysinfo thread");
    assert!(background >= 5);

    let sent = storm.stop();
    assert!(sent > 100, "the storm sent only {sent} signals");
    assert!(alive(&mut agent.child), "the agent died under signals");
    ping(&mut c, "after");
}

#[test]
fn signal_storm_during_a_read_blocked_on_a_pipe() {
    let mut agent = Launch::new(AGENT).start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // The writer end, opened once the agent opens the reader end.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::OpenOptions::new().write(true).open(fifo).unwrap())
    };
    let mut c = agent.raw();
    let h = ok(&mut c, "file-open", json!({"path": s(&fifo)}));
    let mut writer = writer.join().unwrap();
    // A read that blocks in read(2) while the storm goes on.
    let blocked = {
        let (mut c2, h) = (agent.raw(), h.clone());
        std::thread::spawn(move || {
            call(&mut c2, "file-read", json!({"handle_id": h, "count": 100}))
        })
    };
    let storm = SignalStorm::start(agent.pid(), storm_signals());
    for i in 0..20 {
        ping(&mut c, &format!("p{i}"));
        std::thread::sleep(Duration::from_millis(25));
    }
    std::io::Write::write_all(&mut writer, b"hello").unwrap();
    let r = blocked.join().unwrap();
    let sent = storm.stop();
    assert!(sent > 100, "only {sent} signals");
    // Not EINTR: the read waited through every signal and got the bytes.
    let got = ret(&r);
    assert_eq!(unb64(&got["bufb64"]), b"hello", "{r}");
    assert_eq!(got["eof"], json!(false));
    drop(writer);
    let r = ok(&mut c, "file-read", json!({"handle_id": h}));
    assert_eq!(r, json!({"bufb64": "", "eof": true}));
    assert!(alive(&mut agent.child));
}
