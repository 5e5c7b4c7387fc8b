//! The system family: the guest's summary (`sysinfo`) and qemu-ga's inventory
//! commands (`guest-get-osinfo`, `-host-name`, `-timezone`, `-users`, `-time`,
//! `-vcpus`, `-memory-blocks`, `-memory-block-info`, `-load`, `-cpustats`), read
//! straight from the kernel and a few files.
//!
//! uname(2), sysinfo(2) and clock_gettime(2) for the kernel's identity, uptime, load,
//! memory and time; utmp or else systemd-logind's session files for the users (both
//! dialects, each with its own rule: [`users`]); /sys/block, mountinfo and statvfs for
//! the disks; /sys/devices/system/{cpu,memory} for processors and memory blocks;
//! /proc/stat for CPU times; os-release(5) and /etc/localtime for the distribution and
//! the time zone. No subprocess (the original forked `getconf LONG_BIT`). Every file
//! is found through [`Sources`], which tests point at fixture trees.
//!
//! All may run while the filesystems are frozen: what they read lives in /proc, /sys,
//! /run (tmpfs) or, for os-release and the zone files, is only read; reading never
//! waits for a thaw (a frozen filesystem only skips the atime update), and statvfs
//! takes no freeze protection. The host can thus still see the guest's state during a
//! long backup (qemu-ga refuses all of these while frozen).

pub(crate) mod cpus;
pub(crate) mod disks;
mod kernel;
pub(crate) mod logind;
mod memory;
pub(crate) mod osrelease;
mod phoenix;
pub(crate) mod posix_tz;
mod qga;
pub(crate) mod statfs;
mod sysfs;
pub(crate) mod timezone;
mod users;
pub(crate) mod utmp;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phoenix_proto::types::system::qga::{GuestCpuStats, GuestLogicalProcessor, GuestMemoryBlock};
use phoenix_proto::types::system::qga::cmd as qga_cmd;
use phoenix_proto::types::system::{cmd, Disk, LoadAvg, SysInfo, Uname};
use phoenix_proto::Dialect;

use super::{Family, Setup};
use crate::command::{entry, entry_in, Entry};
use crate::error::Error;
pub use osrelease::OsRelease;
pub use timezone::Zone;
pub use users::Session;

/// The system family's state: where it reads (see [`Sources`]) and the statvfs calls
/// that may still hang (see [`statfs`]).
#[derive(Debug)]
pub struct System {
    src: Sources,
    prober: statfs::Prober,
}

impl Family for System {
    fn new(_: &Setup<'_>) -> Self {
        Self::with_sources(Sources::system())
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 14] = [
            entry::<cmd::Sysinfo>(),
            entry::<qga_cmd::GuestGetOsinfo>(),
            entry::<qga_cmd::GuestGetHostName>(),
            entry::<qga_cmd::GuestGetTimezone>(),
            entry::<qga_cmd::GuestGetUsers>(),
            entry::<qga_cmd::GuestGetTime>(),
            entry::<qga_cmd::GuestGetVcpus>(),
            entry::<qga_cmd::GuestGetMemoryBlocks>(),
            entry::<qga_cmd::GuestGetMemoryBlockInfo>(),
            entry::<qga_cmd::GuestGetLoad>(),
            entry::<qga_cmd::GuestGetCpustats>(),
            // The readers of the control family's commands, in the Phoenix dialect too.
            entry_in::<qga_cmd::GuestGetTime>(Dialect::Phoenix),
            entry_in::<qga_cmd::GuestGetVcpus>(Dialect::Phoenix),
            entry_in::<qga_cmd::GuestGetMemoryBlocks>(Dialect::Phoenix),
        ];
        &COMMANDS
    }
}

/// The operations, each on the files of [`Sources`].
impl System {
    /// The family reading from `src`.
    pub fn with_sources(src: Sources) -> Self {
        System {
            src,
            prober: statfs::Prober::default(),
        }
    }

    /// The guest's summary (`sysinfo`).
    pub fn sysinfo(&self) -> Result<SysInfo, Error> {
        collect(&self.src, self)
    }

    /// The kernel's identity, host name included.
    pub fn uname(&self) -> Result<Uname, Error> {
        kernel::uname()
    }

    /// The host name, as the kernel has it now.
    pub fn host_name(&self) -> Result<String, Error> {
        kernel::host_name()
    }

    /// The distribution's identity; an empty one when no os-release file can be read.
    pub fn os_release(&self) -> OsRelease {
        osrelease::read(&self.src.os_release)
    }

    /// The local time zone in force now.
    pub fn timezone(&self) -> Zone {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        timezone::local(
            &self.src.localtime,
            &self.src.zoneinfo,
            self.src.tz.as_deref(),
            now,
        )
    }

    /// The open login sessions, from utmp or else logind.
    pub fn sessions(&self) -> Result<Vec<Session>, Error> {
        users::read(&self.src.utmp, &self.src.sessions)
    }

    /// The system clock in nanoseconds since the epoch.
    pub fn now_ns(&self) -> Result<i64, Error> {
        kernel::now_ns()
    }

    /// The load averages (the kernel's exact figures, as sysinfo(2) and glibc's
    /// getloadavg(3) give them).
    pub fn load(&self) -> Result<LoadAvg, Error> {
        kernel::counters().map(|c| c.loadavg)
    }

    /// The logical processors.
    pub fn vcpus(&self) -> Result<Vec<GuestLogicalProcessor>, Error> {
        cpus::vcpus(&self.src.sys_cpu)
    }

    /// Each CPU's times since boot, in milliseconds.
    pub fn cpu_stats(&self) -> Result<Vec<GuestCpuStats>, Error> {
        cpus::cpu_stats(&self.src.proc_stat, cpus::clk_tck())
    }

