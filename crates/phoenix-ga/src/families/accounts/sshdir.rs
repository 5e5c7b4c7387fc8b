//! A user's `~/.ssh` and its `authorized_keys`, reached without following any link
//! the user could have planted.
//!
//! The home directory is opened by its path in /etc/passwd, walked from `/` with
//! O_NOFOLLOW, following only the links root owns (an administrator's, [`open_home`]).
//! Below it, everything is in the user's hands, so the agent walks
//! from the home's descriptor with openat(2) and O_NOFOLLOW: a `~/.ssh` that is a
//! symbolic link (to /etc, say) or an `authorized_keys` that is one is refused, and
//! root never reads, writes or chowns through it. A `~/.ssh` owned by someone other
//! than the user or root is refused too (sshd ignores it). The new `authorized_keys`
//! is written beside the old one and renamed over it ([`replace`]), owned by the user,
//! mode 0600; a missing `~/.ssh` is created 0700, owned by the user.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};

use super::passwd::User;
use super::replace::{self, Meta, Temp};
use crate::error::{Context, Error};

/// The directory, below the home.
const SSH_DIR: &str = ".ssh";
/// The file, in it.
const KEYS_FILE: &str = "authorized_keys";
/// The largest `authorized_keys` read (it is the user's file, read by root).
pub const MAX_KEYS_FILE: u64 = 16 << 20;

/// An `authorized_keys` as read: its content, and its SELinux label (which the new
/// file keeps).
#[derive(Debug, Default)]
pub struct KeysFile {
    /// The bytes.
    pub content: Vec<u8>,
    /// The `security.selinux` attribute.
    pub label: Option<Vec<u8>>,
}

/// A user's `~/.ssh`, open.
#[derive(Debug)]
pub struct SshDir {
    fd: OwnedFd,
    /// `HOME/.ssh`, for messages.
    path: String,
}

/// How many symbolic links the walk to a home follows (the kernel's own bound).
const MAX_LINKS: usize = 40;

/// Opens the user's home directory, walking its path from `/` one component at a time
/// with O_NOFOLLOW. A symbolic link on the way is followed only if root owns it (an
/// administrator's, such as `/home -> /usr/home`); one owned by anyone else was planted
/// by a user (in a directory that user owns, on the way to the home) and is refused:
/// otherwise a user whose home is `/srv/alice/home` could make `home` a link to `/etc`,
/// and root would create `/etc/.ssh` for them.
pub fn open_home(user: &User) -> Result<OwnedFd, Error> {
    let shown = user.home.display().to_string();
    // The OS's error, for the home as a whole (as a plain open(2) of it would say).
    let os = |e: rustix::io::Errno, _component: &str| {
        Error::os(format!("open the home directory {shown}"), e.into())
    };
    // Opened for reading as directories, so that an automounted home (autofs) is
    // mounted; a link fails (ELOOP, or ENOTDIR) and is then looked at through O_PATH.
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let link_flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let root = || rustix::fs::open("/", dir_flags, Mode::empty());
    let mut dir = root().map_err(|e| os(e, "/"))?;
    // The components left to walk, the next one last.
    let mut left: Vec<Vec<u8>> = components(user.home.as_os_str().as_bytes());
    // Links followed, and components looked at again (one changed between two opens).
    let mut turns = 0;
    while let Some(name) = left.pop() {
        let shown_name = String::from_utf8_lossy(&name).into_owned();
        let name_os = OsStr::from_bytes(&name);
        let e = match rustix::fs::openat(&dir, name_os, dir_flags, Mode::empty()) {
            Ok(fd) => {
                dir = fd;
                continue;
            }
            Err(e @ (rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)) => e,
            Err(e) => return Err(os(e, &shown_name)),
        };
        turns += 1;
        if turns > MAX_LINKS {
            return Err(os(rustix::io::Errno::LOOP, &shown_name));
        }
        let fd = rustix::fs::openat(&dir, name_os, link_flags, Mode::empty())
            .map_err(|e| os(e, &shown_name))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| os(e, &shown_name))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => {}
            // Changed since (a link replaced by a directory): look again.
            FileType::Directory => {
                left.push(name);
                continue;
            }
            _ => return Err(os(e, &shown_name)),
        }
        if st.st_uid != 0 {
            return Err(Error::errno(
                Errno::ELOOP,
                format!(
                    "the home directory {shown}: {shown_name} is a symbolic link of uid {}, \
                     not root's: refusing to follow it",
                    st.st_uid
                ),
            ));
        }
        let target =
            rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(|e| os(e, &shown_name))?;
        let target = target.as_bytes();
        if target.starts_with(b"/") {
            dir = root().map_err(|e| os(e, "/"))?;
        }
        left.extend(components(target));
    }
    Ok(dir)
}

/// The components of a path, last first (`.` and empty ones dropped; `..` kept, for
/// the kernel to take from the directory reached so far).
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

/// Why `name` in `dir` could not be opened as what it should be: a symbolic link is
/// refused by name; anything else is what the OS said.
fn refusal(dir: &OwnedFd, name: &str, path: &str, e: rustix::io::Errno, what: &str) -> Error {
    if let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            return Error::errno(
                Errno::ELOOP,
                format!("{path} is a symbolic link: refusing to follow it"),
            );
        }
    }
    Error::os(format!("open {path} as {what}"), e.into())
}

