//! fs-freeze, fs-unfreeze, get-freeze-status and fs-sync against the real binary, on
//! ext4 images each test creates and loop-mounts itself (root only).
//!
//! NEVER freeze this machine's own filesystems: every fs-freeze here names explicit
//! `mountpoints` of the test's own loop mounts. The default all-filesystems freeze is
//! tested inside the KVM guest of the end-to-end tests; its selection is unit-tested
//! on mount-table fixtures (src/commands/freeze/mounts.rs).
//!
//! Each mount is a guard whose Drop thaws (`fsfreeze -u`), unmounts and detaches its
//! loop device, so a failing test leaves nothing frozen or mounted behind. A writer
//! blocked on a frozen filesystem cannot be killed (uninterruptible sleep), so guards
//! thaw before anything else.

mod freeze_support;

use std::path::Path;
use std::time::{Duration, Instant};

use freeze_support::{assert_own_mount, LoopFs, Spawned, ThawFirst, Writer, WAIT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use phoenix_testkit::{
    call, err, must, path_str as s, quiet, ret, wait_exit, wait_listening, Launch, RawConn,
    TestAgent, Tmpfs,
};
use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");

/// A state directory of the test's own (for the marker), and an agent using it.
fn agent_with(state: &Path, extra: &[&str]) -> TestAgent {
    let mut args = vec!["--state-dir", s(state)];
    args.extend_from_slice(extra);
    Launch::new(AGENT).start(&args)
}

fn freeze(c: &mut RawConn, mountpoints: &[&str]) -> Value {
    call(c, "fs-freeze", json!({ "mountpoints": mountpoints }))
}

fn status(c: &mut RawConn) -> bool {
    ret(&call(c, "get-freeze-status", json!({})))
        .as_bool()
        .unwrap()
}

#[test]
fn a_write_blocks_while_frozen_and_completes_after_unfreeze() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = agent_with(state.path(), &[]);
    let mut c = agent.raw();
    assert!(!status(&mut c));
    assert_eq!(
        ret(&call(&mut c, "fs-unfreeze", json!({}))),
        true,
        "not frozen: true"
    );
    assert_eq!(ret(&freeze(&mut c, &[fs.path()])), true);
    assert!(status(&mut c));
    assert!(
        state.path().join("frozen").exists(),
        "no marker while frozen"
    );
    let mut w = Writer::start(&fs, "during");
    w.assert_blocked();
    // The agent itself stays responsive while frozen.
    assert_eq!(
        ret(&call(&mut c, "ping", json!({}))),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(ret(&call(&mut c, "fs-unfreeze", json!({}))), true);
    w.assert_completes();
    assert!(!status(&mut c));
    assert!(
        !state.path().join("frozen").exists(),
        "marker left after thaw"
    );
    // Thawed for real: FITHAW now finds nothing frozen (EINVAL).
    assert!(!quiet("fsfreeze", &["-u", fs.path()]));
    // And it can be frozen again.
    assert_eq!(ret(&freeze(&mut c, &[fs.path()])), true);
    assert_eq!(ret(&call(&mut c, "fs-unfreeze", json!({}))), true);
    Writer::start(&fs, "after").assert_completes();
}

#[test]
fn several_filesystems_freeze_and_thaw_together() {
    let (a, b) = (LoopFs::new(), LoopFs::new());
    let state = tempfile::tempdir().unwrap();
    let agent = agent_with(state.path(), &[]);
    let mut c = agent.raw();
    // A trailing slash and a duplicate name the same mount points.
    let a_slash = format!("{}/", a.path());
    assert_eq!(ret(&freeze(&mut c, &[b.path(), &a_slash, a.path()])), true);
    let (mut wa, mut wb) = (Writer::start(&a, "a"), Writer::start(&b, "b"));
    wa.assert_blocked();
    wb.assert_blocked();
    assert_eq!(ret(&call(&mut c, "fs-unfreeze", json!({}))), true);
    wa.assert_completes();
    wb.assert_completes();
}

#[test]
fn a_second_freeze_is_ebusy_and_the_gate_refuses_disk_commands() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = agent_with(state.path(), &[]);
    let mut c = agent.raw();
    assert_eq!(ret(&call(&mut c, "fs-sync", json!({}))), true);
    assert_eq!(ret(&freeze(&mut c, &[fs.path()])), true);
    let (msg, code) = err(&freeze(&mut c, &[fs.path()]));
    assert_eq!(code, 16, "{msg}");
    assert!(msg.contains("already frozen"), "{msg}");
    // Refused before the arguments are looked at.
    let (_, code) = err(&freeze(&mut c, &["relative"]));
    assert_eq!(code, 16);
    let (msg, code) = err(&call(&mut c, "fs-sync", json!({})));
    assert_eq!(
        (msg.as_str(), code),
        (
            "command \"fs-sync\" is not allowed while the filesystems are frozen",
            -1
        )
    );
    assert!(status(&mut c));
    assert_eq!(ret(&call(&mut c, "fs-unfreeze", json!({}))), true);
    assert_eq!(ret(&call(&mut c, "fs-sync", json!({}))), true);
}

