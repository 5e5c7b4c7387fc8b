//! The local time zone in force now, for `guest-get-timezone`: its abbreviation and
//! its offset east of UTC, from the TZif data (RFC 8536) of /etc/localtime.
//!
//! qemu-ga asks GLib, which reads /etc/localtime only when it can name the zone: from
//! the symlink's target under .../zoneinfo/, or from /etc/timezone. A zone file copied
//! to /etc/localtime (what some images and `cp` installers do) with no /etc/timezone
//! gives UTC there. The zone's data is the file's, whatever its name, so we read it
//! in every case, as glibc does for every program on the guest.
//!
//! `TZ` in the agent's environment wins, as for GLib and glibc: `:NAME` or `NAME` is a
//! zone file (absolute, or under the zoneinfo directory, `$TZDIR` or
//! /usr/share/zoneinfo), else a POSIX TZ string ([`posix_tz`]). An empty `TZ`, or one
//! that is neither, is UTC, as in GLib and glibc.

use std::io::Read as _;
use std::path::Path;

use super::posix_tz;

/// Zone files are a few KiB; anything past this is not one.
const MAX_BYTES: u64 = 1 << 20;

/// A zone in force: abbreviation and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// "UTC", "CET", "CEST", "-03".
    pub abbrev: String,
    /// Seconds east of UTC.
    pub offset: i64,
}

impl Zone {
    /// UTC, where nothing says otherwise.
    pub fn utc() -> Self {
        Zone {
            abbrev: "UTC".into(),
            offset: 0,
        }
    }
}

/// The local zone at `now` (seconds since the epoch): `tz` is the agent's `TZ`,
/// `localtime` the system's zone file, `zoneinfo` the directory of named zones.
pub fn local(localtime: &Path, zoneinfo: &Path, tz: Option<&str>, now: i64) -> Zone {
    let found = match tz {
        None => from_file(localtime, now),
        Some(tz) => {
            let name = tz.strip_prefix(':').unwrap_or(tz);
            let file = if name.starts_with('/') {
                Path::new(name).to_path_buf()
            } else {
                zoneinfo.join(name)
            };
            from_file(&file, now).or_else(|| posix_tz::parse(name).map(|r| r.at(now)))
        }
    };
    found.unwrap_or_else(Zone::utc)
}

/// The zone at `now` of the TZif file at `path`; `None` if it cannot be read or is not
/// a TZif file.
fn from_file(path: &Path, now: i64) -> Option<Zone> {
    let mut data = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(MAX_BYTES).read_to_end(&mut data));
    if let Err(e) = read {
        tracing::debug!(path = %path.display(), error = %e, "zone file not read");
        return None;
    }
    let zone = parse(&data).map(|z| z.at(now));
    if zone.is_none() {
        tracing::debug!(path = %path.display(), "not a TZif zone file");
    }
    zone
}

/// A zone file's data: transitions, the local time types, and the footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tzif {
    /// Transition times, ascending, seconds since the epoch.
    times: Vec<i64>,
    /// The local time type that starts at each transition (an index into `types`).
    kinds: Vec<usize>,
    /// Local time types: offset east of UTC and abbreviation. Never empty.
    types: Vec<(i64, String)>,
    /// The TZ string for times after the last transition; "" when there is none.
    footer: String,
}

/// The six counts of a TZif header.
#[derive(Debug, Clone, Copy)]
struct Counts {
    isut: usize,
    isstd: usize,
    leap: usize,
    time: usize,
    types: usize,
    chars: usize,
}

/// A header's version byte (0, `2`, `3`, `4`) and counts.
fn header(b: &[u8]) -> Option<(u8, Counts)> {
    if b.len() < 44 || &b[..4] != b"TZif" {
        return None;
    }
    let n = |i: usize| -> Option<usize> {
        let bytes: [u8; 4] = b[20 + 4 * i..24 + 4 * i].try_into().ok()?;
        usize::try_from(u32::from_be_bytes(bytes)).ok()
    };
    Some((
        b[4],
        Counts {
            isut: n(0)?,
            isstd: n(1)?,
            leap: n(2)?,
            time: n(3)?,
            types: n(4)?,
            chars: n(5)?,
        },
    ))
}