impl SshDir {
    /// Opens `~/.ssh` in the open `home`; when it is missing, creates it if `create`,
    /// else `None`.
    pub fn open(home: &OwnedFd, user: &User, create: bool) -> Result<Option<SshDir>, Error> {
        let path = format!("{}/{SSH_DIR}", user.home.display());
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(home, SSH_DIR, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) if create => {
                let created = match rustix::fs::mkdirat(home, SSH_DIR, Mode::from_raw_mode(0o700)) {
                    Ok(()) => true,
                    // Made by someone else meanwhile: theirs, taken as it is.
                    Err(rustix::io::Errno::EXIST) => false,
                    Err(e) => {
                        return Err(std::io::Error::from(e)).context(|| format!("mkdir {path}"))
                    }
                };
                let fd = rustix::fs::openat(home, SSH_DIR, flags, Mode::empty())
                    .map_err(|e| refusal(home, SSH_DIR, &path, e, "a directory"))?;
                let dir = SshDir { fd, path };
                dir.check_owner(user)?;
                // Only the directory made here, still root's and empty: what is at the
                // name now may be another one moved there since (root's keys included).
                if created && dir.is_new()? {
                    dir.give_to(user)?;
                }
                return Ok(Some(dir));
            }
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(refusal(home, SSH_DIR, &path, e, "a directory")),
        };
        let dir = SshDir { fd, path };
        dir.check_owner(user)?;
        Ok(Some(dir))
    }

    /// Refuses a directory that neither the user nor root owns.
    fn check_owner(&self, user: &User) -> Result<(), Error> {
        let st = rustix::fs::fstat(&self.fd)
            .map_err(std::io::Error::from)
            .context(|| format!("stat {}", self.path))?;
        if st.st_uid != user.uid && st.st_uid != 0 {
            return Err(Error::errno(
                Errno::EPERM,
                format!(
                    "{} belongs to uid {}, not to {} (uid {})",
                    self.path, st.st_uid, user.name, user.uid
                ),
            ));
        }
        Ok(())
    }

    /// Whether the directory is as [`SshDir::open`] made it: root's, and empty.
    fn is_new(&self) -> Result<bool, Error> {
        let st = rustix::fs::fstat(&self.fd)
            .map_err(std::io::Error::from)
            .context(|| format!("stat {}", self.path))?;
        if st.st_uid != 0 || st.st_nlink != 2 {
            return Ok(false);
        }
        let mut entries = rustix::fs::Dir::read_from(&self.fd)
            .map_err(std::io::Error::from)
            .context(|| format!("read {}", self.path))?;
        let only_dots = entries.all(|e| {
            e.is_ok_and(|e| matches!(e.file_name().to_bytes(), b"." | b".."))
        });
        Ok(only_dots)
    }

    /// Makes the (new) directory the user's, 0700.
    fn give_to(&self, user: &User) -> Result<(), Error> {
        rustix::fs::fchown(
            &self.fd,
            Some(Uid::from_raw(user.uid)),
            Some(Gid::from_raw(user.gid)),
        )
        .map_err(std::io::Error::from)
        .context(|| format!("chown {}", self.path))?;
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(0o700))
            .map_err(std::io::Error::from)
            .context(|| format!("chmod {}", self.path))
    }

    /// `authorized_keys`' content and the label it has, or `None` when it is missing.
    /// Only a regular file with one link is read (a FIFO would block, a device or a
    /// hard link to another file is not the user's list of keys).
    pub fn read_keys(&self) -> Result<Option<KeysFile>, Error> {
        let path = format!("{}/{KEYS_FILE}", self.path);
        let flags = OFlags::RDONLY
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::NOCTTY
            | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&self.fd, KEYS_FILE, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(refusal(&self.fd, KEYS_FILE, &path, e, "a file")),
        };
        let st = rustix::fs::fstat(&fd)
            .map_err(std::io::Error::from)
            .context(|| format!("stat {path}"))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::errno(
                Errno::EINVAL,
                format!("{path} is not a regular file"),
            ));
        }
        if st.st_nlink != 1 {
            return Err(Error::errno(
                Errno::EMLINK,
                format!("{path} has {} hard links: refusing to read it", st.st_nlink),
            ));
        }
        let meta = Meta::of(fd.as_fd()).context(|| format!("stat {path}"))?;
        let mut content = Vec::new();
        File::from(fd)
            .take(MAX_KEYS_FILE + 1)
            .read_to_end(&mut content)
            .context(|| format!("read {path}"))?;
        if content.len() as u64 > MAX_KEYS_FILE {
            return Err(Error::errno(
                Errno::EFBIG,
                format!("{path} is larger than {} MiB", MAX_KEYS_FILE >> 20),
            ));
        }
        Ok(Some(KeysFile {
            content,
            label: meta.label,
        }))
    }

    /// Replaces `authorized_keys` with `content`, the user's, 0600, keeping the old
    /// file's SELinux label. An `authorized_keys` that is a link is refused (the
    /// rename would replace the link, not what it points to, but the user who planted
    /// it is told).
    pub fn write_keys(&self, user: &User, content: &[u8], label: Option<Vec<u8>>) -> Result<(), Error> {
        let path = format!("{}/{KEYS_FILE}", self.path);
        match rustix::fs::statat(&self.fd, KEYS_FILE, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                return Err(Error::errno(
                    Errno::ELOOP,
                    format!("{path} is a symbolic link: refusing to follow it"),
                ))
            }
            _ => {}
        }
        let meta = Meta {
            uid: user.uid,
            gid: user.gid,
            mode: 0o600,
            label,
        };
        replace::replace(
            self.fd.as_fd(),
            &self.path,
            KEYS_FILE,
            Temp::Random(".authorized_keys"),
            content,
            &meta,
        )
    }
}
