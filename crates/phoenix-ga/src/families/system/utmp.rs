//! Logged-in users from the utmp file (`struct utmp` records, as glibc writes them).
//!
//! The record layout is the C library's `struct utmpx` (the same as `struct utmp`),
//! taken from the libc crate so that it is right on every architecture. On x86-64 it is
//! 384 bytes: ut_type i16 (+2 padding), ut_pid i32, ut_line [32], ut_id [4],
//! ut_user [32], ut_host [256], ut_exit 2×i16, ut_session i32, ut_tv {i32 sec, i32 usec}
//! (32-bit times, so that i386 programs share the file), ut_addr_v6 [4×i32], 20 unused.
//! aarch64 and s390x use a native `long` session and `struct timeval` instead (400 bytes).

use std::io;
use std::mem::size_of;
use std::path::Path;

use phoenix_proto::types::system::User;

use super::users::Session;
use crate::error::{Context as _, Error};

/// One record.
type Record = libc::utmpx;

/// Size of one record.
pub const RECORD: usize = size_of::<Record>();

/// Reads the sessions of the utmp file at `path`; `Ok(None)` when the file does not
/// exist (the system does not keep utmp), so that the caller can ask logind instead.
pub fn read(path: &Path) -> Result<Option<Vec<Session>>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(sessions(&bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context(|| format!("read {}", path.display())),
    }
}

/// Every USER_PROCESS record (a login still open), in file order; a trailing partial
/// record (a file being written) is ignored.
pub fn sessions(bytes: &[u8]) -> Vec<Session> {
    bytes
        .chunks_exact(RECORD)
        .map(|chunk| {
            // SAFETY: `chunk` holds exactly size_of::<Record>() bytes, read_unaligned
            // needs no alignment, and `utmpx` is plain integers and byte arrays, for
            // which every bit pattern is a valid value.
            unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast::<Record>()) }
        })
        .filter(|r| r.ut_type == libc::USER_PROCESS)
        .map(|r| Session {
            user: text(&r.ut_user),
            tty: text(&r.ut_line),
            host: text(&r.ut_host),
            secs: r.ut_tv.tv_sec.epoch(),
            micros: micros(r.ut_tv.tv_usec.into()),
        })
        .collect()
}

/// The users `sysinfo` lists from a utmp file's bytes: the sessions with a user name
/// and a remote host, in file order, as the original agent reported them (local
/// console logins have no host).
pub fn parse(bytes: &[u8]) -> Vec<User> {
    sessions(bytes)
        .iter()
        .filter_map(Session::remote_user)
        .collect()
}

/// A NUL-padded field; it fills the whole field when it is exactly that long.
fn text(field: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = field
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c.to_ne_bytes()[0])
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `ut_tv.tv_usec`, which a well-formed record keeps below one second; anything else
/// is read as 0 rather than trusted.
fn micros(usec: i64) -> u32 {
    u32::try_from(usec).ok().filter(|&u| u < 1_000_000).unwrap_or(0)
}

/// `ut_tv.tv_sec`: 32 bits on x86-64 and i386, a 64-bit `time_t` elsewhere.
trait Seconds {
    /// Seconds since the epoch.
    fn epoch(self) -> i64;
}

impl Seconds for i32 {
    /// glibc 2.40 and later read the 32-bit field as unsigned so that the file keeps
    /// working past 2038, and so do we.
    fn epoch(self) -> i64 {
        i64::from(u32::from_ne_bytes(self.to_ne_bytes()))
    }
}

impl Seconds for i64 {
    fn epoch(self) -> i64 {
        self
    }
}

/// Builds one record, for the tests of this module and of the `sysinfo` module.
#[cfg(test)]
pub fn record(kind: i16, line: &str, user: &str, host: &str, sec: u32) -> Vec<u8> {
    record_at(kind, line, user, host, sec, 123456)
}

