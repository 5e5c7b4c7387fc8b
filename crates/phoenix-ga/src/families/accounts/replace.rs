//! Replacing a file atomically: the new content goes to a new file beside the old one,
//! which gets the owner, mode and SELinux label the file must have and is synced to
//! disk, then takes the old one's name (rename(2)), and the directory is synced. A
//! reader sees the old file or the new one, never a part, and a crash leaves one of
//! them. Everything is done through the directory's descriptor and the new file's,
//! never through a path a user could change meanwhile: a link where the old file was
//! is replaced, never followed.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid, XattrFlags};

use crate::error::{Context, Error};

/// The extended attribute holding a file's SELinux label.
const SELINUX: &str = "security.selinux";

/// What the new file must be: its owner, mode and (where the old one had one) its
/// SELinux label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
    /// The `security.selinux` attribute.
    pub label: Option<Vec<u8>>,
}

impl Meta {
    /// The owner, mode and label of the open file `fd`.
    pub fn of(fd: BorrowedFd<'_>) -> std::io::Result<Meta> {
        let st = rustix::fs::fstat(fd)?;
        Ok(Meta {
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            label: label_of(fd)?,
        })
    }
}

/// The SELinux label of `fd`, if the filesystem keeps one.
fn label_of(fd: BorrowedFd<'_>) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::fgetxattr(fd, SELINUX, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < 65536 => buf.resize(buf.len() * 4, 0),
            Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// How the new file is named.
#[derive(Debug, Clone, Copy)]
pub enum Temp<'a> {
    /// This name (`shadow+`, the shadow suite's and busybox's). busybox's `passwd`,
    /// `chpasswd` and `adduser` take no lock file: creating this name (O_EXCL) is
    /// their lock, held for the milliseconds of their write. So one that exists is
    /// another writer at work and is waited for ([`BUSY_WAIT`]); only one left for
    /// longer than [`STALE_AFTER`] (a writer that died) is removed.
    Fixed(&'a str),
    /// This prefix and random characters, created anew (in a directory another user
    /// owns, who may create any name there).
    Random(&'a str),
}

/// Replaces `name` in the directory `dir` (shown as `dir_name` in messages) with a
/// file holding `content`, made as `meta` says.
pub fn replace(
    dir: BorrowedFd<'_>,
    dir_name: &str,
    name: &str,
    temp: Temp<'_>,
    content: &[u8],
    meta: &Meta,
) -> Result<(), Error> {
    let (file, temp_name) = create(dir, dir_name, temp)?;
    let temp_path = format!("{dir_name}/{temp_name}");
    let done = fill(&file, &temp_path, content, meta).and_then(|()| {
        rustix::fs::renameat(dir, temp_name.as_str(), dir, name)
            .map_err(std::io::Error::from)
            .context(|| format!("rename {temp_path} to {dir_name}/{name}"))
    });
    if let Err(e) = done {
        let _ = rustix::fs::unlinkat(dir, temp_name.as_str(), AtFlags::empty());
        return Err(e);
    }
    rustix::fs::fsync(dir)
        .map_err(std::io::Error::from)
        .context(|| format!("fsync {dir_name}"))
}

/// How long an existing [`Temp::Fixed`] file is waited for (busybox waits 3 s).
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// Age past which an existing [`Temp::Fixed`] file is taken as left by a crash.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// Creates the new file, empty and 0600 until it is filled.
fn create(dir: BorrowedFd<'_>, dir_name: &str, temp: Temp<'_>) -> Result<(File, String), Error> {
    let open = |name: &str| {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600)).map(File::from)
    };
    let failed = |e: rustix::io::Errno, name: &str| {
        Err(std::io::Error::from(e)).context(|| format!("create {dir_name}/{name}"))
    };
    let name = match temp {
        Temp::Fixed(name) => name,
        Temp::Random(prefix) => {
            for _ in 0..8 {
                let name = format!("{prefix}.{}", random_suffix()?);
                match open(&name) {
                    Ok(file) => return Ok((file, name)),
                    Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return failed(e, &name),
                }
            }
            return Err(Error::errno(
                Errno::EEXIST,
                format!("create a new file in {dir_name}: every name tried exists"),
            ));
        }
    };
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match open(name) {
            Ok(file) => return Ok((file, name.to_string())),
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return failed(e, name),
        }
        if stale(dir, name) {
            tracing::info!(file = %format!("{dir_name}/{name}"), "removing a stale file");
            let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
            continue;
        }
        if Instant::now() >= deadline {
            return Err(Error::errno(
                Errno::EBUSY,
                format!(
                    "{dir_name}/{name} exists: another program is updating the file; \
                     try again"
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `name` in `dir` was last written more than [`STALE_AFTER`] ago.
fn stale(dir: BorrowedFd<'_>, name: &str) -> bool {
    let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    let (Ok(secs), Ok(nanos)) = (u64::try_from(st.st_mtime), u32::try_from(st.st_mtime_nsec))
    else {
        return false;
    };
    let written = std::time::UNIX_EPOCH + Duration::new(secs, nanos);
    std::time::SystemTime::now()
        .duration_since(written)
        .is_ok_and(|age| age > STALE_AFTER)
}

/// Eight random hexadecimal characters.
fn random_suffix() -> Result<String, Error> {
    let mut bytes = [0u8; 4];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())
        .map_err(std::io::Error::from)
        .context(|| "getrandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes the content, sets owner, mode and label, and syncs.
fn fill(mut file: &File, path: &str, content: &[u8], meta: &Meta) -> Result<(), Error> {
    file.write_all(content).context(|| format!("write {path}"))?;
    rustix::fs::fchown(
        file.as_fd(),
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(std::io::Error::from)
    .context(|| format!("chown {path}"))?;
    rustix::fs::fchmod(file.as_fd(), Mode::from_raw_mode(meta.mode))
        .map_err(std::io::Error::from)
        .context(|| format!("chmod {path}"))?;
    if let Some(label) = &meta.label {
        rustix::fs::fsetxattr(file.as_fd(), SELINUX, label, XattrFlags::empty())
            .map_err(std::io::Error::from)
            .context(|| format!("set the SELinux label of {path}"))?;
    }
    file.sync_all().context(|| format!("fsync {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn open_dir(path: &std::path::Path) -> std::os::fd::OwnedFd {
        rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .unwrap()
    }

    #[test]
    fn replaces_with_owner_mode_and_label() {
        let tmp = tempfile::tempdir().unwrap();
        let old = tmp.path().join("shadow");
        std::fs::write(&old, b"old\n").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(&old, Some(0), Some(42)).unwrap();
        let label = b"system_u:object_r:shadow_t:s0\0".to_vec();
        let labelled = rustix::fs::setxattr(&old, SELINUX, &label, XattrFlags::empty()).is_ok();
        let meta = Meta::of(File::open(&old).unwrap().as_fd()).unwrap();
        assert_eq!((meta.uid, meta.gid, meta.mode), (0, 42, 0o640));
        assert_eq!(meta.label.is_some(), labelled);
        let inode = std::fs::metadata(&old).unwrap().ino();
        // A stale shadow+ (a writer that died a minute ago) is replaced.
        std::fs::write(tmp.path().join("shadow+"), b"stale").unwrap();
        age(&tmp.path().join("shadow+"), 60);
        let dir = open_dir(tmp.path());
        let name = tmp.path().display().to_string();
        replace(dir.as_fd(), &name, "shadow", Temp::Fixed("shadow+"), b"new\n", &meta).unwrap();
        assert_eq!(std::fs::read(&old).unwrap(), b"new\n");
        let m = std::fs::metadata(&old).unwrap();
        assert_ne!(m.ino(), inode, "a new file, renamed");
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 42, 0o640));
        if labelled {
            let mut buf = [0u8; 64];
            let n = rustix::fs::getxattr(&old, SELINUX, &mut buf).unwrap();
            assert_eq!(&buf[..n], &label[..]);
        }
        assert!(!tmp.path().join("shadow+").exists());
    }

    /// Sets the modification time of `path` to `secs` ago.
    fn age(path: &std::path::Path, secs: u64) {
        let f = File::options().write(true).open(path).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn a_fresh_shadow_plus_is_another_writer_at_work_and_is_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("shadow"), b"old\n").unwrap();
        let meta = Meta::of(File::open(tmp.path().join("shadow")).unwrap().as_fd()).unwrap();
        let dir = open_dir(tmp.path());
        let name = tmp.path().display().to_string();
        // busybox's chpasswd at work: its shadow+ renamed over shadow a moment later.
        let plus = tmp.path().join("shadow+");
        std::fs::write(&plus, b"busybox\n").unwrap();
        let (from, to) = (plus.clone(), tmp.path().join("shadow"));
        let other = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::rename(from, to).unwrap();
        });
        replace(dir.as_fd(), &name, "shadow", Temp::Fixed("shadow+"), b"ours\n", &meta).unwrap();
        other.join().unwrap();
        assert_eq!(std::fs::read(tmp.path().join("shadow")).unwrap(), b"ours\n");
        // One that stays (a writer still at work, or stuck) is not taken over.
        std::fs::write(&plus, b"busy\n").unwrap();
        let e = replace(dir.as_fd(), &name, "shadow", Temp::Fixed("shadow+"), b"x\n", &meta)
            .unwrap_err();
        assert_eq!(e.code(), libc::EBUSY, "{}", e.message());
        assert_eq!(std::fs::read(&plus).unwrap(), b"busy\n");
        assert_eq!(std::fs::read(tmp.path().join("shadow")).unwrap(), b"ours\n");
    }

    #[test]
    fn a_link_in_the_way_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        std::fs::write(&target, b"keep\n").unwrap();
        std::os::unix::fs::symlink(&target, tmp.path().join("authorized_keys")).unwrap();
        let dir = open_dir(tmp.path());
        let meta = Meta {
            uid: 4242,
            gid: 4343,
            mode: 0o600,
            label: None,
        };
        let name = tmp.path().display().to_string();
        let temp = Temp::Random(".authorized_keys");
        replace(dir.as_fd(), &name, "authorized_keys", temp, b"k\n", &meta).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep\n");
        let m = std::fs::symlink_metadata(tmp.path().join("authorized_keys")).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (4242, 4343, 0o600));
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file left: {left:?}");
    }

    #[test]
    fn a_failure_leaves_the_old_file_and_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("authorized_keys")).unwrap();
        let dir = open_dir(tmp.path());
        let meta = Meta {
            uid: 0,
            gid: 0,
            mode: 0o600,
            label: None,
        };
        let name = tmp.path().display().to_string();
        let e = replace(dir.as_fd(), &name, "authorized_keys", Temp::Random(".k"), b"x", &meta)
            .unwrap_err();
        assert_eq!(e.code(), libc::EISDIR, "{}", e.message());
        assert!(e.message().starts_with("rename "), "{}", e.message());
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }
}
