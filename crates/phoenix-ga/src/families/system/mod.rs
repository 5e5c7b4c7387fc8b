//! The system family: the guest's summary (`sysinfo`), read straight from the kernel.
//!
//! uname(2) and sysinfo(2) for the kernel's identity, uptime, load and memory; utmp or
//! else systemd-logind's session files for the users; /sys/block, mountinfo and
//! statvfs for the disks. No subprocess (the original forked `getconf LONG_BIT`).
//!
//! It may run while the filesystems are frozen: everything it reads lives in /proc,
//! /sys or /run (tmpfs), reading never waits for a thaw (a frozen filesystem only skips
//! the atime update), and statvfs takes no freeze protection. The host can thus still
//! see the guest's state during a long backup.

pub(crate) mod disks;
mod kernel;
pub(crate) mod logind;
mod phoenix;
pub(crate) mod statfs;
pub(crate) mod utmp;

use std::path::{Path, PathBuf};
use std::time::Duration;

use phoenix_proto::types::system::{cmd, Disk, SysInfo, User};

use super::{Family, Setup};
use crate::command::{entry, Entry};
use crate::error::Error;

/// The system family's state: statvfs calls that may still hang (see [`statfs`]).
#[derive(Debug, Default)]
pub struct System {
    prober: statfs::Prober,
}

impl Family for System {
    fn new(_: &Setup<'_>) -> Self {
        Self::default()
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 1] = [entry::<cmd::Sysinfo>()];
        &COMMANDS
    }
}

impl System {
    /// The guest's summary, from the real system's files.
    pub fn sysinfo(&self) -> Result<SysInfo, Error> {
        collect(&Sources::system(), self)
    }
}

/// Where the information is read; tests point these at fixtures.
#[derive(Debug, Clone)]
pub struct Sources {
    /// utmp files to try in order (the first that exists is used).
    pub utmp: Vec<PathBuf>,
    /// systemd-logind's session directory, read when there is no utmp.
    pub sessions: PathBuf,
    /// The directory of block devices.
    pub sys_block: PathBuf,
    /// The mount table with device numbers.
    pub mountinfo: PathBuf,
    /// How long to wait for statvfs.
    pub statfs_timeout: Duration,
}

impl Sources {
    /// The real system's files. /var/run/utmp is for old systems where /var/run is
    /// not yet a link to /run.
    pub fn system() -> Self {
        Sources {
            utmp: vec!["/run/utmp".into(), "/var/run/utmp".into()],
            sessions: "/run/systemd/sessions".into(),
            sys_block: "/sys/block".into(),
            mountinfo: "/proc/self/mountinfo".into(),
            statfs_timeout: statfs::TIMEOUT,
        }
    }
}

/// Gathers the whole summary from `src`.
pub fn collect(src: &Sources, state: &System) -> Result<SysInfo, Error> {
    let counters = kernel::counters()?;
    Ok(SysInfo {
        uname: kernel::uname()?,
        long_bit: kernel::long_bit(),
        uptime: counters.uptime,
        loadavg: counters.loadavg,
        ram: counters.ram,
        swap: counters.swap,
        users: users(&src.utmp, &src.sessions)?,
        disks: disks(src, state)?,
    })
}

/// Users from the first utmp file that exists, else from logind; neither is an empty
/// list (many current systems keep no utmp, containers and minimal guests no logind).
fn users(utmp: &[PathBuf], sessions: &Path) -> Result<Vec<User>, Error> {
    for path in utmp {
        if let Some(users) = utmp::read(path)? {
            return Ok(users);
        }
    }
    logind::read(sessions)
}

