//! freeze, thaw and freeze-status on an ext4 image the test loop-mounts itself.
//!
//! NEVER freeze this machine's own filesystems: every freeze here names the test's
//! own loop mount. The guard thaws, unmounts and detaches on drop, so a failing test
//! leaves nothing frozen behind.

mod common;

use common::{fails, json, ok, TestAgent};
use phoenix_e2e::loopfs::LoopFs;
use phoenix_testkit::path_str as s;

#[test]
fn freeze_thaw_and_status_human_and_json() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = TestAgent::start(&["--state-dir", s(state.path())]);
    let mnt = s(&fs.mnt);

    assert_eq!(ok(&agent, &["freeze-status"]), "thawed\n");
    assert_eq!(json(&agent, &["freeze-status"]), false);

    assert_eq!(ok(&agent, &["freeze", mnt]), "");
    assert!(fs.is_frozen());
    assert_eq!(ok(&agent, &["freeze-status"]), "frozen\n");
    assert_eq!(json(&agent, &["freeze-status"]), true);

    // A second freeze is refused; disk commands are gated.
    let (code, err) = fails(&agent, &["freeze", mnt]);
    assert_eq!(code, 1);
    assert!(err.contains("(EBUSY, 16)"), "{err}");
    let (code, err) = fails(&agent, &["stat", mnt]);
    assert_eq!(code, 1);
    assert!(err.contains("frozen"), "{err}");

    assert_eq!(ok(&agent, &["thaw"]), "");
    assert!(!fs.is_frozen());
    assert_eq!(ok(&agent, &["freeze-status"]), "thawed\n");

    assert_eq!(json(&agent, &["freeze", mnt]), true);
    assert!(fs.is_frozen());
    assert_eq!(json(&agent, &["thaw"]), true);
    assert!(!fs.is_frozen());
    assert_eq!(json(&agent, &["thaw"]), true, "thawing nothing is fine");
}

#[test]
fn freezing_what_is_not_a_mountpoint_fails_and_freezes_nothing() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = TestAgent::start(&["--state-dir", s(state.path())]);
    let plain = fs.mnt.join("lost+found");
    let (code, err) = fails(&agent, &["freeze", s(&fs.mnt), s(&plain)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("(EINVAL, 22)") && err.contains("not a mount point"),
        "{err}"
    );
    assert!(!fs.is_frozen());
    assert_eq!(ok(&agent, &["freeze-status"]), "thawed\n");
}
