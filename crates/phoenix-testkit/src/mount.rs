//! A small tmpfs a test mounts for itself.

use std::path::{Path, PathBuf};

use crate::process::{must, path_str, quiet};

/// A tmpfs of a given size, mounted for one test and unmounted when dropped (lazily
/// when it is still busy). Root only.
#[derive(Debug)]
pub struct Tmpfs {
    mnt: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// A tmpfs of `size` (`1m`, `2m`...) mounted in a new temporary directory.
    pub fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut fs = Self::mount_at(dir.path().to_path_buf(), size);
        fs._dir = Some(dir);
        fs
    }

    /// A tmpfs of `size` mounted at `mnt`, which is created when missing.
    pub fn mount_at(mnt: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&mnt).expect("mkdir mount point");
        let opts = format!("size={size}");
        must(
            "mount",
            &["-t", "tmpfs", "-o", &opts, "phoenix-test", path_str(&mnt)],
        );
        Tmpfs { mnt, _dir: None }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if !quiet("umount", &[path_str(&self.mnt)]) {
            quiet("umount", &["-l", path_str(&self.mnt)]);
        }
    }
}
