//! Resources running out: a full disk (ENOSPC) and no descriptors left (EMFILE); the
//! agent reports them, keeps its handles and recovers.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use phoenix_testkit::{
    b64, call, err, fails, md5_of, must, ok, path_str as s, quiet, random_bytes, ret, unb64,
    Launch, RawConn, TestAgent, MIB,
};
use serde_json::{json, Value};

use crate::helpers::{alive, ping};
use crate::AGENT;

/// A small ext4 on its own loop device, mounted in a temporary directory; unmounted
/// and detached on drop, also when the test panics.
struct LoopExt4 {
    mnt: PathBuf,
    dev: String,
    mounted: bool,
    _dir: tempfile::TempDir,
}

impl LoopExt4 {
    fn new(bytes: u64) -> Self {
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

/// The reply on a connection the agent may have dropped: None when it was closed.
fn late_reply(c: &mut RawConn) -> Option<Value> {
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
fn settle_sockets(pid: u32) {
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

#[test]
fn disk_full_gives_enospc_keeps_the_bytes_and_the_handle() {
    let fsys = LoopExt4::new(2 * MIB as u64);
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let path = fsys.mnt.join("fill.bin");
    let data = random_bytes(8 * MIB, 0xf11);
    let h = ok(&mut c, "file-open", json!({"path": s(&path), "mode": "w"}));
    let chunk = 64 * 1024;
    let mut written = 0;
    let (msg, code) = loop {
        assert!(written < data.len(), "2 MiB filesystem took 8 MiB");
        let r = call(
            &mut c,
            "file-write",
            json!({"handle_id": h, "bufb64": b64(&data[written..written + chunk])}),
        );
        if r.get("error").is_some() {
            break err(&r);
        }
        assert_eq!(ret(&r), &json!(true));
        written += chunk;
    };
    assert_eq!(code, 28, "{msg}");
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(written > 0, "nothing fit before ENOSPC");
    let on_disk = fs::read(&path).unwrap();
    assert!(on_disk.len() >= written, "{} < {written}", on_disk.len());
    assert!(
        on_disk == data[..on_disk.len()],
        "bytes on disk are not what was written"
    );
    assert_eq!(
        ok(&mut c, "file-close", json!({"handle_id": h})),
        json!(true)
    );
    let (_, code) = fails(&mut c, "file-close", json!({"handle_id": h}));
    assert_eq!(code, 9, "the handle outlived its close");
    // After freeing space the filesystem takes writes again through a new handle.
    fs::remove_file(&path).unwrap();
    let h = ok(&mut c, "file-open", json!({"path": s(&path), "mode": "w"}));
    ok(
        &mut c,
        "file-write",
        json!({"handle_id": h, "bufb64": b64(&data[..chunk]), "eof": true}),
    );
    assert_eq!(fs::read(&path).unwrap(), &data[..chunk]);
    ping(&mut c, "alive");
}

/// An agent allowed 32 descriptors, and a client whose connection has settled.
fn agent_with_32_descriptors() -> (TestAgent, RawConn) {
    let agent = Launch::new(AGENT)
        .wrapper(&["prlimit", "--nofile=32:32", "--"])
        .start(&[]);
    let mut c = agent.raw();
    ping(&mut c, "start");
    settle_sockets(agent.pid());
    (agent, c)
}

/// Opens `f` until the agent runs out of descriptors: the handles it gave, and the
/// `(message, code)` of the open it refused.
fn open_until_refused(c: &mut RawConn, f: &Path) -> (Vec<Value>, (String, i64)) {
    let mut handles = Vec::new();
    loop {
        assert!(handles.len() < 64, "a limit of 32 descriptors never hit");
        let r = call(c, "file-open", json!({"path": s(f)}));
        match r.get("return") {
            Some(h) => handles.push(h.clone()),
            None => return (handles, err(&r)),
        }
    }
}

#[test]
fn descriptor_exhaustion_gives_emfile_and_recovers() {
    let (mut agent, mut c) = agent_with_32_descriptors();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, b"hello\n").unwrap();

    let (mut handles, (msg, code)) = open_until_refused(&mut c, &f);
    assert_eq!(code, 24, "{msg}");
    assert!(msg.contains("Too many open files"), "{msg}");
    assert!(msg.contains(s(&f)), "not the OS's EMFILE: {msg}");
    assert!(handles.len() >= 5, "only {} handles", handles.len());
    let (msg, code) = fails(&mut c, "get-file-md5sum", json!({"path": s(&f)}));
    assert_eq!(code, 24, "{msg}");
    for i in 0..5 {
        ping(&mut c, &format!("p{i}"));
    }
    assert!(alive(&mut agent.child));

    // A client that connects now is served later or refused (its connection closed);
    // never a wrong reply, and the first client goes on.
    let mut late = RawConn::connect(&agent.sock);
    // The agent may already have dropped it: a failed send is that outcome too.
    let _ = std::io::Write::write_all(
        &mut late.stream,
        b"{\"execute\":\"ping\",\"tag\":\"late\"}\n",
    );
    std::thread::sleep(Duration::from_millis(300));
    ping(&mut c, "still");

    // Close a few: open and md5 work again, new clients are served, and the other
    // handles still read.
    for h in handles.drain(..6) {
        assert_eq!(
            ok(&mut c, "file-close", json!({"handle_id": h})),
            json!(true)
        );
    }
    // A dropped client: see client_connecting_during_descriptor_exhaustion_is_served.
    if let Some(r) = late_reply(&mut late) {
        assert_eq!(r["tag"], "late", "{r}");
    }
    let mut fresh = agent.raw();
    ping(&mut fresh, "fresh");
    let sum = ok(&mut c, "get-file-md5sum", json!({"path": s(&f)}));
    assert_eq!(sum, json!(md5_of(b"hello\n")));
    let h = ok(&mut c, "file-open", json!({"path": s(&f)}));
    handles.push(h);
    for h in &handles {
        let r = ok(&mut c, "file-read", json!({"handle_id": h}));
        assert_eq!(unb64(&r["bufb64"]), b"hello\n");
    }
    ping(&mut c, "end");
}

#[test]
// Regression: serve_client used to dup the socket and dropped this client at EMFILE.
fn client_connecting_during_descriptor_exhaustion_is_served() {
    let (agent, mut c) = agent_with_32_descriptors();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, b"x").unwrap();
    let (mut handles, (_, code)) = open_until_refused(&mut c, &f);
    assert_eq!(code, 24);
    let mut late = RawConn::connect(&agent.sock);
    late.send(b"{\"execute\":\"ping\",\"tag\":\"late\"}\n");
    std::thread::sleep(Duration::from_millis(300));
    for h in handles.drain(..6) {
        ok(&mut c, "file-close", json!({"handle_id": h}));
    }
    // Served now that descriptors are free (or refused before being accepted, and
    // served on a retry): never accepted and then dropped.
    let r = late_reply(&mut late).expect("the client was accepted and then dropped");
    assert_eq!(r["tag"], "late", "{r}");
}
