//! freeze, thaw and freeze-status on an ext4 image the test loop-mounts itself.
//!
//! NEVER freeze this machine's own filesystems: every freeze here names the test's
//! own loop mount. The guard thaws, unmounts and detaches on drop, so a failing test
//! leaves nothing frozen behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fails, json, ok, TestAgent};

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Refuses to go on unless `mnt` is a mount point of its own: fsfreeze on a directory
/// whose filesystem is gone would freeze the filesystem holding it (the machine's disk).
fn assert_own_mount(mnt: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let here = std::fs::metadata(mnt).expect("stat mount point").dev();
    let parent = std::fs::metadata(mnt.parent().expect("parent"))
        .expect("stat parent")
        .dev();
    assert_ne!(
        here,
        parent,
        "{} is not a mount point: refusing to freeze",
        mnt.display()
    );
}

/// A 32 MiB ext4 image on its own loop device, mounted in a temporary directory.
struct LoopFs {
    _dir: tempfile::TempDir,
    dev: String,
    mnt: PathBuf,
}

impl LoopFs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        must("truncate", &["-s", "32M", s(&img)]);
        must("mkfs.ext4", &["-q", "-F", s(&img)]);
        let dev = must("losetup", &["-f", "--show", s(&img)]);
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let fs = LoopFs {
            _dir: dir,
            dev,
            mnt,
        };
        must("mount", &[&fs.dev, s(&fs.mnt)]);
        fs
    }

    /// Whether the kernel has it frozen: FIFREEZE on a frozen filesystem is EBUSY.
    /// (When it is not frozen, this freezes and thaws it at once.)
    fn is_frozen(&self) -> bool {
        assert_own_mount(&self.mnt);
        if run("fsfreeze", &["-f", s(&self.mnt)]) {
            must("fsfreeze", &["-u", s(&self.mnt)]);
            false
        } else {
            true
        }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        run("fsfreeze", &["-u", s(&self.mnt)]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !run("umount", &[s(&self.mnt)]) {
            if Instant::now() > deadline {
                run("umount", &["-l", s(&self.mnt)]);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        run("losetup", &["-d", &self.dev]);
    }
}

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
