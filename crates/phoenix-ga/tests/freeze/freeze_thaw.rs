//! Freezing and thawing: writers block while frozen and complete after the thaw;
//! several filesystems, nested images, the gate on disk commands.

use phoenix_testkit::{call, err, quiet, ret};
use serde_json::json;

use crate::helpers::*;

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
