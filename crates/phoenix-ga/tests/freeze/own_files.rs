//! The agent's own files on the filesystem it freezes: its log is held until the
//! thaw, its socket removed only after it.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use phoenix_testkit::{call, path_str as s, ret, wait_exit, wait_listening, Launch, RawConn};
use serde_json::json;

use crate::helpers::*;
use crate::AGENT;

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
    kill(
        Pid::from_raw(i32::try_from(agent.0.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_exit(&mut agent.0, WAIT).expect("agent hung on its own frozen disk");
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "socket left behind");
    Writer::start(&fs, "after").assert_completes();
}
