//! The agent thaws by itself: when its timer fires, on SIGTERM and SIGINT, on
//! agent-shutdown.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use phoenix_testkit::{call, path_str as s, ret};
use serde_json::json;

use crate::helpers::*;

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
        kill(Pid::from_raw(i32::try_from(agent.pid()).unwrap()), sig).unwrap();
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
