//! Scratch ext4 filesystems on loop devices, for tests and benchmarks that freeze:
//! they may only ever freeze a filesystem they mounted themselves.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A 32 MiB ext4 image on its own loop device, mounted in a temporary directory.
/// Dropping it thaws, unmounts (lazily if still busy after 5 s) and detaches it.
#[derive(Debug)]
pub struct LoopFs {
    /// The temporary directory holding the image and the mount point.
    pub dir: tempfile::TempDir,
    /// The loop device.
    pub dev: String,
    /// The mount point.
    pub mnt: PathBuf,
}

impl LoopFs {
    /// A new filesystem; panics when a step fails (root, util-linux and e2fsprogs needed).
    pub fn new() -> Self {
        Self::from_dir(tempfile::tempdir().expect("tempdir"))
    }

    /// One whose image file lives inside `parent` (a loop device on a loop device).
    pub fn new_in(parent: &Path) -> Self {
        Self::from_dir(tempfile::tempdir_in(parent).expect("tempdir"))
    }

    fn from_dir(dir: tempfile::TempDir) -> Self {
        let img = dir.path().join("img");
        let img_s = img.to_str().expect("utf-8 path");
        must("truncate", &["-s", "32M", img_s]);
        must("mkfs.ext4", &["-q", "-F", img_s]);
        let dev = must("losetup", &["-f", "--show", img_s]);
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir mount point");
        let fs = LoopFs { dir, dev, mnt };
        must("mount", &[&fs.dev, fs.path()]);
        fs
    }

    /// The mount point as a string.
    pub fn path(&self) -> &str {
        self.mnt.to_str().expect("utf-8 path")
    }

    /// Whether the kernel has it frozen: a second FIFREEZE gets EBUSY. (When it was
    /// not frozen, that FIFREEZE froze it, so it is thawed again at once.)
    pub fn is_frozen(&self) -> bool {
        assert_own_mount(&self.mnt);
        if run("fsfreeze", &["-f", self.path()]) {
            must("fsfreeze", &["-u", self.path()]);
            false
        } else {
            true
        }
    }
}

impl Default for LoopFs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if is_own_mount(&self.mnt) {
            run("fsfreeze", &["-u", self.path()]);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !run("umount", &[self.path()]) {
            if Instant::now() > deadline {
                run("umount", &["-l", self.path()]);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        run("losetup", &["-d", &self.dev]);
    }
}

/// Whether `mnt` is the root of a filesystem of its own (not the directory of its parent's).
pub fn is_own_mount(mnt: &Path) -> bool {
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    match (dev(mnt), mnt.parent().and_then(dev)) {
        (Some(here), Some(parent)) => here != parent,
        _ => false,
    }
}

/// Panics unless `mnt` is a mount point of its own: fsfreeze on a directory whose
/// filesystem is gone would freeze the filesystem holding it (the machine's disk).
pub fn assert_own_mount(mnt: &Path) {
    assert!(
        is_own_mount(mnt),
        "{} is not a mount point: refusing to freeze",
        mnt.display()
    );
}

/// Runs a command quietly; whether it succeeded.
fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command that must succeed; its trimmed stdout.
fn must(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
