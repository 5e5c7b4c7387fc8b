//! Users, read from /etc/passwd itself.
//!
//! The agent is linked statically, and a static glibc cannot load the NSS modules
//! that getpwnam(3) would use (sss, ldap, systemd's): it reads the file instead, as
//! the shadow suite's own tools do. A user known only to a directory service (LDAP,
//! SSSD, systemd-homed) is therefore "not found", and a password or key is set only
//! for local users.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::errno::Errno;

use super::colon;
use crate::error::Error;

/// A local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The home directory.
    pub home: PathBuf,
}

/// The refusal of a user name that cannot be in the account files (qemu-ga's words).
/// Empty, or with `:`, a newline or NUL, it would split a line of /etc/passwd.
pub fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::invalid("the username is empty"));
    }
    if name.contains([':', '\n', '\0']) {
        return Err(Error::invalid("forbidden characters in username"));
    }
    // NIS compat lines (`+`, `+name`, `-name`) are not users: changing "+" would give
    // every NIS user the password field written there.
    if name.starts_with(['+', '-']) {
        return Err(Error::invalid("forbidden characters in username"));
    }
    Ok(())
}

/// The error of a user not in /etc/passwd.
pub fn not_found(name: &str) -> Error {
    Error::errno(
        Errno::ENOENT,
        format!("failed to lookup user '{name}': no such user in /etc/passwd"),
    )
}

/// `name`'s entry in the text of /etc/passwd.
pub fn find(passwd: &[u8], name: &str) -> Result<User, Error> {
    let at = colon::find(passwd, name).ok_or_else(|| not_found(name))?;
    let line = &passwd[at];
    let malformed = || {
        Error::errno(
            Errno::EINVAL,
            format!("the entry of '{name}' in /etc/passwd is malformed"),
        )
    };
    let id = |i| -> Result<u32, Error> {
        let text = colon::field(line, i).ok_or_else(malformed)?;
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(malformed)
    };
    let (uid, gid) = (id(2)?, id(3)?);
    let home = colon::field(line, 5)
        .filter(|h| h.starts_with(b"/"))
        .ok_or_else(malformed)?;
    Ok(User {
        name: name.to_string(),
        uid,
        gid,
        home: PathBuf::from(OsStr::from_bytes(home)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_user() {
        let passwd = b"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:100:A:/home/alice:/bin/sh\n";
        assert_eq!(
            find(passwd, "alice").unwrap(),
            User {
                name: "alice".into(),
                uid: 1000,
                gid: 100,
                home: "/home/alice".into()
            }
        );
        let e = find(passwd, "carol").unwrap_err();
        assert_eq!(e.code(), libc::ENOENT);
        assert_eq!(
            e.message(),
            "failed to lookup user 'carol': no such user in /etc/passwd"
        );
    }

    #[test]
    fn refuses_malformed_entries() {
        for line in [
            "u:x:one:1::/home/u:/bin/sh",
            "u:x:1:-1::/home/u:/bin/sh",
            "u:x:1:1::relative:/bin/sh",
            "u:x:1:1::",
            "u:x:1",
        ] {
            let e = find(line.as_bytes(), "u").unwrap_err();
            assert!(e.message().contains("malformed"), "{line}: {}", e.message());
        }
    }

    #[test]
    fn names_that_cannot_be_in_the_files() {
        check_name("alice").unwrap();
        check_name("a.b-c_d$").unwrap();
        assert_eq!(
            check_name("a:b").unwrap_err().message(),
            "invalid arguments: forbidden characters in username"
        );
        check_name("a\nb").unwrap_err();
        check_name("a\0b").unwrap_err();
        check_name("").unwrap_err();
        for nis in ["+", "+alice", "-bob"] {
            check_name(nis).unwrap_err();
        }
    }
}
