//! The port transports (`isa-serial`, `virtio-serial`) on a pty: the test holds the
//! master (the host side), the agent opens the slave as its device.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::PtyMaster;
use phoenix_testkit::{cpu_ticks, err, raw_pty, request_line};
use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The host end of a pty, and the agent serving its slave.
struct PtyHost {
    master: Option<PtyMaster>,
    agent: Child,
    buf: Vec<u8>,
}

impl PtyHost {
    fn start(method: &str) -> Self {
        Self::start_with(method, &[])
    }

    fn start_with(method: &str, extra: &[&str]) -> Self {
        // Raw mode before the agent opens it, so nothing we send early is echoed;
        // the agent sets raw mode itself too. Held open until the agent answers.
        let (master, slave, slave_path) = raw_pty();
        let agent = Command::new(AGENT)
            .args(["-m", method, "-p", &slave_path])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut host = PtyHost {
            master: Some(master),
            agent,
            buf: Vec::new(),
        };
        // Wait until the agent serves the port.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            host.send(b"{\"execute\":\"ping\",\"tag\":\"up\"}\n");
            if let Some(r) = host.recv_within(Duration::from_millis(200)) {
                assert_eq!(r["tag"], "up");
                break;
            }
            assert!(Instant::now() < deadline, "agent did not answer on the pty");
        }
        drop(slave);
        host
    }

    fn send(&mut self, bytes: &[u8]) {
        let m = self.master.as_mut().unwrap();
        m.write_all(bytes).unwrap();
    }

    fn recv_within(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).unwrap_or_else(|e| {
                    panic!("bad reply {:?}: {e}", String::from_utf8_lossy(&line))
                }));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let m = self.master.as_mut().unwrap();
            let mut fds = [PollFd::new(m.as_fd(), PollFlags::POLLIN)];
            let ms = PollTimeout::try_from(left).unwrap();
            if poll(&mut fds, ms).unwrap() == 0 {
                continue;
            }
            let mut chunk = [0u8; 65536];
            let n = m.read(&mut chunk).unwrap();
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn recv(&mut self) -> Value {
        self.recv_within(Duration::from_secs(20)).expect("no reply")
    }

    fn request(&mut self, req: Value) -> Value {
        self.send(&request_line(&req));
        self.recv()
    }
}

impl Drop for PtyHost {
    fn drop(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
    }
}

fn envelope_rules(method: &str) {
    let mut h = PtyHost::start(method);
    assert_eq!(
        h.request(json!({"execute": "ping", "tag": "a"})),
        json!({"return": VERSION, "tag": "a"})
    );
    // Two requests in one write.
    h.send(b"{\"execute\":\"ping\",\"tag\":\"1\"}\n{\"execute\":\"ping\",\"tag\":\"2\"}\r\n");
    assert_eq!(h.recv()["tag"], "1");
    assert_eq!(h.recv()["tag"], "2");
    // A line far past a cooked tty's 4096-byte limit: only raw mode passes it whole.
    let tag = "t".repeat(20_000);
    assert_eq!(
        h.request(json!({"execute": "ping", "tag": tag}))["tag"],
        tag
    );
    // A reply larger than one 32 KiB port write.
    let name = "q".repeat(100_000);
    let r = h.request(json!({"execute": name, "tag": "big"}));
    assert_eq!(err(&r).0, format!("unknown command \"{name}\""));
    // A large return value, written from where it lies in parts (a file-read chunk).
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &data).unwrap();
    let open = json!({"execute": "file-open", "arguments": {"path": file.path()}, "tag": "o"});
    let handle = h.request(open)["return"].clone();
    let read = json!({"execute": "file-read", "tag": "r",
                      "arguments": {"handle_id": handle, "count": 1_000_000}});
    let r = h.request(read);
    assert_eq!(
        (&r["tag"], &r["return"]["eof"]),
        (&json!("r"), &json!(true))
    );
    let back = base64::engine::general_purpose::STANDARD
        .decode(r["return"]["bufb64"].as_str().unwrap())
        .unwrap();
    assert!(back == data, "large reply corrupted on the port");
    // 0xFF resync.
    h.send(b"{\"execute\":\"pi\xff{\"execute\":\"ping\",\"tag\":\"ff\"}\n");
    assert_eq!(h.recv()["tag"], "ff");
    // Bytes a cooked tty would interpret (^C, ^D, ^Z, ^S) inside a tag.
    let odd = "\u{3}\u{4}\u{1a}\u{13}\u{7f}";
    assert_eq!(
        h.request(json!({"execute": "ping", "tag": odd}))["tag"],
        odd
    );
}

