//! Login sessions from systemd-logind's session files, for systems without utmp.
//!
//! logind keeps one `KEY=value` file per session in /run/systemd/sessions/ (plus a
//! `<id>.ref` FIFO, and `.#<id>...` temporary files while it rewrites one). The keys
//! used here: `USER` (or `UID` in very old versions), `TTY` ("pts/0", without "/dev/"),
//! `REMOTE_HOST`, `REALTIME` (login time in microseconds since the epoch), `STATE`
//! ("closing" once the user has logged out while processes linger) and `CLASS`.

use std::io;
use std::path::Path;

use phoenix_proto::types::system::User;

use super::users::Session;
use crate::error::{Context as _, Error};

/// Reads the sessions under `dir`, the counterpart of utmp's USER_PROCESS records:
/// user sessions that are not closing and have a user. A missing directory (no
/// systemd) is an empty list; sessions are sorted by login time.
pub fn read(dir: &Path) -> Result<Vec<Session>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(|| format!("read directory {}", dir.display())),
    };
    let mut sessions = Vec::new();
    for entry in entries {
        let entry = entry.context(|| format!("read directory {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Only regular files: opening a session's FIFO would block.
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if !regular || name.starts_with('.') || name.ends_with(".ref") {
            continue;
        }
        let path = entry.path();
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            // The session ended between readdir and open.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).context(|| format!("read {}", path.display())),
        };
        sessions.extend(session(&text));
    }
    sessions.sort_by(|a, b| {
        (a.secs, a.micros, &a.tty, &a.host).cmp(&(b.secs, b.micros, &b.tty, &b.host))
    });
    Ok(sessions)
}

/// One session file; `None` for a session that is not a user's open login.
pub fn session(text: &str) -> Option<Session> {
    let mut s = Session {
        user: String::new(),
        tty: String::new(),
        host: String::new(),
        secs: 0,
        micros: 0,
    };
    let mut uid = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(value);
        match key {
            "USER" => s.user = value,
            "UID" => uid = Some(value),
            "TTY" => s.tty = value.strip_prefix("/dev/").unwrap_or(&value).to_string(),
            "REMOTE_HOST" => s.host = value,
            "REALTIME" => {
                let us = value.parse::<i64>().unwrap_or(0);
                s.secs = us.div_euclid(1_000_000);
                // rem_euclid of 10^6 is below 10^6: it fits.
                s.micros = u32::try_from(us.rem_euclid(1_000_000)).unwrap_or(0);
            }
            "STATE" if value == "closing" => return None,
            "CLASS" if !value.starts_with("user") => return None,
            _ => {}
        }
    }
    if s.user.is_empty() {
        // logind has written USER since its first release; a bare uid is the best
        // we can do without a passwd lookup (NSS may block on the network).
        s.user = uid.unwrap_or_default();
    }
    (!s.user.is_empty()).then_some(s)
}

/// One session file as `sysinfo` lists it (a remote login), as utmp's are.
pub fn parse(text: &str) -> Option<User> {
    session(text).as_ref().and_then(Session::remote_user)
}

/// Values logind had to escape are written in double quotes with backslash escapes
/// (`env_file_fputs_assignment`); others are bare.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session file as logind 252 writes it for an ssh login.
    const SSH: &str = "# This is private data. Do not parse.
UID=0
USER=root
ACTIVE=1
IS_DISPLAY=0
STATE=active
REMOTE=1
TYPE=tty
ORIGINAL_TYPE=tty
CLASS=user
SCOPE=session-3.scope
FIFO=/run/systemd/sessions/3.ref
SERVICE=sshd
LEADER=1234
TTY=/dev/pts/0
REMOTE_HOST=79.172.60.6
AUDIT=3
SEAT=
REALTIME=1478346362123456
MONOTONIC=123456789
CONTROLLERS=
";

    fn user(name: &str, device: &str, host: &str, t: i64) -> User {
        User {
            name: name.into(),
            device: device.into(),
            host: host.into(),
            login_time: t,
        }
    }

    #[test]
    fn parses_an_ssh_session() {
        assert_eq!(
            parse(SSH),
            Some(user("root", "pts/0", "79.172.60.6", 1478346362))
        );
    }

    #[test]
    fn skips_what_utmp_would_not_list() {
        let local = SSH.replace("REMOTE_HOST=79.172.60.6\n", "");
        assert_eq!(parse(&local), None);
        assert_eq!(parse(&SSH.replace("STATE=active", "STATE=closing")), None);
        assert_eq!(parse(&SSH.replace("CLASS=user", "CLASS=greeter")), None);
        assert!(parse(&SSH.replace("CLASS=user", "CLASS=user-early")).is_some());
        assert_eq!(parse(""), None);
    }

    #[test]
    fn sessions_keep_local_logins_and_microseconds() {
        let local = SSH.replace("REMOTE_HOST=79.172.60.6\n", "");
        let s = session(&local).unwrap();
        assert_eq!(
            (s.user.as_str(), s.tty.as_str(), s.host.as_str(), s.secs, s.micros),
            ("root", "pts/0", "", 1478346362, 123456)
        );
        assert_eq!(session(&SSH.replace("STATE=active", "STATE=closing")), None);
        assert_eq!(session(&SSH.replace("CLASS=user", "CLASS=greeter")), None);
        assert_eq!(session("TTY=tty1\nREALTIME=1\n"), None);
        // A time before the epoch still has its microseconds in 0..10^6.
        let s = session("USER=a\nREALTIME=-1\n").unwrap();
        assert_eq!((s.secs, s.micros), (-1, 999_999));
    }

    #[test]
    fn quoted_values_uid_fallback_and_no_tty() {
        let s = "UID=1000\nREMOTE_HOST=\"host \\\"x\\\" \\\\ y\"\nREALTIME=5\n";
        assert_eq!(parse(s), Some(user("1000", "", "host \"x\" \\ y", 0)));
    }

    #[test]
    fn reads_a_session_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(read(&d.join("missing")).unwrap(), vec![]);
        std::fs::write(
            d.join("7"),
            SSH.replace("pts/0", "pts/1").replace("1478", "1578"),
        )
        .unwrap();
        std::fs::write(d.join("3"), SSH).unwrap();
        std::fs::write(d.join("c1"), SSH.replace("REMOTE_HOST=79.172.60.6\n", "")).unwrap();
        std::fs::write(d.join(".#3abcd"), SSH.replace("root", "tmp")).unwrap();
        nix::unistd::mkfifo(&d.join("3.ref"), nix::sys::stat::Mode::S_IRUSR).unwrap();
        let got: Vec<_> = read(d)
            .unwrap()
            .iter()
            .map(|s| (s.user.clone(), s.tty.clone(), s.host.clone(), s.secs, s.micros))
            .collect();
        let r = |tty: &str, host: &str, secs| ("root".to_string(), tty.to_string(), host.to_string(), secs, 123456);
        // The local session (c1) is a session too; sysinfo leaves it out, qemu-ga's
        // users list it.
        assert_eq!(
            got,
            vec![
                r("pts/0", "", 1478346362),
                r("pts/0", "79.172.60.6", 1478346362),
                r("pts/1", "79.172.60.6", 1578346362),
            ]
        );
        // A directory that cannot be read names itself and carries its errno.
        let e = read(&d.join("3")).unwrap_err();
        assert_eq!(e.code(), libc::ENOTDIR);
        let want = format!("read directory {}: Not a directory", d.join("3").display());
        assert_eq!(e.message(), want);
    }
}