#[test]
fn a_failing_second_mountpoint_rolls_back_the_first() {
    let tmp = Tmpfs::new("1m");
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = agent_with(state.path(), &[]);
    let mut c = agent.raw();
    // Listed tmpfs first: frozen last mounted first all the same, so ext4 first.
    let (msg, code) = err(&freeze(&mut c, &[s(tmp.path()), fs.path()]));
    assert_eq!(code, 95, "{msg}");
    let want = format!("freeze {}: Operation not supported", s(tmp.path()));
    assert!(msg.starts_with(&want), "{msg}");
    assert!(!status(&mut c));
    assert!(!state.path().join("frozen").exists());
    Writer::start(&fs, "rolled-back").assert_completes();
    assert!(!quiet("fsfreeze", &["-u", fs.path()]), "still frozen");
    // The gate is open again.
    assert_eq!(ret(&call(&mut c, "fs-sync", json!({}))), true);
}

#[test]
fn a_filesystem_frozen_by_someone_else_is_ebusy_and_rolled_back() {
    let (a, b) = (LoopFs::new(), LoopFs::new());
    let state = tempfile::tempdir().unwrap();
    let agent = agent_with(state.path(), &[]);
    let mut c = agent.raw();
    // `b`, mounted last, is frozen first; then `a` is busy: `b` must be thawed again.
    assert_own_mount(std::path::Path::new(a.path()));
    must("fsfreeze", &["-f", a.path()]);
    let (msg, code) = err(&freeze(&mut c, &[a.path(), b.path()]));
    must("fsfreeze", &["-u", a.path()]);
    assert_eq!(code, 16, "{msg}");
    assert_eq!(msg, format!("freeze {}: Device or resource busy", a.path()));
    assert!(!status(&mut c));
    Writer::start(&b, "b").assert_completes();
}

#[test]
fn bad_mountpoints_are_refused_before_anything_is_frozen() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = agent_with(state.path(), &[]);
    let mut c = agent.raw();
    let missing = format!("{}/nope", fs.dir.path().display());
    let (msg, code) = err(&freeze(&mut c, &[fs.path(), &missing]));
    assert_eq!(
        (msg, code),
        (
            format!("mountpoint {missing}: No such file or directory"),
            2
        )
    );
    let plain = fs.dir.path().to_str().unwrap();
    let (msg, code) = err(&freeze(&mut c, &[fs.path(), plain]));
    assert_eq!(
        (msg, code),
        (format!("mountpoint {plain}: not a mount point"), 22)
    );
    let (msg, code) = err(&freeze(&mut c, &["relative/dir"]));
    assert_eq!(code, -1);
    assert!(
        msg.ends_with("mountpoint \"relative/dir\" is not an absolute path"),
        "{msg}"
    );
    let (msg, code) = err(&freeze(&mut c, &[]));
    assert_eq!(code, -1);
    assert!(msg.ends_with("\"mountpoints\" must not be empty"), "{msg}");
    let (msg, code) = err(&call(&mut c, "fs-freeze", json!({"mountpoints": "/"})));
    assert_eq!(code, -1);
    assert!(
        msg.starts_with("fs-freeze: invalid arguments: invalid type"),
        "{msg}"
    );
    assert!(!status(&mut c));
    Writer::start(&fs, "untouched").assert_completes();
}