/// Every real disk, with the mount that stands for it and that filesystem's sizes.
fn disks(src: &Sources, state: &System) -> Result<Vec<Disk>, Error> {
    let devices = disks::scan(&src.sys_block)?;
    let mounts = disks::read_mounts(&src.mountinfo)?;
    let mut out: Vec<Disk> = devices
        .iter()
        .map(|d| {
            let mount = disks::mount_of(d, &mounts);
            Disk {
                name: d.path.clone(),
                is_mounted: mount.is_some(),
                mountpoint: mount.map(|m| m.mountpoint.clone()).unwrap_or_default(),
                size_total: 0,
                size_used: 0,
                size_avail: 0,
            }
        })
        .collect();
    let mut wanted: Vec<&str> = out
        .iter()
        .filter(|d| d.is_mounted)
        .map(|d| d.mountpoint.as_str())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let sizes = state.prober.sizes(&wanted, src.statfs_timeout);
    let sizes: Vec<(String, statfs::Sizes)> = wanted
        .iter()
        .zip(sizes)
        .filter_map(|(mp, r)| match r {
            Ok(s) => Some((mp.to_string(), s)),
            Err(why) => {
                // Reported without sizes (0), as an unmounted disk; the keys stay.
                // A mountpoint already known hung is not news on every reply.
                let hung = state.prober.hung();
                if why == statfs::Missing::StillHung {
                    tracing::debug!(mountpoint = mp, hung, "statvfs still blocked");
                } else {
                    tracing::warn!(mountpoint = mp, ?why, hung, "statvfs gave no sizes");
                }
                None
            }
        })
        .collect();
    for disk in &mut out {
        if let Some((_, s)) = sizes.iter().find(|(mp, _)| *mp == disk.mountpoint) {
            disk.size_total = s.total;
            disk.size_used = s.used;
            disk.size_avail = s.avail;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utmp_first_then_logind_then_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let utmp_a = d.join("run-utmp");
        let utmp_b = d.join("var-run-utmp");
        let sessions = d.join("sessions");
        let paths = [utmp_a.clone(), utmp_b.clone()];
        assert_eq!(users(&paths, &sessions).unwrap(), vec![]);

        std::fs::create_dir(&sessions).unwrap();
        std::fs::write(
            sessions.join("4"),
            "USER=carol\nTTY=pts/5\nREMOTE_HOST=h1\nREALTIME=9000000\n",
        )
        .unwrap();
        let from_logind = users(&paths, &sessions).unwrap();
        assert_eq!(from_logind.len(), 1);
        assert_eq!(
            (from_logind[0].name.as_str(), from_logind[0].login_time),
            ("carol", 9)
        );

        std::fs::write(
            &utmp_b,
            utmp::record(libc::USER_PROCESS, "pts/1", "dave", "h2", 7),
        )
        .unwrap();
        assert_eq!(users(&paths, &sessions).unwrap()[0].name, "dave");
        // An existing but empty utmp is the truth: nobody is logged in.
        std::fs::write(&utmp_a, b"").unwrap();
        assert_eq!(users(&paths, &sessions).unwrap(), vec![]);
    }

    #[test]
    fn disks_from_a_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sys = d.join("block");
        for (rel, dev) in [
            ("vda", "254:0"),
            ("vda/vda1", "254:1"),
            ("vdb", "254:16"),
            ("loop0", "7:0"),
        ] {
            std::fs::create_dir_all(sys.join(rel)).unwrap();
            std::fs::write(sys.join(rel).join("dev"), dev).unwrap();
        }
        std::fs::write(sys.join("vda/vda1/partition"), "1").unwrap();
        std::os::unix::fs::symlink(".", sys.join("vda/device")).unwrap();
        std::os::unix::fs::symlink(".", sys.join("vdb/device")).unwrap();
        // vda1 is "mounted" on a real directory, so that statvfs answers.
        let mnt = d.display().to_string();
        let mountinfo = d.join("mountinfo");
        let line = format!(
            "27 1 254:1 / {mnt} rw - ext4 /dev/vda1 rw\n28 1 7:0 / /x rw - ext4 /dev/loop0 rw\n"
        );
        std::fs::write(&mountinfo, line).unwrap();
        let src = Sources {
            utmp: vec![],
            sessions: d.join("none"),
            sys_block: sys,
            mountinfo,
            statfs_timeout: Duration::from_secs(30),
        };
        let disks = disks(&src, &System::default()).unwrap();
        assert_eq!(disks.len(), 2);
        let (vda, vdb) = (&disks[0], &disks[1]);
        assert_eq!(
            (vda.name.as_str(), vda.is_mounted, vda.mountpoint.as_str()),
            ("/dev/vda", true, mnt.as_str())
        );
        let truth = statfs::statvfs(&mnt).unwrap();
        assert_eq!(vda.size_total, truth.total);
        assert!(vda.size_total > 0);
        assert_eq!(
            vdb,
            &Disk {
                name: "/dev/vdb".into(),
                is_mounted: false,
                mountpoint: String::new(),
                size_total: 0,
                size_used: 0,
                size_avail: 0
            }
        );
    }
}
