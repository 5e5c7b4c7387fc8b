//! `guest-set-user-password`: a new password hash in /etc/shadow, written by the agent
//! itself, with or without `chpasswd` in the guest.
//!
//! Under the account files' lock ([`lock`]), the user's line of /etc/shadow gets the
//! hash and today as the day of the last change (so password ageing starts again, and
//! a forced change is cleared), every other byte of the file kept, and the file is
//! replaced atomically ([`replace`]) with its owner, mode and SELinux label.
//!
//! Where the user has no line in /etc/shadow yet, one is added (`name:HASH:DAY::::::`,
//! no ageing), which is what `chpasswd` does on Debian through PAM (and the shadow
//! suite's `chpasswd` when /etc/passwd says `x`); busybox's `chpasswd` would put the
//! hash into /etc/passwd, which everyone can read. And where /etc/passwd does not send
//! logins to /etc/shadow (its field is not `x`), it is set to `x`, as busybox does:
//! otherwise the old field there (a hash, or empty for no password) would still be the
//! one that counts. A guest without /etc/shadow keeps its hashes in /etc/passwd: the
//! hash goes there, as both `chpasswd`s do.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use nix::errno::Errno;
use rustix::fs::{Mode, OFlags};

use super::crypt::{self, Wiped};
use super::replace::{self, Meta, Temp};
use super::{colon, lock, passwd};
use crate::error::{Context, Error};

/// The hash to store, from the `password` and `crypted` arguments: the SHA-512 crypt
/// of a plain password, or a crypted one as it is once its shape is checked. Nothing
/// here quotes the password.
pub fn new_hash(password_b64: &str, crypted: bool) -> Result<Wiped, Error> {
    let password = decode(password_b64)?;
    if password.0.contains(&b'\n') || password.0.contains(&b'\0') {
        // qemu-ga's words, for both kinds (a NUL would cut the C string short).
        return Err(Error::invalid("forbidden characters in raw password"));
    }
    if crypted {
        crypt::check_crypted(&password.0)?;
        return Ok(password);
    }
    if password.0.is_empty() {
        return Err(Error::invalid(
            "the password is empty (a crypted `*` or `!` locks an account)",
        ));
    }
    if password.0.len() > crypt::MAX_PLAIN {
        return Err(Error::invalid(format!(
            "the password is longer than {} bytes",
            crypt::MAX_PLAIN
        )));
    }
    crypt::sha512(&password.0).map(|h| Wiped(h.into_bytes()))
}

/// Decodes the base64 of the password. Errors say what is wrong, never where: a
/// position or a character would tell something of the password.
fn decode(text: &str) -> Result<Wiped, Error> {
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n');
    if !text.bytes().all(valid) {
        return Err(Error::invalid("Base64 data contains invalid characters"));
    }
    let joined = Wiped(text.bytes().filter(|&b| b != b'\n').collect());
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let mut out = Wiped(Vec::with_capacity(joined.0.len()));
    engine
        .decode_vec(&joined.0, &mut out.0)
        .map_err(|_| Error::invalid("Base64 data is invalid"))?;
    Ok(out)
}

/// Today, in days since 1970, as /etc/shadow counts; `None` on day 0 (a clock not set
/// yet), which the shadow suite leaves empty too: a 0 there forces a change at the
/// next login.
pub fn today() -> Option<u64> {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() / 86_400;
    (days > 0).then_some(days)
}

/// Where the password goes, and how: the directory of the account files, the lock's
/// wait, and the check made once the lock is held (a freeze that began meanwhile).
#[derive(Debug)]
pub struct Update<'a> {
    /// The directory holding passwd and shadow (/etc).
    pub etc: &'a Path,
    /// How long to wait for the lock.
    pub wait: std::time::Duration,
    /// The day of the change (see [`today`]).
    pub today: Option<u64>,
}

impl Update<'_> {
    /// Sets `name`'s password hash. `waiting` is called if the lock is busy;
    /// `allowed` is asked once it is held.
    pub fn set(
        &self,
        name: &str,
        hash: &Wiped,
        waiting: impl FnOnce(),
        allowed: impl FnOnce() -> Result<(), Error>,
    ) -> Result<(), Error> {
        let etc_name = self.etc.display().to_string();
        let etc = rustix::fs::open(
            self.etc,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)
        .context(|| format!("open {etc_name}"))?;
        let _lock = lock::PwdLock::take(etc.as_fd(), &etc_name, self.wait, waiting)?;
        allowed()?;
        let (passwd_fd, passwd) = read(etc.as_fd(), &etc_name, "passwd")?
            .ok_or_else(|| Error::errno(Errno::ENOENT, format!("{etc_name}/passwd is missing")))?;
        let at = colon::find(&passwd, name).ok_or_else(|| passwd::not_found(name))?;
        let field = colon::field(&passwd[at.clone()], 1).unwrap_or_default();
        let day = self.today.map(|d| d.to_string()).unwrap_or_default();
        let write = |file: &str, fd: &OwnedFd, content: &[u8]| {
            let meta = Meta::of(fd.as_fd()).context(|| format!("stat {etc_name}/{file}"))?;
            let temp = format!("{file}+");
            replace::replace(etc.as_fd(), &etc_name, file, Temp::Fixed(&temp), content, &meta)
        };
        match read(etc.as_fd(), &etc_name, "shadow")? {
            Some((shadow_fd, shadow)) => {
                let new = Wiped(match colon::find(&shadow, name) {
                    Some(line) => {
                        colon::with_fields(&shadow, line, &[(1, &hash.0), (2, day.as_bytes())])
                    }
                    None => {
                        let mut line = Vec::new();
                        line.extend_from_slice(name.as_bytes());
                        line.push(b':');
                        line.extend_from_slice(&hash.0);
                        line.push(b':');
                        line.extend_from_slice(day.as_bytes());
                        line.extend_from_slice(b"::::::");
                        colon::with_line(&shadow, &line)
                    }
                });
                write("shadow", &shadow_fd, &new.0)?;
                if !shadowed(field, name) {
                    write("passwd", &passwd_fd, &colon::with_fields(&passwd, at, &[(1, b"x")]))?;
                }
            }
            None => {
                let new = Wiped(colon::with_fields(&passwd, at, &[(1, &hash.0)]));
                write("passwd", &passwd_fd, &new.0)?;
            }
        }
        Ok(())
    }
}

/// Whether /etc/passwd's password field sends logins to /etc/shadow (`x`, or the
/// old `##name`), as glibc's and PAM's readers take it.
fn shadowed(field: &[u8], name: &str) -> bool {
    field == b"x" || field.strip_prefix(b"##") == Some(name.as_bytes())
}

/// An account file of `etc`, open, and its content; `None` when it is missing.
fn read(
    etc: BorrowedFd<'_>,
    etc_name: &str,
    name: &str,
) -> Result<Option<(OwnedFd, Vec<u8>)>, Error> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(etc, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => {
            return Err(std::io::Error::from(e)).context(|| format!("open {etc_name}/{name}"))
        }
    };
    let mut content = Vec::new();
    let mut file = File::from(fd);
    file.read_to_end(&mut content)
        .context(|| format!("read {etc_name}/{name}"))?;
    Ok(Some((OwnedFd::from(file), content)))
}
