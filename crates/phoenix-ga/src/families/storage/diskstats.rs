//! `guest-get-diskstats`: /proc/diskstats, one entry per line.
//!
//! A line is `MAJOR MINOR NAME` and then counters, as many as the kernel knows
//! (Documentation/admin-guide/iostats.rst): 11 (reads, writes, I/O in flight and
//! time), 15 since Linux 4.18 (discards), 17 since 5.5 (flushes). Partitions of
//! kernels before 2.6.25 had 4 (reads, read sectors, writes, write sectors). The
//! fields a line has are reported, the others left out, as qemu-ga does.

use std::path::Path;

use phoenix_proto::types::storage::qga::{GuestDiskStats, GuestDiskStatsInfo};

use crate::error::{Context as _, Error};

/// Reads and parses a diskstats file.
pub fn read(path: &Path) -> Result<Vec<GuestDiskStatsInfo>, Error> {
    let text = std::fs::read_to_string(path).context(|| format!("read {}", path.display()))?;
    Ok(parse(&text))
}

/// Parses diskstats lines; a line without at least four counters is skipped.
pub fn parse(text: &str) -> Vec<GuestDiskStatsInfo> {
    text.lines().filter_map(line).collect()
}

fn line(line: &str) -> Option<GuestDiskStatsInfo> {
    let mut fields = line.split_ascii_whitespace();
    let major = fields.next()?.parse().ok()?;
    let minor = fields.next()?.parse().ok()?;
    let name = fields.next()?.to_string();
    // The counters up to the first that is not a number, 17 at most.
    let n: Vec<u64> = fields.map_while(|f| f.parse().ok()).take(17).collect();
    let at = |i: usize| n.get(i).copied();
    let stats = match n.len() {
        0..=3 => return None,
        4 => GuestDiskStats {
            read_ios: at(0),
            read_sectors: at(1),
            write_ios: at(2),
            write_sectors: at(3),
            ..Default::default()
        },
        // Not a format the kernel ever wrote: the entry without counters, as qemu-ga.
        5..=10 => GuestDiskStats::default(),
        len => {
            let mut s = GuestDiskStats {
                read_ios: at(0),
                read_merges: at(1),
                read_sectors: at(2),
                read_ticks: at(3),
                write_ios: at(4),
                write_merges: at(5),
                write_sectors: at(6),
                write_ticks: at(7),
                ios_pgr: at(8),
                total_ticks: at(9),
                weight_ticks: at(10),
                ..Default::default()
            };
            if len >= 15 {
                s.discard_ios = at(11);
                s.discard_merges = at(12);
                s.discard_sectors = at(13);
                s.discard_ticks = at(14);
            }
            if len >= 17 {
                s.flush_ios = at(15);
                s.flush_ticks = at(16);
            }
            s
        }
    };
    Some(GuestDiskStatsInfo {
        name,
        major,
        minor,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_the_kernel_wrote() {
        let text = "\
 254       0 vda 578502 21066 27807298 923623 87725 387516 89453408 603454 0 81168 1549579 151112 55 71091960 21579 10846 920
 254       1 vda1 10 0 20 30
   8       0 sda 1 2 3 4 5 6 7 8 9 10 11
   8      16 sdb 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
   7       0 loop0 1 2 3
   7       1 loop1 1 2 3 4 5
 x 1 bad 1 2 3 4
   9       0 md0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 99
";
        let s = parse(text);
        let names: Vec<&str> = s.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["vda", "vda1", "sda", "sdb", "loop1", "md0"]);
        let vda = &s[0];
        assert_eq!((vda.major, vda.minor), (254, 0));
        let want = GuestDiskStats {
            read_ios: Some(578502),
            read_merges: Some(21066),
            read_sectors: Some(27807298),
            read_ticks: Some(923623),
            write_ios: Some(87725),
            write_merges: Some(387516),
            write_sectors: Some(89453408),
            write_ticks: Some(603454),
            ios_pgr: Some(0),
            total_ticks: Some(81168),
            weight_ticks: Some(1549579),
            discard_ios: Some(151112),
            discard_merges: Some(55),
            discard_sectors: Some(71091960),
            discard_ticks: Some(21579),
            flush_ios: Some(10846),
            flush_ticks: Some(920),
        };
        assert_eq!(vda.stats, want);
        assert_eq!(
            s[1].stats,
            GuestDiskStats {
                read_ios: Some(10),
                read_sectors: Some(0),
                write_ios: Some(20),
                write_sectors: Some(30),
                ..Default::default()
            }
        );
        assert_eq!(s[2].stats.weight_ticks, Some(11));
        assert_eq!(s[2].stats.discard_ios, None);
        assert_eq!(s[3].stats.discard_ticks, Some(15));
        assert_eq!(s[3].stats.flush_ios, None);
        assert_eq!(s[4].stats, GuestDiskStats::default());
        // Counters are 64-bit; an 18th field is not read.
        assert_eq!(s[5].stats.read_ios, Some(u64::MAX));
        assert_eq!(s[5].stats.flush_ticks, Some(0));
    }

    #[test]
    fn the_live_file() {
        // Devices come and go (other tests' loop devices): one reading, two views.
        let text = std::fs::read_to_string("/proc/diskstats").unwrap();
        assert_eq!(parse(&text).len(), text.lines().count());
        read(Path::new("/proc/diskstats")).unwrap();
        let e = read(Path::new("/proc/nope")).unwrap_err();
        assert_eq!(e.message(), "read /proc/nope: No such file or directory");
    }
}
