//! POSIX time zone strings (`TZ=CET-1CEST,M3.5.0,M10.5.0/3`): the footer of a TZif
//! file, which gives local time after its last transition (RFC 8536, section 3.3), and
//! a `TZ` environment value that names no zone file.
//!
//! `std offset [dst [offset] [,start[/time],end[/time]]]`. A name is three or more
//! letters, or anything but `>` within `<...>`. An offset is `[+-]hh[:mm[:ss]]` and
//! counts west of Greenwich (`CET-1` is one hour east); the DST offset defaults to one
//! hour less than the standard one. A date is `Jn` (1 to 365, February 29 never
//! counted), `n` (0 to 365, counted) or `Mm.w.d` (day `d`, 0 = Sunday, of week `w` of
//! month `m`, week 5 meaning the last); its time (default 02:00) may be negative or
//! past 24 h, up to 167 h, as RFC 8536 allows. The start is in standard time, the end
//! in DST. DST without dates follows the US rule (`M3.2.0,M11.1.0`), as glibc does.

use super::timezone::Zone;

/// A parsed TZ string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    std_name: String,
    /// Seconds east of UTC.
    std_off: i64,
    dst: Option<Dst>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Dst {
    name: String,
    /// Seconds east of UTC.
    off: i64,
    start: (Date, i64),
    end: (Date, i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Date {
    /// `Jn`: 1 to 365, February 29 not counted.
    NoLeap(i64),
    /// `n`: 0 to 365.
    Leap(i64),
    /// `Mm.w.d`.
    Month { m: i64, w: i64, d: i64 },
}

const HOUR: i64 = 3600;
const DAY: i64 = 86400;

/// Parses a whole TZ string; `None` if it is not one.
pub fn parse(s: &str) -> Option<Rule> {
    let mut p = Parser { s: s.as_bytes() };
    let std_name = p.name()?;
    let std_off = -p.offset(24)?;
    let mut rule = Rule {
        std_name,
        std_off,
        dst: None,
    };
    if p.s.is_empty() {
        return Some(rule);
    }
    let dst_name = p.name()?;
    let dst_off = match p.s.first() {
        Some(b',') | None => std_off + HOUR,
        Some(_) => -p.offset(24)?,
    };
    let (start, end) = if p.s.is_empty() {
        (
            (Date::Month { m: 3, w: 2, d: 0 }, 2 * HOUR),
            (Date::Month { m: 11, w: 1, d: 0 }, 2 * HOUR),
        )
    } else {
        p.eat(b',')?;
        let start = p.transition()?;
        p.eat(b',')?;
        let end = p.transition()?;
        (start, end)
    };
    if !p.s.is_empty() {
        return None;
    }
    rule.dst = Some(Dst {
        name: dst_name,
        off: dst_off,
        start,
        end,
    });
    Some(rule)
}

impl Rule {
    /// The zone in force at `t` (seconds since the epoch, UTC).
    pub fn at(&self, t: i64) -> Zone {
        let std = Zone {
            abbrev: self.std_name.clone(),
            offset: self.std_off,
        };
        let Some(dst) = &self.dst else {
            return std;
        };
        // The transitions of the years around t's, in UTC, each with whether DST
        // follows it; the last one at or before t decides. Where an end and a start
        // fall on the same instant (DST all year: `J1/0,J365/25`), the start comes
        // second, so DST stays.
        let year = civil_from_days((t + self.std_off).div_euclid(DAY)).0;
        let mut events: Vec<(i64, bool)> = Vec::with_capacity(6);
        for y in year - 1..=year + 1 {
            events.push((local_secs(y, dst.start) - self.std_off, true));
            events.push((local_secs(y, dst.end) - dst.off, false));
        }
        events.sort_unstable();
        let in_dst = events
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .is_some_and(|&(_, dst)| dst);
        if in_dst {
            Zone {
                abbrev: dst.name.clone(),
                offset: dst.off,
            }
        } else {
            std
        }
    }
}

/// Seconds from the epoch to the local midnight that starts `date` of year `y`, plus
/// the time of day `secs`.
fn local_secs(y: i64, (date, secs): (Date, i64)) -> i64 {
    let jan1 = days_from_civil(y, 1, 1);
    let day = match date {
        Date::NoLeap(n) => jan1 + n - 1 + i64::from(is_leap(y) && n >= 60),
        Date::Leap(n) => jan1 + n,
        Date::Month { m, w, d } => {
            let first = days_from_civil(y, m, 1);
            // 1970-01-01 was a Thursday (4).
            let weekday = (first + 4).rem_euclid(7);
            let mut day = first + (d - weekday).rem_euclid(7) + 7 * (w - 1);
            let next_month = if m == 12 {
                days_from_civil(y + 1, 1, 1)
            } else {
                days_from_civil(y, m + 1, 1)
            };
            while day >= next_month {
                day -= 7;
            }
            day
        }
    };
    day * DAY + secs
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days from 1970-01-01 to the proleptic Gregorian date y-m-d (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day count from 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A cursor over the TZ string.
struct Parser<'a> {
    s: &'a [u8],
}

impl Parser<'_> {
    fn eat(&mut self, c: u8) -> Option<()> {
        let (&first, rest) = self.s.split_first()?;
        (first == c).then(|| self.s = rest)
    }

    fn name(&mut self) -> Option<String> {
        let (name, rest) = if let Some(quoted) = self.s.strip_prefix(b"<") {
            let end = quoted.iter().position(|&c| c == b'>')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = self
                .s
                .iter()
                .position(|c| !c.is_ascii_alphabetic())
                .unwrap_or(self.s.len());
            self.s.split_at(end)
        };
        if name.len() < 3 {
            return None;
        }
        self.s = rest;
        Some(String::from_utf8_lossy(name).into_owned())
    }

    fn number(&mut self, max: i64) -> Option<i64> {
        let end = self
            .s
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(self.s.len());
        if end == 0 || end > 3 {
            return None;
        }
        let n: i64 = std::str::from_utf8(&self.s[..end]).ok()?.parse().ok()?;
        self.s = &self.s[end..];
        (n <= max).then_some(n)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds, hours up to `max_hours`.
    fn offset(&mut self, max_hours: i64) -> Option<i64> {
        let sign = match self.s.first() {
            Some(b'-') => {
                self.s = &self.s[1..];
                -1
            }
            Some(b'+') => {
                self.s = &self.s[1..];
                1
            }
            _ => 1,
        };
        let mut secs = self.number(max_hours)? * HOUR;
        if self.eat(b':').is_some() {
            secs += self.number(59)? * 60;
            if self.eat(b':').is_some() {
                secs += self.number(59)?;
            }
        }
        Some(sign * secs)
    }

    /// `date[/time]`.
    fn transition(&mut self) -> Option<(Date, i64)> {
        let date = match self.s.first()? {
            b'J' => {
                self.s = &self.s[1..];
                let n = self.number(365)?;
                (n >= 1).then_some(Date::NoLeap(n))?
            }
            b'M' => {
                self.s = &self.s[1..];
                let m = self.number(12)?;
                self.eat(b'.')?;
                let w = self.number(5)?;
                self.eat(b'.')?;
                let d = self.number(6)?;
                (m >= 1 && w >= 1).then_some(Date::Month { m, w, d })?
            }
            _ => Date::Leap(self.number(365)?),
        };
        let time = if self.eat(b'/').is_some() {
            self.offset(167)?
        } else {
            2 * HOUR
        };
        Some((date, time))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn zone(abbrev: &str, offset: i64) -> Zone {
        Zone {
            abbrev: abbrev.into(),
            offset,
        }
    }

    /// Seconds since the epoch of a UTC date and time.
    fn utc(y: i64, m: i64, d: i64, h: i64, min: i64) -> i64 {
        days_from_civil(y, m, d) * DAY + h * HOUR + min * 60
    }

    #[test]
    fn calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        for z in [-800_000, -1, 0, 59, 11016, 11017, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn fixed_zones() {
        assert_eq!(parse("UTC0").unwrap().at(0), zone("UTC", 0));
        assert_eq!(parse("<-03>3").unwrap().at(0), zone("-03", -3 * HOUR));
        assert_eq!(
            parse("<+0545>-5:45").unwrap().at(0),
            zone("+0545", 5 * HOUR + 45 * 60)
        );
        assert_eq!(parse("JST-9").unwrap().at(1), zone("JST", 9 * HOUR));
        for bad in ["", "UT0", "UTC", "UTC+", "UTC25", "<AB>0", "EST5EDT,M3", "CET-1CEST,M13.1.0,M10.5.0", "A1"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn european_and_southern_rules() {
        let paris = parse("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 2025: DST from March 30 01:00 UTC to October 26 01:00 UTC.
        assert_eq!(paris.at(utc(2025, 3, 30, 0, 59)), zone("CET", 3600));
        assert_eq!(paris.at(utc(2025, 3, 30, 1, 0)), zone("CEST", 7200));
        assert_eq!(paris.at(utc(2025, 10, 26, 0, 59)), zone("CEST", 7200));
        assert_eq!(paris.at(utc(2025, 10, 26, 1, 0)), zone("CET", 3600));
        assert_eq!(paris.at(utc(2025, 12, 31, 23, 30)), zone("CET", 3600));
        let sydney = parse("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        // DST over new year: from October 5 2025 16:00 UTC to April 5 2026 16:00 UTC.
        assert_eq!(sydney.at(utc(2025, 10, 4, 15, 59)), zone("AEST", 36000));
        assert_eq!(sydney.at(utc(2025, 10, 4, 16, 0)), zone("AEDT", 39600));
        assert_eq!(sydney.at(utc(2025, 12, 31, 14, 0)), zone("AEDT", 39600));
        assert_eq!(sydney.at(utc(2026, 1, 1, 0, 0)), zone("AEDT", 39600));
        assert_eq!(sydney.at(utc(2026, 4, 4, 15, 59)), zone("AEDT", 39600));
        assert_eq!(sydney.at(utc(2026, 4, 4, 16, 0)), zone("AEST", 36000));
    }

    #[test]
    fn unusual_rules() {
        // DST all year (RFC 8536's example).
        let all = parse("EST5EDT,0/0,J365/25").unwrap();
        for t in [utc(2030, 1, 1, 0, 0), utc(2030, 7, 1, 0, 0), utc(2030, 12, 31, 23, 59)] {
            assert_eq!(all.at(t), zone("EDT", -4 * HOUR));
        }
        // Negative DST (Ireland: GMT in winter is the "DST").
        let dublin = parse("IST-1GMT0,M10.5.0,M3.5.0/1").unwrap();
        assert_eq!(dublin.at(utc(2025, 7, 1, 0, 0)), zone("IST", 3600));
        assert_eq!(dublin.at(utc(2025, 1, 1, 0, 0)), zone("GMT", 0));
        // DST without dates: the US rule (March 9 and November 2 in 2025).
        let us = parse("EST5EDT").unwrap();
        assert_eq!(us.at(utc(2025, 3, 9, 6, 59)), zone("EST", -5 * HOUR));
        assert_eq!(us.at(utc(2025, 3, 9, 7, 0)), zone("EDT", -4 * HOUR));
        assert_eq!(us.at(utc(2025, 11, 2, 5, 59)), zone("EDT", -4 * HOUR));
        assert_eq!(us.at(utc(2025, 11, 2, 6, 0)), zone("EST", -5 * HOUR));
        // Julian days: J60 is March 1 in every year; 59 is March 1 only in leap years.
        let j = parse("AAA0BBB,J60/0,J61/0").unwrap();
        assert_eq!(j.at(utc(2024, 3, 1, 0, 0)).abbrev, "BBB");
        assert_eq!(j.at(utc(2024, 2, 29, 23, 0)).abbrev, "AAA");
        let n = parse("AAA0BBB,59/0,60/0").unwrap();
        assert_eq!(n.at(utc(2024, 2, 29, 12, 0)).abbrev, "BBB");
        assert_eq!(n.at(utc(2023, 3, 1, 12, 0)).abbrev, "BBB");
        // A transition time past 24 h and a negative one (RFC 8536 extensions).
        let ext = parse("<-02>2<-01>,M3.5.0/-1,M10.5.0/25").unwrap();
        // Start: Sunday March 30 at -1:00 local (-02), March 30 01:00 UTC.
        assert_eq!(ext.at(utc(2025, 3, 30, 0, 59)).abbrev, "-02");
        assert_eq!(ext.at(utc(2025, 3, 30, 1, 0)).abbrev, "-01");
        // End: Sunday October 26 at 25:00 local (-01), October 27 02:00 UTC.
        assert_eq!(ext.at(utc(2025, 10, 27, 1, 59)).abbrev, "-01");
        assert_eq!(ext.at(utc(2025, 10, 27, 2, 0)).abbrev, "-02");
    }

    /// glibc's `date` reads TZ strings too: both agree on every instant tried.
    #[test]
    fn agrees_with_glibc() {
        let rules = [
            "CET-1CEST,M3.5.0,M10.5.0/3",
            "AEST-10AEDT,M10.1.0,M4.1.0/3",
            "EST5EDT,M3.2.0,M11.1.0",
            "IST-1GMT0,M10.5.0,M3.5.0/1",
            "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
            "NZST-12NZDT,M9.5.0,M4.1.0/3",
            "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1",
            "AAA3BBB,J60/2,300/3",
        ];
        let instants: Vec<i64> = (0..400).map(|i| 1_600_000_000 + i * 1_234_567).collect();
        for rule in rules {
            let parsed = parse(rule).unwrap();
            let want = glibc(rule, &instants);
            for (t, w) in instants.iter().zip(want) {
                let z = parsed.at(*t);
                assert_eq!((z.offset, z.abbrev.as_str()), (w.0, w.1.as_str()), "{rule} at {t}");
            }
        }
    }

    /// `(offset, abbreviation)` from `date` for each instant, in zone `tz`.
    pub(crate) fn glibc(tz: &str, instants: &[i64]) -> Vec<(i64, String)> {
        use std::io::Write as _;
        let mut child = std::process::Command::new("date")
            .env("TZ", tz)
            .args(["-f", "-", "+%::z %Z"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let input: String = instants.iter().map(|t| format!("@{t}\n")).collect();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), instants.len());
        text.lines()
            .map(|l| {
                let (z, abbrev) = l.split_once(' ').unwrap();
                let sign = if z.starts_with('-') { -1 } else { 1 };
                let p: Vec<i64> = z[1..].split(':').map(|x| x.parse().unwrap()).collect();
                (sign * (p[0] * HOUR + p[1] * 60 + p[2]), abbrev.to_string())
            })
            .collect()
    }
}
