//! File metadata and directories: stat, chown, chmod, rename, mkdir, list. Typed
//! operations; the adapters give their results each dialect's shape.

use std::fs::{self, Metadata, Permissions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::io::check_perm;
use super::Files;
use crate::error::{Context, Error};

impl Files {
    /// lstat of `path` (a final symlink is described, not followed).
    pub fn stat(&self, path: &Path) -> Result<Metadata, Error> {
        fs::symlink_metadata(path).context(|| format!("lstat {}", path.display()))
    }

    /// Changes the owner and group of `path` (`None` keeps one); a final symlink is
    /// followed.
    pub fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), Error> {
        std::os::unix::fs::chown(path, uid, gid).context(|| format!("chown {}", path.display()))
    }

    /// Sets exactly `perm` (setuid, setgid and sticky included) on `path`.
    pub fn chmod(&self, path: &Path, perm: u32) -> Result<(), Error> {
        check_perm(perm)?;
        fs::set_permissions(path, Permissions::from_mode(perm))
            .context(|| format!("chmod {}", path.display()))
    }

    /// rename(2): `dst` is replaced in one atomic step, so a host can write an upload
    /// under a temporary name and put it in place when it is complete.
    pub fn rename(&self, src: &Path, dst: &Path) -> Result<(), Error> {
        fs::rename(src, dst).context(|| format!("rename {} to {}", src.display(), dst.display()))
    }

    /// Like `mkdir -p`: every directory it creates gets exactly `perm`, an existing one
    /// is left as it is.
    pub fn mkdir_all(&self, path: &Path, perm: u32) -> Result<(), Error> {
        check_perm(perm)?;
        mkdir_all(path, perm)
    }

    /// Calls `visit` with the name and lstat of each entry of the directory at `path`
    /// (without `.` and `..`), in directory order, at most `limit` of them. Entries
    /// are streamed: a directory of any size can be listed.
    pub fn list(
        &self,
        path: &Path,
        limit: usize,
        mut visit: impl FnMut(String, &Metadata) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let shown = path.display();
        let entries = fs::read_dir(path).context(|| format!("open {shown}"))?;
        let mut count = 0;
        for entry in entries {
            if count >= limit {
                break;
            }
            let entry = entry.context(|| format!("readdir {shown}"))?;
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Removed between readdir and lstat: it is no longer in the directory.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::os(format!("lstat {}", entry.path().display()), e)),
            };
            visit(entry.file_name().to_string_lossy().into_owned(), &meta)?;
            count += 1;
        }
        Ok(())
    }
}

fn mkdir_all(path: &Path, perm: u32) -> Result<(), Error> {
    let not_dir = |p: &Path| {
        Error::os(
            format!("mkdir {}", p.display()),
            io::Error::from_raw_os_error(libc::ENOTDIR),
        )
    };
    // Walk up to the deepest directory that exists, then create downwards.
    let mut missing = Vec::new();
    let mut cur = path;
    loop {
        match fs::metadata(cur) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(not_dir(cur)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(cur);
                match cur.parent() {
                    Some(p) if !p.as_os_str().is_empty() => cur = p,
                    _ => break,
                }
            }
            Err(e) => return Err(Error::os(format!("mkdir {}", cur.display()), e)),
        }
    }
    // Each new directory is made in its parent's descriptor (the one made just before
    // it, when it is its parent), opened without following a link and chmod'ed through
    // that descriptor: a user who owns a parent and swaps a new name for a link
    // meanwhile gets an error, not root's chmod of (or mkdir under) what it points to.
    let mut made: Option<(&Path, OwnedFd)> = None;
    for dir in missing.into_iter().rev() {
        let mkdir_error = |e: io::Error| Error::os(format!("mkdir {}", dir.display()), e);
        let (Some(name), Some(parent)) = (dir.file_name(), dir.parent()) else {
            if dir.as_os_str().is_empty() {
                return Err(mkdir_error(io::Error::from_raw_os_error(libc::ENOENT)));
            }
            // "x/..": already there once x is.
            if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
                return Err(not_dir(dir));
            }
            continue;
        };
        let parent_fd = match &made {
            Some((p, fd)) if *p == parent => fd.try_clone().map_err(mkdir_error)?,
            _ => {
                let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
                rustix::fs::open(parent, flags, Mode::empty())
                    .map_err(|e| mkdir_error(e.into()))?
            }
        };
        match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(perm)) {
            Ok(()) => {
                let flags =
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(&parent_fd, name, flags, Mode::empty())
                    .map_err(|e| Error::os(format!("open {}", dir.display()), e.into()))?;
                // mkdir(2) applies the umask; the requested mode is set exactly.
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(perm))
                    .map_err(io::Error::from)
                    .context(|| format!("chmod {}", dir.display()))?;
                made = Some((dir, fd));
            }
            // Created by someone else meanwhile: fine if it is a directory; else (a
            // dangling symlink) the EEXIST stands.
            Err(rustix::io::Errno::EXIST) => {
                if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
                    return Err(mkdir_error(io::Error::from_raw_os_error(libc::EEXIST)));
                }
                made = None;
            }
            Err(e) => return Err(mkdir_error(e.into())),
        }
    }
    Ok(())
}