/// Bytes of a data block whose times take `width` bytes.
fn block_len(c: Counts, width: usize) -> Option<usize> {
    let sizes = [
        c.time.checked_mul(width)?,
        c.time,
        c.types.checked_mul(6)?,
        c.chars,
        c.leap.checked_mul(width + 4)?,
        c.isstd,
        c.isut,
    ];
    sizes.iter().try_fold(0usize, |sum, &s| sum.checked_add(s))
}

/// Parses a TZif file (version 1 with 32-bit times, or 2 and later, whose second,
/// 64-bit block and footer are used); `None` if it is not a well-formed one.
pub fn parse(b: &[u8]) -> Option<Tzif> {
    let (version, v1) = header(b)?;
    if version == 0 {
        return block(b.get(44..)?, v1, 4, String::new());
    }
    let rest = b.get(44 + block_len(v1, 4)?..)?;
    let (_, v2) = header(rest)?;
    let len = block_len(v2, 8)?;
    let data = rest.get(44..44 + len)?;
    let footer = match rest.get(44 + len..) {
        Some([b'\n', tail @ ..]) => {
            let end = tail.iter().position(|&c| c == b'\n')?;
            String::from_utf8_lossy(&tail[..end]).into_owned()
        }
        _ => String::new(),
    };
    block(data, v2, 8, footer)
}

