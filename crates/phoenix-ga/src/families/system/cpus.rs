//! Logical processors from sysfs (`guest-get-vcpus`) and their times from /proc/stat
//! (`guest-get-cpustats`).
//!
//! A CPU is a directory `cpuN` of /sys/devices/system/cpu. It can be taken offline
//! when it has an `online` switch, whose first byte says whether it is online; a CPU
//! without one (usually cpu0 on x86) is online and stays so.

use std::path::Path;

use nix::errno::Errno;
use phoenix_proto::types::system::qga::{GuestCpuStats, GuestLinuxCpuStats, GuestLogicalProcessor};

use super::sysfs;
use crate::error::{Context as _, Error};

/// Every logical processor under `dir`, sorted by number (qemu-ga lists them in
/// directory order; the schema leaves the order open).
pub fn vcpus(dir: &Path) -> Result<Vec<GuestLogicalProcessor>, Error> {
    let entries = std::fs::read_dir(dir).context(|| format!("read directory {}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.context(|| format!("read directory {}", dir.display()))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| sysfs::numbered(n, "cpu"))
            .and_then(|n| i64::try_from(n).ok())
        else {
            continue;
        };
        let (online, can_offline) = match sysfs::attr(&entry.path().join("online"), 1)? {
            None => (true, false),
            Some(b) => (b[0] != b'0', true),
        };
        out.push(GuestLogicalProcessor {
            logical_id: id,
            online,
            can_offline: Some(can_offline),
        });
    }
    if out.is_empty() {
        // qemu-ga aborts here ("there's no guest with zero VCPUs").
        return Err(Error::errno(
            Errno::ENOENT,
            format!("no logical processors in {}", dir.display()),
        ));
    }
    out.sort_unstable_by_key(|v| v.logical_id);
    Ok(out)
}

/// The ticks of a second in /proc/stat (`getconf CLK_TCK`, 100 on every Linux
/// architecture in use).
pub fn clk_tck() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .filter(|&n| n > 0)
        .unwrap_or(100)
}

/// Each CPU's times from the /proc/stat file at `path`.
pub fn cpu_stats(path: &Path, clk_tck: u64) -> Result<Vec<GuestCpuStats>, Error> {
    let bytes = std::fs::read(path).context(|| format!("read {}", path.display()))?;
    Ok(parse_stat(&String::from_utf8_lossy(&bytes), clk_tck))
}

