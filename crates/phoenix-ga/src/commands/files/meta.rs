//! File metadata and directories: `file-stat`, `file-chown`, `file-chmod`,
//! `directory-create`, `directory-list`.

use std::fs::{self, DirBuilder, Metadata, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use phoenix_proto::types::files::{
    DirectoryCreate, DirectoryList, FileChmod, FileChown, FileRename, FileStat, PathArgs, Stat,
    Timespec,
};
use serde_json::value::RawValue;

use super::io::check_perm;
use crate::agent::Agent;
use crate::commands::{reply, Args, Outcome};
use crate::error::{Context, Error};

/// `file-stat`: lstat of the path (a final symlink is described, not followed).
pub(super) fn file_stat(_: &Agent, args: &Args<'_>) -> Outcome {
    let a: PathArgs = args.parse()?;
    let meta = fs::symlink_metadata(&a.path).context(|| format!("lstat {}", a.path.display()))?;
    reply(&file_stat_of(base_name(&a.path), &meta))
}

fn file_stat_of(name: String, meta: &Metadata) -> FileStat {
    FileStat {
        name,
        isdir: meta.is_dir(),
        stat: stat_of(meta),
    }
}

/// The Go `syscall.Stat_t` view of lstat's result.
fn stat_of(m: &Metadata) -> Stat {
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Stat {
        Dev: m.dev(),
        Ino: m.ino(),
        Nlink: m.nlink(),
        Mode: m.mode(),
        Uid: m.uid(),
        Gid: m.gid(),
        X__pad0: 0,
        Rdev: m.rdev(),
        Size: signed(m.size()),
        Blksize: signed(m.blksize()),
        Blocks: signed(m.blocks()),
        Atim: Timespec {
            Sec: m.atime(),
            Nsec: m.atime_nsec(),
        },
        Mtim: Timespec {
            Sec: m.mtime(),
            Nsec: m.mtime_nsec(),
        },
        Ctim: Timespec {
            Sec: m.ctime(),
            Nsec: m.ctime_nsec(),
        },
        X__unused: [0; 3],
    }
}

/// The last element of a path as Go's `filepath.Base` gives it (what the original
/// reported): trailing slashes ignored, `/` for the root.
fn base_name(path: &Path) -> String {
    let s = path.to_string_lossy();
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        return if s.is_empty() { ".".into() } else { "/".into() };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// `file-chown`: -1 keeps the id; a final symlink is followed.
pub(super) fn file_chown(_: &Agent, args: &Args<'_>) -> Outcome {
    let a: FileChown = args.parse()?;
    let id = |v: i64, what: &str| -> Result<Option<u32>, Error> {
        match v {
            -1 => Ok(None),
            v => u32::try_from(v)
                .ok()
                .filter(|&v| v != u32::MAX)
                .map(Some)
                .ok_or_else(|| args.invalid(format!("{what} {v} is out of range"))),
        }
    };
    let (uid, gid) = (id(a.uid, "uid")?, id(a.gid, "gid")?);
    std::os::unix::fs::chown(&a.path, uid, gid)
        .context(|| format!("chown {}", a.path.display()))?;
    reply(&true)
}

/// `file-chmod`: sets exactly `perm` (setuid, setgid and sticky included).
pub(super) fn file_chmod(_: &Agent, args: &Args<'_>) -> Outcome {
    let a: FileChmod = args.parse()?;
    check_perm(args, a.perm)?;
    fs::set_permissions(&a.path, Permissions::from_mode(a.perm))
        .context(|| format!("chmod {}", a.path.display()))?;
    reply(&true)
}

/// `file-rename` (extension): rename(2), so a host can write an upload under a
/// temporary name and put it in place in one atomic step when it is complete.
pub(super) fn file_rename(_: &Agent, args: &Args<'_>) -> Outcome {
    let a: FileRename = args.parse()?;
    fs::rename(&a.src, &a.dst)
        .context(|| format!("rename {} to {}", a.src.display(), a.dst.display()))?;
    reply(&true)
}

/// `directory-create`: like `mkdir -p`; every directory it creates gets exactly
/// `perm`, an existing one is left as it is.
pub(super) fn directory_create(_: &Agent, args: &Args<'_>) -> Outcome {
    let a: DirectoryCreate = args.parse()?;
    check_perm(args, a.perm)?;
    mkdir_all(&a.path, a.perm)?;
    reply(&true)
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
    for dir in missing.into_iter().rev() {
        match DirBuilder::new().mode(perm).create(dir) {
            // mkdir(2) applies the umask; the requested mode is set exactly.
            Ok(()) => fs::set_permissions(dir, Permissions::from_mode(perm))
                .context(|| format!("chmod {}", dir.display()))?,
            // Created by someone else meanwhile (or "x/.."): fine if it is a directory;
            // else (a dangling symlink) the EEXIST stands.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
                    return Err(Error::os(format!("mkdir {}", dir.display()), e));
                }
            }
            Err(e) => return Err(Error::os(format!("mkdir {}", dir.display()), e)),
        }
    }
    Ok(())
}

/// `directory-list`: the entries (without `.` and `..`) in directory order, each
/// lstat'ed, at most `n` when `n` > 0. Entries are streamed: only the reply text is
/// held in memory, so a directory of any size can be listed.
pub(super) fn directory_list(_: &Agent, args: &Args<'_>) -> Outcome {
    let a: DirectoryList = args.parse()?;
    let limit = if a.n <= 0 {
        usize::MAX
    } else {
        usize::try_from(a.n).unwrap_or(usize::MAX)
    };
    let path = a.path.display();
    let entries = fs::read_dir(&a.path).context(|| format!("open {path}"))?;
    let internal = |e: &dyn std::fmt::Display| Error::Internal(format!("directory-list: {e}"));
    let mut out = b"[".to_vec();
    let mut count = 0;
    for entry in entries {
        if count >= limit {
            break;
        }
        let entry = entry.context(|| format!("readdir {path}"))?;
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Removed between readdir and lstat: it is no longer in the directory.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::os(format!("lstat {}", entry.path().display()), e)),
        };
        if count > 0 {
            out.push(b',');
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        serde_json::to_writer(&mut out, &file_stat_of(name, &meta)).map_err(|e| internal(&e))?;
        count += 1;
    }
    out.push(b']');
    let text = String::from_utf8(out).map_err(|e| internal(&e))?;
    RawValue::from_string(text)
        .map(Into::into)
        .map_err(|e| internal(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_like_go() {
        assert_eq!(base_name(Path::new("/etc/passwd")), "passwd");
        assert_eq!(base_name(Path::new("/tmp/dir/")), "dir");
        assert_eq!(base_name(Path::new("/")), "/");
        assert_eq!(base_name(Path::new("//")), "/");
        assert_eq!(base_name(Path::new("/tmp/..")), "..");
        assert_eq!(base_name(Path::new("rel")), "rel");
    }

    #[test]
    fn stat_matches_lstat() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let m = fs::symlink_metadata(f.path()).unwrap();
        let s = stat_of(&m);
        let raw = nix::sys::stat::lstat(f.path()).unwrap();
        assert_eq!(s.Ino, raw.st_ino);
        assert_eq!(s.Dev, raw.st_dev);
        assert_eq!(s.Mode, raw.st_mode);
        assert_eq!(s.Size, raw.st_size);
        assert_eq!(s.Blksize, raw.st_blksize);
        assert_eq!(s.Blocks, raw.st_blocks);
        assert_eq!(s.Mtim.Sec, raw.st_mtime);
        assert_eq!(s.Mtim.Nsec, raw.st_mtime_nsec);
    }
}