fn block(d: &[u8], c: Counts, width: usize, footer: String) -> Option<Tzif> {
    if c.types == 0 || d.len() < block_len(c, width)? {
        return None;
    }
    let (times_raw, d) = d.split_at(c.time * width);
    let times: Vec<i64> = times_raw
        .chunks_exact(width)
        .map(|t| match *t {
            [a, b, c, d] => i64::from(i32::from_be_bytes([a, b, c, d])),
            _ => i64::from_be_bytes(t.try_into().unwrap_or_default()),
        })
        .collect();
    let (kinds_raw, d) = d.split_at(c.time);
    let kinds: Vec<usize> = kinds_raw.iter().map(|&k| usize::from(k)).collect();
    if kinds.iter().any(|&k| k >= c.types) {
        return None;
    }
    let (types_raw, d) = d.split_at(c.types * 6);
    let chars = &d[..c.chars];
    let types = types_raw
        .chunks_exact(6)
        .map(|t| {
            let offset = i64::from(i32::from_be_bytes([t[0], t[1], t[2], t[3]]));
            let name = chars.get(usize::from(t[5])..)?;
            let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
            Some((offset, String::from_utf8_lossy(&name[..end]).into_owned()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Tzif {
        times,
        kinds,
        types,
        footer,
    })
}

impl Tzif {
    /// The zone in force at `t` (RFC 8536, section 3.2): type 0 before the first
    /// transition, the footer's rule from the last transition on (or with no
    /// transitions at all), the type of the latest transition otherwise.
    pub fn at(&self, t: i64) -> Zone {
        let footer = || {
            (!self.footer.is_empty())
                .then(|| posix_tz::parse(&self.footer))
                .flatten()
                .map(|rule| rule.at(t))
        };
        let kind = match self.times.partition_point(|&x| x <= t) {
            0 if self.times.is_empty() => return footer().unwrap_or_else(|| self.zone(0)),
            0 => 0,
            n if n == self.times.len() => match footer() {
                Some(zone) => return zone,
                None => self.kinds[n - 1],
            },
            n => self.kinds[n - 1],
        };
        self.zone(kind)
    }

    fn zone(&self, kind: usize) -> Zone {
        let (offset, abbrev) = &self.types[kind];
        Zone {
            abbrev: abbrev.clone(),
            offset: *offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::system::posix_tz::tests::glibc;

    /// A TZif file: `version` 0 writes a version-1 file; others an empty version-1
    /// block, then the 64-bit block and `footer`.
    fn tzif(version: u8, times: &[(i64, u8)], types: &[(i32, bool, &str)], footer: &str) -> Vec<u8> {
        let mut chars = Vec::new();
        let mut ttinfo = Vec::new();
        for &(off, dst, name) in types {
            ttinfo.extend(off.to_be_bytes());
            ttinfo.push(u8::from(dst));
            ttinfo.push(u8::try_from(chars.len()).unwrap());
            chars.extend(name.as_bytes());
            chars.push(0);
        }
        let head = |v: u8, ntime: usize, ntype: usize, nchar: usize| {
            let mut h = b"TZif".to_vec();
            h.push(v);
            h.extend([0u8; 15]);
            for n in [0, 0, 0, ntime, ntype, nchar] {
                h.extend(u32::try_from(n).unwrap().to_be_bytes());
            }
            h
        };
        let data = |width: usize| {
            let mut d = Vec::new();
            for &(t, _) in times {
                if width == 4 {
                    d.extend(i32::try_from(t).unwrap().to_be_bytes());
                } else {
                    d.extend(t.to_be_bytes());
                }
            }
            d.extend(times.iter().map(|&(_, k)| k));
            d.extend(&ttinfo);
            d.extend(&chars);
            d
        };
        if version == 0 {
            let mut f = head(0, times.len(), types.len(), chars.len());
            f.extend(data(4));
            return f;
        }
        // A minimal version-1 block: one type, no transitions (RFC 8536 allows it).
        let mut f = head(version, 0, 1, 4);
        f.extend([0, 0, 0, 0, 0, 0]);
        f.extend(b"UTC\0");
        f.extend(head(version, times.len(), types.len(), chars.len()));
        f.extend(data(8));
        f.push(b'\n');
        f.extend(footer.as_bytes());
        f.push(b'\n');
        f
    }

    fn zone(abbrev: &str, offset: i64) -> Zone {
        Zone {
            abbrev: abbrev.into(),
            offset,
        }
    }

    #[test]
    fn transitions_types_and_footer() {
        let types = [(-18000, false, "EST"), (-14400, true, "EDT")];
        let f = tzif(b'2', &[(1000, 1), (2000, 0)], &types, "<-03>3");
        let z = parse(&f).unwrap();
        assert_eq!(z.at(-5), zone("EST", -18000));
        assert_eq!(z.at(999), zone("EST", -18000));
        assert_eq!(z.at(1000), zone("EDT", -14400));
        assert_eq!(z.at(1999), zone("EDT", -14400));
        // From the last transition on, the footer.
        assert_eq!(z.at(2000), zone("-03", -10800));
        // No footer: the last transition's type goes on.
        let z = parse(&tzif(b'2', &[(1000, 1)], &types, "")).unwrap();
        assert_eq!(z.at(5000), zone("EDT", -14400));
        // No transitions: the footer, else type 0.
        let z = parse(&tzif(b'3', &[], &types, "JST-9")).unwrap();
        assert_eq!(z.at(0), zone("JST", 32400));
        let z = parse(&tzif(b'2', &[], &types, "")).unwrap();
        assert_eq!(z.at(0), zone("EST", -18000));
        // Version 1: 32-bit times, no footer.
        let z = parse(&tzif(0, &[(-100, 1), (100, 0)], &types, "")).unwrap();
        assert_eq!((z.at(-101), z.at(0), z.at(100)), (zone("EST", -18000), zone("EDT", -14400), zone("EST", -18000)));
    }

    #[test]
    fn refuses_what_is_not_a_zone_file() {
        let types = [(3600, false, "CET")];
        let good = tzif(b'2', &[(1000, 0)], &types, "CET-1");
        assert!(parse(&good).is_some());
        for n in 0..good.len() - 7 {
            // Cut anywhere before the footer: no data block, or a short one.
            assert!(parse(&good[..n]).is_none(), "cut at {n}");
        }
        assert!(parse(b"not a zone file at all, though long enough for a header").is_none());
        // A transition to a type that does not exist; an abbreviation past the end.
        assert!(parse(&tzif(b'2', &[(1000, 1)], &types, "")).is_none());
        let mut bad = tzif(0, &[], &types, "");
        let last = bad.len() - 5;
        bad[last] = 200;
        assert!(parse(&bad).is_none());
        // No types at all.
        assert!(parse(&tzif(0, &[], &[], "")).is_none());
    }

    #[test]
    fn local_zone_from_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let zoneinfo = d.join("zoneinfo");
        std::fs::create_dir_all(zoneinfo.join("Asia")).unwrap();
        std::fs::write(zoneinfo.join("Asia/Tokyo"), tzif(b'2', &[], &[(32400, false, "JST")], "JST-9")).unwrap();
        let localtime = d.join("localtime");
        // No /etc/localtime: UTC.
        assert_eq!(local(&localtime, &zoneinfo, None, 0), Zone::utc());
        // A copied file (not a symlink): its data, whatever its name.
        std::fs::write(&localtime, tzif(b'2', &[], &[(3600, false, "CET")], "CET-1CEST,M3.5.0,M10.5.0/3")).unwrap();
        assert_eq!(local(&localtime, &zoneinfo, None, 0), zone("CET", 3600));
        assert_eq!(local(&localtime, &zoneinfo, None, 15_000_000), zone("CEST", 7200));
        // An empty TZ is UTC (GLib and glibc agree).
        assert_eq!(local(&localtime, &zoneinfo, Some(""), 0), Zone::utc());
        // TZ: a zone name, with or without ':', an absolute path, a POSIX string.
        assert_eq!(local(&localtime, &zoneinfo, Some("Asia/Tokyo"), 0), zone("JST", 32400));
        assert_eq!(local(&localtime, &zoneinfo, Some(":Asia/Tokyo"), 0), zone("JST", 32400));
        let abs = format!(":{}", zoneinfo.join("Asia/Tokyo").display());
        assert_eq!(local(&localtime, &zoneinfo, Some(&abs), 0), zone("JST", 32400));
        assert_eq!(local(&localtime, &zoneinfo, Some("<+0530>-5:30"), 0), zone("+0530", 19800));
        // Neither a zone nor a string: UTC, as glibc and GLib give.
        assert_eq!(local(&localtime, &zoneinfo, Some("Nowhere/City"), 0), Zone::utc());
        // A file that is not TZif: UTC.
        std::fs::write(&localtime, "Europe/Paris\n").unwrap();
        assert_eq!(local(&localtime, &zoneinfo, None, 0), Zone::utc());
    }

    /// Every instant tried, in real zone files of the tzdata package, as glibc's
    /// `date` sees it: from 1971 to 2100, so past the fat files' last transition
    /// (2037), where the footer rules.
    #[test]
    fn agrees_with_glibc_on_real_zone_files() {
        let root = Path::new("/usr/share/zoneinfo");
        assert!(root.join("Europe/Paris").exists(), "tzdata is not installed");
        let zones = [
            "Europe/Paris", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe",
            "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Chatham", "America/St_Johns",
            "Europe/Dublin", "Africa/Casablanca", "Asia/Tokyo", "Antarctica/Troll",
            "Pacific/Kiritimati", "Etc/UTC", "America/Santiago", "Asia/Tehran",
        ];
        let instants: Vec<i64> = (0..300).map(|i| 40_000_000 + i * 13_600_003).collect();
        for name in zones {
            let file = root.join(name);
            let z = parse(&std::fs::read(&file).unwrap()).unwrap();
            let want = glibc(&format!(":{}", file.display()), &instants);
            for (&t, (off, abbrev)) in instants.iter().zip(want) {
                assert_eq!(z.at(t), zone(&abbrev, off), "{name} at {t}");
            }
        }
    }

    /// A slim zone file (what `zic -b slim` writes, and some distributions ship): few
    /// transitions, the footer for the rest.
    #[test]
    fn agrees_with_glibc_on_a_slim_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(
            &src,
            "Rule\tEU\t1981\tmax\t-\tMar\tlastSun\t1:00u\t1:00\tS\n\
             Rule\tEU\t1970\tmax\t-\tOct\tlastSun\t1:00u\t0\t-\n\
             Zone\tTest/Paris\t0:09:21\t-\tLMT\t1911 Mar 11\n\
             \t\t\t1:00\t-\tCET\t1980\n\
             \t\t\t1:00\tEU\tCE%sT\n",
        )
        .unwrap();
        let out = std::process::Command::new("zic")
            .args(["-b", "slim", "-d"])
            .arg(dir.path())
            .arg(&src)
            .output()
            .expect("zic (libc-bin)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let file = dir.path().join("Test/Paris");
        let data = std::fs::read(&file).unwrap();
        let z = parse(&data).unwrap();
        assert!(z.times.len() < 60, "slim: {} transitions", z.times.len());
        assert_eq!(z.footer, "CET-1CEST,M3.5.0,M10.5.0/3");
        let instants: Vec<i64> = (0..300).map(|i| 400_000_000 + i * 13_600_003).collect();
        let want = glibc(&format!(":{}", file.display()), &instants);
        for (&t, (off, abbrev)) in instants.iter().zip(want) {
            assert_eq!(z.at(t), zone(&abbrev, off), "at {t}");
        }
    }
}