#[test]
fn isa_serial_on_a_pty() {
    envelope_rules("isa-serial");
}

#[test]
fn virtio_serial_method_on_a_pty() {
    envelope_rules("virtio-serial");
}

#[test]
fn no_cpu_while_idle_or_while_the_host_is_gone() {
    let mut h = PtyHost::start("virtio-serial");
    for i in 0..500 {
        h.request(json!({"execute": "ping", "tag": i.to_string()}));
    }
    let pid = h.agent.id();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let t1 = cpu_ticks(pid);
    assert_eq!(
        t1 - t0,
        0,
        "CPU used while the host was connected and silent"
    );
    // The host goes away: the slave now reads EIO and polls HUP for ever; a
    // level-triggered loop would spin here.
    drop(h.master.take());
    std::thread::sleep(Duration::from_millis(200));
    let t2 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let t3 = cpu_ticks(pid);
    assert_eq!(t3 - t2, 0, "CPU used while the host was gone");
    assert!(
        h.agent.try_wait().unwrap().is_none(),
        "agent exited when the host left"
    );
}

#[test]
fn a_host_that_reads_nothing_costs_its_replies_not_the_agent() {
    let mut h = PtyHost::start_with("virtio-serial", &["--send-timeout", "1"]);
    // Far more replies than the pty holds, none read: the agent waits a send timeout,
    // drops that reply, and drops the next ones at once while the port takes nothing.
    // Without the timeout it would wait for ever, and the requests with it.
    const N: usize = 100_000;
    let mut batch = Vec::new();
    for i in 0..N {
        batch.extend_from_slice(format!("{{\"execute\":\"ping\",\"tag\":\"{i}\"}}\n").as_bytes());
    }
    let master = h
        .master
        .as_ref()
        .unwrap()
        .as_fd()
        .try_clone_to_owned()
        .unwrap();
    let (done, written) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(std::fs::File::from(master).write_all(&batch)));
    written
        .recv_timeout(Duration::from_secs(60))
        .expect("the agent stopped reading: its replies wait for a host that reads nothing")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // What reached the pty, then a ping that must be answered.
    let m = h.master.as_mut().unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut fds = [PollFd::new(m.as_fd(), PollFlags::POLLIN)];
    while poll(&mut fds, PollTimeout::from(500u16)).unwrap() > 0 {
        let n = m.read(&mut chunk).unwrap();
        got.extend_from_slice(&chunk[..n]);
        fds = [PollFd::new(m.as_fd(), PollFlags::POLLIN)];
    }
    let replies = got.windows(6).filter(|w| w == b"\"tag\":").count();
    assert!(replies < N, "all {N} replies waited for the host");
    h.buf.clear();
    // A reply cut short may have left a partial line: skip to the answer.
    h.send(b"\n{\"execute\":\"ping\",\"tag\":\"after\"}\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    let m = h.master.as_mut().unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("\"tag\":\"after\"") {
        assert!(Instant::now() < deadline, "no answer after the stall");
        let mut fds = [PollFd::new(m.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(200u16)).unwrap() > 0 {
            let n = m.read(&mut chunk).unwrap();
            seen.extend_from_slice(&chunk[..n]);
        }
    }
}
