//! What cannot be frozen is refused before anything is frozen, or rolled back: nothing
//! stays frozen after a failed fs-freeze.

use phoenix_testkit::{call, err, must, path_str as s, quiet, ret, Tmpfs};
use serde_json::json;

use crate::helpers::*;

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