    /// The memory blocks.
    pub fn memory_blocks(&self) -> Result<Vec<GuestMemoryBlock>, Error> {
        memory::blocks(&self.src.sys_memory)
    }

    /// Bytes in one memory block.
    pub fn memory_block_size(&self) -> Result<u64, Error> {
        memory::block_size(&self.src.sys_memory)
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
    /// The logical processors (`cpuN`).
    pub sys_cpu: PathBuf,
    /// The memory blocks (`memoryN`, `block_size_bytes`).
    pub sys_memory: PathBuf,
    /// The kernel's counters, with the CPU times.
    pub proc_stat: PathBuf,
    /// os-release files to try in order (the first that can be read is used).
    pub os_release: Vec<PathBuf>,
    /// The system's zone file.
    pub localtime: PathBuf,
    /// The directory of named zone files.
    pub zoneinfo: PathBuf,
    /// The agent's `TZ`, which wins over `localtime`.
    pub tz: Option<String>,
}

impl Sources {
    /// The system's paths under `root` ("/" for the real system), with no
    /// environment. /var/run/utmp is for old systems where /var/run is not yet a link
    /// to /run.
    pub fn under(root: &Path) -> Self {
        let p = |rel: &str| root.join(rel);
        Sources {
            utmp: vec![p("run/utmp"), p("var/run/utmp")],
            sessions: p("run/systemd/sessions"),
            sys_block: p("sys/block"),
            mountinfo: p("proc/self/mountinfo"),
            statfs_timeout: statfs::TIMEOUT,
            sys_cpu: p("sys/devices/system/cpu"),
            sys_memory: p("sys/devices/system/memory"),
            proc_stat: p("proc/stat"),
            os_release: vec![p("etc/os-release"), p("usr/lib/os-release")],
            localtime: p("etc/localtime"),
            zoneinfo: p("usr/share/zoneinfo"),
            tz: None,
        }
    }

    /// The real system's files, and the agent's environment as qemu-ga honours it:
    /// `QGA_OS_RELEASE` names the only os-release file to read (QEMU's tests use it),
    /// `TZ` the time zone, `TZDIR` the directory of zone files.
    pub fn system() -> Self {
        let mut src = Self::under(Path::new("/"));
        if let Some(path) = std::env::var_os("QGA_OS_RELEASE") {
            src.os_release = vec![PathBuf::from(path)];
        }
        src.tz = std::env::var_os("TZ").map(|v| v.to_string_lossy().into_owned());
        if let Some(dir) = std::env::var_os("TZDIR").filter(|d| !d.is_empty()) {
            src.zoneinfo = PathBuf::from(dir);
        }
        src
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
        users: users::remote(&users::read(&src.utmp, &src.sessions)?),
        disks: disks(src, state)?,
    })
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
            sys_block: sys,
            mountinfo,
            statfs_timeout: Duration::from_secs(30),
            ..Sources::under(&d.join("none"))
        };
        let disks = disks(&src, &System::with_sources(src.clone())).unwrap();
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

    /// Every operation reads under the root it is given: a whole fixture tree.
    #[test]
    fn operations_read_under_their_root() {
        use std::fs;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mk = |rel: &str, text: &[u8]| {
            let p = root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        mk("sys/devices/system/cpu/cpu0/topology/core_id", b"0\n");
        mk("sys/devices/system/cpu/cpu3/online", b"0\n");
        mk("sys/devices/system/memory/block_size_bytes", b"8000000\n");
        mk("sys/devices/system/memory/memory4/state", b"online\n");
        mk("sys/devices/system/memory/memory4/removable", b"1\n");
        mk("proc/stat", b"cpu  2 0 2 2\ncpu0 1 0 1 1\ncpu3 1 0 1 1 0 0 0 0 0 0\n");
        mk("usr/lib/os-release", b"ID=fixture\nNAME=\"Fixture OS\"\n");
        mk("usr/share/zoneinfo/Etc/X", b"not a zone file");
        mk("run/systemd/sessions/1", b"USER=amy\nTTY=tty1\nREALTIME=5000000\n");
        let system = System::with_sources(Sources::under(root));

        let v = system.vcpus().unwrap();
        let ids: Vec<_> = v.iter().map(|c| (c.logical_id, c.online, c.can_offline)).collect();
        assert_eq!(ids, vec![(0, true, Some(false)), (3, false, Some(true))]);
        let m = system.memory_blocks().unwrap();
        assert_eq!((m.len(), m[0].phys_index, m[0].can_offline), (1, 4, Some(true)));
        assert_eq!(system.memory_block_size().unwrap(), 0x800_0000);
        assert_eq!(system.cpu_stats().unwrap().len(), 2);
        // /etc/os-release is missing: /usr/lib/os-release.
        let r = system.os_release();
        assert_eq!((r.id.as_deref(), r.name.as_deref()), (Some("fixture"), Some("Fixture OS")));
        // No /etc/localtime: UTC.
        assert_eq!(system.timezone(), Zone::utc());
        // No utmp: logind's sessions (a local one, which qemu-ga's users list).
        let s = system.sessions().unwrap();
        assert_eq!(users::logged_in(&s)[0].user, "amy");
        assert_eq!(users::remote(&s), vec![]);

        // The environment's settings, as `Sources::system` takes them.
        let src = Sources {
            os_release: vec![root.join("mine")],
            tz: Some("<+0330>-3:30".into()),
            ..Sources::under(root)
        };
        mk("mine", b"ID=mine\n");
        let system = System::with_sources(src);
        assert_eq!(system.os_release().id.as_deref(), Some("mine"));
        assert_eq!(system.timezone().offset, 12600);
    }
}