#[test]
fn the_auto_thaw_fires() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("agent.log");
    let agent = agent_with(
        state.path(),
        &["--freeze-timeout", "2", "--log-file", s(&log)],
    );
    let mut c = agent.raw();
    assert_eq!(ret(&freeze(&mut c, &[fs.path()])), true);
    let mut w = Writer::start(&fs, "late");
    w.assert_blocked();
    w.assert_completes();
    assert!(!status(&mut c));
    assert!(!state.path().join("frozen").exists());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("thawing by itself"), "{log}");
    // The timer re-arms for the next freeze.
    assert_eq!(ret(&freeze(&mut c, &[fs.path()])), true);
    Writer::start(&fs, "later").assert_completes();
    assert!(!status(&mut c));
}

#[test]
fn sigterm_and_sigint_while_frozen_thaw() {
    let fs = LoopFs::new();
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let state = tempfile::tempdir().unwrap();
        let mut agent = agent_with(state.path(), &[]);
        let mut c = agent.raw();
        assert_eq!(ret(&freeze(&mut c, &[fs.path()])), true);
        let mut w = Writer::start(&fs, sig.as_str());
        w.assert_blocked();
        kill(Pid::from_raw(agent.pid() as i32), sig).unwrap();
        assert_eq!(agent.wait_exit(WAIT), Some(0));
        w.assert_completes();
        assert!(!state.path().join("frozen").exists());
    }
}

#[test]
fn agent_shutdown_while_frozen_thaws() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let mut agent = agent_with(state.path(), &[]);
    let mut c = agent.raw();
    assert_eq!(ret(&freeze(&mut c, &[fs.path()])), true);
    let mut w = Writer::start(&fs, "shutdown");
    w.assert_blocked();
    assert_eq!(ret(&call(&mut c, "agent-shutdown", json!({}))), true);
    assert_eq!(agent.wait_exit(WAIT), Some(0));
    w.assert_completes();
    assert!(!state.path().join("frozen").exists());
}

#[test]
fn a_restarted_agent_finds_the_marker_and_thaws() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    {
        let mut first = agent_with(state.path(), &[]);
        let mut c = first.raw();
        assert_eq!(ret(&freeze(&mut c, &[fs.path()])), true);
        // SIGKILL: no hook runs; the filesystem stays frozen.
        first.child.kill().unwrap();
        first.wait_exit(WAIT);
    }
    assert!(state.path().join("frozen").exists());
    let mut w = Writer::start(&fs, "orphan");
    w.assert_blocked();
    let agent = agent_with(state.path(), &[]);
    let mut c = agent.raw();
    assert!(status(&mut c), "restarted agent does not report frozen");
    let (_, code) = err(&call(&mut c, "fs-sync", json!({})));
    assert_eq!(code, -1, "gate open after restart");
    let (_, code) = err(&freeze(&mut c, &[fs.path()]));
    assert_eq!(code, 16);
    assert_eq!(ret(&call(&mut c, "fs-unfreeze", json!({}))), true);
    w.assert_completes();
    assert!(!status(&mut c));
    assert!(!state.path().join("frozen").exists());
}