/// [`record`] with the microseconds of its login time.
#[cfg(test)]
pub fn record_at(kind: i16, line: &str, user: &str, host: &str, sec: u32, usec: i32) -> Vec<u8> {
    fn put(field: &mut [libc::c_char], s: &str) {
        for (d, &b) in field.iter_mut().zip(s.as_bytes()) {
            *d = libc::c_char::from_ne_bytes([b]);
        }
    }
    // SAFETY: all-zero bytes are a valid `utmpx` (integers and byte arrays only).
    let mut r: Record = unsafe { std::mem::zeroed() };
    r.ut_type = kind;
    r.ut_pid = 4242;
    put(&mut r.ut_line, line);
    put(&mut r.ut_id, "ts/0");
    put(&mut r.ut_user, user);
    put(&mut r.ut_host, host);
    // The raw 32-bit pattern, also past 2038 (x86-64 keeps a 32-bit field here).
    #[allow(clippy::cast_possible_wrap)]
    {
        r.ut_tv.tv_sec = sec as _;
    }
    // A 64-bit field on aarch64 and s390x, where the conversion is not useless.
    #[allow(clippy::useless_conversion)]
    {
        r.ut_tv.tv_usec = usec.into();
    }
    r.ut_addr_v6 = [0x0700_000a, 0, 0, 0];
    // SAFETY: `r` is a live value of RECORD bytes; viewing it as bytes is always valid
    // (the padding bytes are zero, written by `zeroed`).
    let bytes = unsafe { std::slice::from_raw_parts((&r as *const Record).cast::<u8>(), RECORD) };
    bytes.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{BOOT_TIME, DEAD_PROCESS, LOGIN_PROCESS, USER_PROCESS};

    fn user(name: &str, device: &str, host: &str, t: i64) -> User {
        User {
            name: name.into(),
            device: device.into(),
            host: host.into(),
            login_time: t,
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn layout_is_glibcs() {
        use std::mem::offset_of;
        assert_eq!(RECORD, 384);
        assert_eq!(offset_of!(Record, ut_pid), 4);
        assert_eq!(offset_of!(Record, ut_line), 8);
        assert_eq!(offset_of!(Record, ut_user), 44);
        assert_eq!(offset_of!(Record, ut_host), 76);
        assert_eq!(offset_of!(Record, ut_tv), 340);
        assert_eq!(offset_of!(Record, ut_addr_v6), 348);
        // A record written by hand at the documented offsets reads back.
        let mut raw = vec![0u8; 384];
        raw[0..2].copy_from_slice(&USER_PROCESS.to_ne_bytes());
        raw[8..13].copy_from_slice(b"pts/4");
        raw[44..48].copy_from_slice(b"root");
        raw[76..84].copy_from_slice(b"10.0.0.9");
        raw[340..344].copy_from_slice(&1_700_000_000u32.to_ne_bytes());
        assert_eq!(
            parse(&raw),
            vec![user("root", "pts/4", "10.0.0.9", 1_700_000_000)]
        );
    }

    #[test]
    fn keeps_remote_user_processes_only() {
        let mut f = Vec::new();
        f.extend(record(
            BOOT_TIME,
            "~",
            "reboot",
            "6.1.0-27-amd64",
            1_700_000_000,
        ));
        f.extend(record(LOGIN_PROCESS, "tty1", "LOGIN", "", 1_700_000_010));
        f.extend(record(
            USER_PROCESS,
            "pts/0",
            "root",
            "79.172.60.6",
            1_478_346_362,
        ));
        f.extend(record(USER_PROCESS, "tty2", "alice", "", 1_700_000_020));
        f.extend(record(DEAD_PROCESS, "pts/1", "", "", 1_700_000_030));
        f.extend(record(USER_PROCESS, "pts/2", "", "10.0.0.1", 1_700_000_040));
        f.extend(record(
            USER_PROCESS,
            "pts/3",
            "bob",
            "2001:db8::1",
            1_700_000_050,
        ));
        assert_eq!(
            parse(&f),
            vec![
                user("root", "pts/0", "79.172.60.6", 1_478_346_362),
                user("bob", "pts/3", "2001:db8::1", 1_700_000_050),
            ]
        );
    }

    #[test]
    fn sessions_are_every_user_process_with_its_microseconds() {
        let mut f = Vec::new();
        f.extend(record(BOOT_TIME, "~", "reboot", "6.1.0", 1_700_000_000));
        f.extend(record_at(USER_PROCESS, "tty2", "alice", "", 1_700_000_020, 5));
        f.extend(record(DEAD_PROCESS, "pts/1", "", "", 1_700_000_030));
        f.extend(record_at(USER_PROCESS, "pts/3", "bob", "h", 1_700_000_050, 999_999));
        // A garbled microsecond field is not trusted.
        f.extend(record_at(USER_PROCESS, "pts/4", "carol", "", 7, 2_000_000));
        f.extend(record_at(USER_PROCESS, "pts/5", "dave", "", 8, -1));
        let s = sessions(&f);
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.user.as_str(), s.tty.as_str(), s.host.as_str(), s.secs, s.micros))
            .collect();
        assert_eq!(
            got,
            vec![
                ("alice", "tty2", "", 1_700_000_020, 5),
                ("bob", "pts/3", "h", 1_700_000_050, 999_999),
                ("carol", "pts/4", "", 7, 0),
                ("dave", "pts/5", "", 8, 0),
            ]
        );
    }

    #[test]
    fn full_width_fields_and_partial_records() {
        let name = "u".repeat(32);
        let host = "h".repeat(256);
        let line = "l".repeat(32);
        let mut f = record(USER_PROCESS, &line, &name, &host, 0xFFFF_FFF0);
        // A record cut short by a concurrent writer is not a record.
        f.extend(&record(USER_PROCESS, "pts/9", "eve", "x", 1)[..200]);
        let users = parse(&f);
        assert_eq!(users, vec![user(&name, &line, &host, 0xFFFF_FFF0)]);
        assert!(
            users[0].login_time > i64::from(i32::MAX),
            "time read as unsigned"
        );
        assert!(parse(&[]).is_empty());
    }

    #[test]
    fn missing_file_is_none_and_other_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("utmp")).unwrap(), None);
        // A directory cannot be read as a file: EISDIR, with the path in the message.
        let e = read(dir.path()).unwrap_err();
        assert_eq!(e.code(), libc::EISDIR);
        assert_eq!(
            e.message(),
            format!("read {}: Is a directory", dir.path().display())
        );
        let p = dir.path().join("utmp");
        std::fs::write(&p, record(USER_PROCESS, "pts/0", "root", "h", 5)).unwrap();
        let s = read(&p).unwrap().unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].remote_user(), Some(user("root", "pts/0", "h", 5)));
    }
}
