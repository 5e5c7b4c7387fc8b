//! The marker in the state directory that outlives the agent: a restarted agent finds
//! it and thaws, a stale one is harmless, and nothing is frozen before it is written.

use phoenix_testkit::{call, err, ret};
use serde_json::json;

use crate::helpers::*;

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