#[test]
fn a_stale_marker_of_thawed_or_vanished_filesystems_unfreezes_fine() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    // Not frozen (FITHAW gets EINVAL) and gone (ENOENT): both count as thawed.
    let marker = format!("{}\0{}/gone\0", fs.path(), fs.dir.path().display());
    std::fs::write(state.path().join("frozen"), marker).unwrap();
    let agent = agent_with(state.path(), &[]);
    let mut c = agent.raw();
    assert!(status(&mut c));
    assert_eq!(ret(&call(&mut c, "fs-unfreeze", json!({}))), true);
    assert!(!status(&mut c));
    assert!(!state.path().join("frozen").exists());
    assert_eq!(ret(&call(&mut c, "fs-sync", json!({}))), true);
}

#[test]
fn the_marker_is_written_before_freezing_or_nothing_is_frozen() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    // A state "directory" that is a file: the marker cannot be written.
    let bad = state.path().join("file");
    std::fs::write(&bad, b"").unwrap();
    let agent = agent_with(&bad, &[]);
    let mut c = agent.raw();
    let (msg, code) = err(&freeze(&mut c, &[fs.path()]));
    assert_eq!(code, 17, "{msg}");
    assert!(msg.starts_with("fs-freeze: write marker "), "{msg}");
    assert!(!status(&mut c));
    Writer::start(&fs, "unfrozen").assert_completes();
}

#[test]
fn a_log_file_on_the_frozen_filesystem_is_held_until_the_thaw() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let log = fs.mnt.join("agent.log");
    // --debug logs every request: each would hang the agent if written while frozen.
    let agent = agent_with(state.path(), &["--debug", "--log-file", s(&log)]);
    let mut c = agent.raw();
    assert_eq!(ret(&freeze(&mut c, &[fs.path()])), true);
    let before = std::fs::read_to_string(&log).unwrap();
    for i in 0..20 {
        let r = c.request(json!({"execute": "ping", "tag": format!("held-{i}")}));
        assert_eq!(r["tag"], format!("held-{i}"));
    }
    assert!(status(&mut c));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        before,
        "log written while frozen"
    );
    assert_eq!(ret(&call(&mut c, "fs-unfreeze", json!({}))), true);
    // Written out after the thaw (the reply may come first: wait for it).
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&log).unwrap().contains("held-19") {
        assert!(Instant::now() < deadline, "held log lines never written");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_thaws_before_removing_a_socket_on_the_frozen_filesystem() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let sock = fs.mnt.join("ga.sock");
    let mut agent = Spawned(
        Launch::new(AGENT)
            .command(&sock, &["--state-dir", s(state.path())])
            .spawn()
            .unwrap(),
        fs.mnt.clone(),
    );
    wait_listening(&sock);
    let mut c = RawConn::connect(&sock);
    assert_eq!(ret(&freeze(&mut c, &[fs.path()])), true);
    // Exiting removes the socket: an unlink on the frozen filesystem, which would
    // hang the agent for good if it came before the thaw.
    kill(Pid::from_raw(agent.0.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut agent.0, WAIT).expect("agent hung on its own frozen disk");
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "socket left behind");
    Writer::start(&fs, "after").assert_completes();
}

#[test]
fn an_image_on_a_frozen_filesystem_does_not_deadlock() {
    // `inner` is an ext4 image stored on `outer`: freezing `outer` first would leave
    // the freeze of `inner` (which writes its journal through the loop device into a
    // file on `outer`) blocked for good. Both named, in either order, must work.
    let outer = LoopFs::new();
    let inner = LoopFs::new_in(&outer.mnt);
    let state = tempfile::tempdir().unwrap();
    let agent = agent_with(state.path(), &[]);
    let _thaw = ThawFirst(vec![outer.mnt.clone(), inner.mnt.clone()]);
    let mut c = agent.raw();
    for order in [[outer.path(), inner.path()], [inner.path(), outer.path()]] {
        assert_eq!(ret(&freeze(&mut c, &order)), true);
        let (mut wo, mut wi) = (Writer::start(&outer, "o"), Writer::start(&inner, "i"));
        wo.assert_blocked();
        wi.assert_blocked();
        assert_eq!(ret(&call(&mut c, "fs-unfreeze", json!({}))), true);
        wo.assert_completes();
        wi.assert_completes();
    }
}