/// The `cpuN` lines of /proc/stat (not the `cpu` total), in milliseconds: `user nice
/// system idle` and, where the kernel counts them, `iowait irq softirq steal guest
/// guest_nice`. A line with fewer than four figures is skipped (qemu-ga stops
/// reading there).
pub fn parse_stat(text: &str, clk_tck: u64) -> Vec<GuestCpuStats> {
    let ms = |ticks: u64| -> u64 {
        let ms = u128::from(ticks) * 1000 / u128::from(clk_tck.max(1));
        u64::try_from(ms).unwrap_or(u64::MAX)
    };
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let cpu = sysfs::numbered(fields.next()?, "cpu")?;
            let v: Vec<u64> = fields
                .map_while(|f| f.parse::<u64>().ok())
                .take(10)
                .map(ms)
                .collect();
            if v.len() < 4 {
                return None;
            }
            let opt = |i: usize| v.get(i).copied();
            Some(GuestCpuStats::Linux(GuestLinuxCpuStats {
                cpu: i64::try_from(cpu).ok()?,
                user: v[0],
                nice: v[1],
                system: v[2],
                idle: v[3],
                iowait: opt(4),
                irq: opt(5),
                softirq: opt(6),
                steal: opt(7),
                guest: opt(8),
                guestnice: opt(9),
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn vcpu(id: i64, online: bool, can_offline: bool) -> GuestLogicalProcessor {
        GuestLogicalProcessor {
            logical_id: id,
            online,
            can_offline: Some(can_offline),
        }
    }

    #[test]
    fn vcpus_from_a_sysfs_tree() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["cpu0", "cpu1", "cpu2", "cpu10", "cpufreq", "cpuidle", "power"] {
            fs::create_dir(d.join(name)).unwrap();
        }
        for file in ["online", "possible", "kernel_max"] {
            fs::write(d.join(file), "0-10\n").unwrap();
        }
        // cpu0 has no switch: online for good. cpu2 is offline.
        fs::write(d.join("cpu1/online"), "1\n").unwrap();
        fs::write(d.join("cpu2/online"), "0\n").unwrap();
        fs::write(d.join("cpu10/online"), "1\n").unwrap();
        // Not a CPU, though it has a switch.
        fs::write(d.join("cpufreq/online"), "0\n").unwrap();
        assert_eq!(
            vcpus(d).unwrap(),
            vec![
                vcpu(0, true, false),
                vcpu(1, true, true),
                vcpu(2, false, true),
                vcpu(10, true, true),
            ]
        );
        // A switch that cannot be read fails the command, naming it.
        fs::write(d.join("cpu10/online"), "").unwrap();
        let e = vcpus(d).unwrap_err();
        assert_eq!(e.message(), format!("read {}: empty file", d.join("cpu10/online").display()));
    }

    #[test]
    fn vcpus_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let e = vcpus(d).unwrap_err();
        assert_eq!(e.message(), format!("no logical processors in {}", d.display()));
        let e = vcpus(&d.join("missing")).unwrap_err();
        assert_eq!(e.code(), libc::ENOENT);
        assert_eq!(
            e.message(),
            format!("read directory {}: No such file or directory", d.join("missing").display())
        );
    }

    /// /proc/stat as Linux 6.1 writes it on a two-CPU guest.
    const STAT: &str = "cpu  414343 0 106974 316051 3586 0 704 1091 0 0
cpu0 189427 0 50786 179407 931 0 139 540 0 0
cpu1 224915 3 56187 136644 2655 7 565 550 11 13
intr 5400179 0 0 0 0
ctxt 15065797
btime 1764998400
processes 12345
procs_running 1
procs_blocked 0
softirq 1234 0 1 2
";

    fn stats(cpu: i64, v: [u64; 4], rest: [Option<u64>; 6]) -> GuestCpuStats {
        GuestCpuStats::Linux(GuestLinuxCpuStats {
            cpu,
            user: v[0],
            nice: v[1],
            system: v[2],
            idle: v[3],
            iowait: rest[0],
            irq: rest[1],
            softirq: rest[2],
            steal: rest[3],
            guest: rest[4],
            guestnice: rest[5],
        })
    }

    #[test]
    fn cpu_lines_in_milliseconds() {
        let got = parse_stat(STAT, 100);
        assert_eq!(
            got,
            vec![
                stats(0, [1894270, 0, 507860, 1794070], [Some(9310), Some(0), Some(1390), Some(5400), Some(0), Some(0)]),
                stats(1, [2249150, 30, 561870, 1366440], [Some(26550), Some(70), Some(5650), Some(5500), Some(110), Some(130)]),
            ]
        );
        // Another tick rate.
        let got = parse_stat("cpu3 3 6 9 12\n", 3);
        assert_eq!(got, vec![stats(3, [1000, 2000, 3000, 4000], [None; 6])]);
    }

    #[test]
    fn older_kernels_and_odd_lines() {
        // Linux 2.6.0 (7 figures) and 2.6.24 (9): each figure it has, no more.
        let text = "cpu0 1 2 3 4 5 6 7\ncpu1 1 2 3 4 5 6 7 8 9\ncpu2 1 2 3\ncpu3 1 2 3 4 x 6\n\
                    cpux 1 2 3 4\ncpu4 1 2 3 4 5 6 7 8 9 10 11 12\n";
        let got = parse_stat(text, 1);
        let s = |n: u64| Some(n * 1000);
        assert_eq!(
            got,
            vec![
                stats(0, [1000, 2000, 3000, 4000], [s(5), s(6), s(7), None, None, None]),
                stats(1, [1000, 2000, 3000, 4000], [s(5), s(6), s(7), s(8), s(9), None]),
                stats(3, [1000, 2000, 3000, 4000], [None; 6]),
                stats(4, [1000, 2000, 3000, 4000], [s(5), s(6), s(7), s(8), s(9), s(10)]),
            ]
        );
        // Counters that would overflow in milliseconds saturate.
        let got = parse_stat(&format!("cpu0 {} 0 0 0\n", u64::MAX), 100);
        let GuestCpuStats::Linux(l) = got[0];
        assert_eq!(l.user, u64::MAX);
        assert!(parse_stat("", 100).is_empty());
    }

    #[test]
    fn reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stat");
        fs::write(&p, STAT).unwrap();
        assert_eq!(cpu_stats(&p, 100).unwrap().len(), 2);
        let e = cpu_stats(&dir.path().join("nope"), 100).unwrap_err();
        assert_eq!(e.code(), libc::ENOENT);
        assert_eq!(clk_tck(), 100);
    }
}
