//! Login sessions, from utmp or else systemd-logind, and the two ways the dialects
//! list them: `sysinfo`'s remote sessions (the original agent's rule) and qemu-ga's
//! `guest-get-users` (each user once, with the earliest login).
//!
//! Some current distributions no longer write utmp (its 32-bit times end in 2038);
//! their sessions are in logind's files. qemu-ga reads utmp alone (getutxent), so on
//! those systems it lists nobody; we read logind's sessions there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use phoenix_proto::types::system::qga::GuestUser;
use phoenix_proto::types::system::User;

use super::{logind, utmp};
use crate::error::Error;

/// One login still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Login name ("" in a malformed record).
    pub user: String,
    /// Terminal without "/dev/" ("pts/0"); "" when the session has none.
    pub tty: String,
    /// Remote host; "" for a local login.
    pub host: String,
    /// Login time: whole seconds since the epoch...
    pub secs: i64,
    /// ...and the microseconds after them (0 to 999 999).
    pub micros: u32,
}

impl Session {
    /// The session as `sysinfo` lists it: only a named user's remote login.
    pub fn remote_user(&self) -> Option<User> {
        (!self.user.is_empty() && !self.host.is_empty()).then(|| User {
            name: self.user.clone(),
            device: self.tty.clone(),
            host: self.host.clone(),
            login_time: self.secs,
        })
    }

    /// The login time in fractional seconds, computed as qemu-ga computes it (seconds
    /// plus microseconds / 10^6, in doubles), so that both agents give the same float.
    pub fn login_time(&self) -> f64 {
        // Seconds since the epoch fit a double's 53-bit mantissa exactly for the next
        // 285 million years; a garbled record is at worst rounded.
        #[allow(clippy::cast_precision_loss)]
        let secs = self.secs as f64;
        secs + f64::from(self.micros) / 1e6
    }
}

/// The sessions of the first utmp file that exists, else logind's; neither is an empty
/// list (containers and minimal guests keep neither).
pub fn read(utmp: &[PathBuf], sessions: &Path) -> Result<Vec<Session>, Error> {
    for path in utmp {
        if let Some(found) = utmp::read(path)? {
            return Ok(found);
        }
    }
    logind::read(sessions)
}

/// `sysinfo`'s users: the remote sessions, in order.
pub fn remote(sessions: &[Session]) -> Vec<User> {
    sessions.iter().filter_map(Session::remote_user).collect()
}

/// `guest-get-users`: each user once, in the order of their first session, with
/// the earliest login time of their sessions. A record without a user name is not a
/// user (qemu-ga would list "").
pub fn logged_in(sessions: &[Session]) -> Vec<GuestUser> {
    let mut out: Vec<GuestUser> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for s in sessions.iter().filter(|s| !s.user.is_empty()) {
        let t = s.login_time();
        match seen.get(s.user.as_str()) {
            Some(&i) => {
                if t < out[i].login_time {
                    out[i].login_time = t;
                }
            }
            None => {
                seen.insert(&s.user, out.len());
                out.push(GuestUser {
                    user: s.user.clone(),
                    login_time: t,
                    domain: None,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(user: &str, tty: &str, host: &str, secs: i64, micros: u32) -> Session {
        Session {
            user: user.into(),
            tty: tty.into(),
            host: host.into(),
            secs,
            micros,
        }
    }

    fn gu(user: &str, login_time: f64) -> GuestUser {
        GuestUser {
            user: user.into(),
            login_time,
            domain: None,
        }
    }

    #[test]
    fn one_entry_per_user_with_the_earliest_login() {
        let list = [
            s("bob", "pts/1", "10.0.0.1", 1_700_000_100, 500_000),
            s("root", "tty1", "", 1_700_000_000, 250_000),
            s("bob", "pts/2", "", 1_700_000_050, 0),
            s("", "pts/3", "x", 1, 0),
            s("bob", "pts/4", "", 1_700_000_200, 0),
        ];
        assert_eq!(
            logged_in(&list),
            vec![gu("bob", 1_700_000_050.0), gu("root", 1_700_000_000.25)]
        );
        assert_eq!(logged_in(&[]), vec![]);
    }

    #[test]
    fn login_time_is_qemu_gas_double() {
        // seconds + micros / 1e6 in doubles, not (seconds * 1e6 + micros) / 1e6.
        let t = s("a", "", "", 1_478_346_362, 123_457).login_time();
        assert_eq!(t, 1_478_346_362.0 + 123_457.0 / 1e6);
        assert_eq!(t.to_string(), "1478346362.123457");
    }

    #[test]
    fn sysinfo_keeps_named_remote_sessions() {
        let list = [
            s("root", "pts/0", "79.172.60.6", 1_478_346_362, 999_999),
            s("alice", "tty2", "", 1_700_000_020, 0),
            s("", "pts/2", "10.0.0.1", 1_700_000_040, 0),
        ];
        assert_eq!(
            remote(&list),
            vec![User {
                name: "root".into(),
                device: "pts/0".into(),
                host: "79.172.60.6".into(),
                login_time: 1_478_346_362,
            }]
        );
    }

    #[test]
    fn utmp_first_then_logind_then_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let utmp_a = d.join("run-utmp");
        let utmp_b = d.join("var-run-utmp");
        let sessions = d.join("sessions");
        let paths = [utmp_a.clone(), utmp_b.clone()];
        assert_eq!(read(&paths, &sessions).unwrap(), vec![]);

        std::fs::create_dir(&sessions).unwrap();
        std::fs::write(
            sessions.join("4"),
            "USER=carol\nTTY=pts/5\nREMOTE_HOST=h1\nREALTIME=9000001\n",
        )
        .unwrap();
        assert_eq!(
            read(&paths, &sessions).unwrap(),
            vec![s("carol", "pts/5", "h1", 9, 1)]
        );

        std::fs::write(
            &utmp_b,
            utmp::record_at(libc::USER_PROCESS, "pts/1", "dave", "h2", 7, 42),
        )
        .unwrap();
        assert_eq!(
            read(&paths, &sessions).unwrap(),
            vec![s("dave", "pts/1", "h2", 7, 42)]
        );
        // An existing but empty utmp is the truth: nobody is logged in.
        std::fs::write(&utmp_a, b"").unwrap();
        assert_eq!(read(&paths, &sessions).unwrap(), vec![]);
    }
}
