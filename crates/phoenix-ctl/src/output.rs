//! Human output: aligned tables, readable sizes, times and modes; and JSON output.

use std::io::{self, Write};

use chrono::{DateTime, Local, TimeZone};
use serde::Serialize;

/// Where a column's cells sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text columns.
    Left,
    /// Number columns.
    Right,
}

/// A table printed with its columns aligned, as `ls -l` and `df` print theirs.
#[derive(Debug, Default)]
pub struct Table {
    header: Option<Vec<String>>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a header line; `aligns` gives each column's alignment.
    pub fn new(header: &[&str], aligns: &[Align]) -> Self {
        Self {
            header: Some(header.iter().map(|h| h.to_string()).collect()),
            aligns: aligns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// A table without a header line (`ls -l`).
    pub fn bare(aligns: &[Align]) -> Self {
        Self {
            header: None,
            aligns: aligns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, columns separated by two spaces, no trailing blanks.
    pub fn render(&self) -> String {
        let all: Vec<&Vec<String>> = self.header.iter().chain(&self.rows).collect();
        let ncols = all.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut widths = vec![0; ncols];
        for row in &all {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in all {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - cell.chars().count();
                let last = i + 1 == row.len();
                match self.aligns.get(i).copied().unwrap_or(Align::Left) {
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                    Align::Left => {
                        line.push_str(cell);
                        if !last {
                            line.extend(std::iter::repeat_n(' ', pad));
                        }
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) -> io::Result<()> {
        io::stdout().write_all(self.render().as_bytes())
    }
}

/// A byte count as `ls -h` and `df -h` print it: `512`, `1.5K`, `23M`, `4.0G`
/// (powers of 1024, one decimal below 10).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{:.1}{}", (value * 10.0).ceil() / 10.0, UNITS[unit])
    } else {
        format!("{:.0}{}", value.ceil(), UNITS[unit])
    }
}

/// A KiB count (the unit of `sysinfo`) as a readable size.
pub fn kib(kib: u64) -> String {
    size(kib.saturating_mul(1024))
}

/// Seconds since the epoch as a local date and time, `2026-11-25 09:30:08`.
pub fn time(secs: i64) -> String {
    match Local.timestamp_opt(secs, 0).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => secs.to_string(),
    }
}

/// Seconds since the epoch as `ls -l` shows them: `Nov 25 09:30`, or `Nov 25  2025`
/// for times more than six months away.
pub fn ls_time(secs: i64, now: DateTime<Local>) -> String {
    match Local.timestamp_opt(secs, 0).single() {
        Some(t) => {
            let six_months = chrono::Duration::days(182);
            if (now - t).abs() < six_months {
                t.format("%b %e %H:%M").to_string()
            } else {
                t.format("%b %e  %Y").to_string()
            }
        }
        None => secs.to_string(),
    }
}

/// A duration in seconds as `3d 4h 12m` (uptime).
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

/// A `st_mode` as `ls -l` prints it: `-rw-r--r--`, `drwxr-xr-x`, `lrwxrwxrwx`,
/// with setuid/setgid/sticky as `s`/`S` and `t`/`T`.
pub fn mode(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, on_x, off_x)) in special.iter().enumerate() {
        let shift = 6 - 3 * i;
        let rwx = (mode >> shift) & 7;
        s.push(if rwx & 4 != 0 { 'r' } else { '-' });
        s.push(if rwx & 2 != 0 { 'w' } else { '-' });
        let x = rwx & 1 != 0;
        s.push(match (mode & bit != 0, x) {
            (true, true) => *on_x,
            (true, false) => *off_x,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// Prints a value as one line of JSON (for scripts).
pub fn json<T: Serialize + ?Sized>(value: &T) -> io::Result<()> {
    let text = serde_json::to_string(value).map_err(io::Error::other)?;
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(size(0), "0");
        assert_eq!(size(1023), "1023");
        assert_eq!(size(1024), "1.0K");
        assert_eq!(size(1536), "1.5K");
        assert_eq!(size(10 * 1024), "10K");
        assert_eq!(size(50 << 20), "50M");
        assert_eq!(size((4 << 30) + 1), "4.1G");
        assert_eq!(kib(5131008), "4.9G");
    }

    #[test]
    fn modes_read_like_ls_l() {
        assert_eq!(mode(0o100644), "-rw-r--r--");
        assert_eq!(mode(0o040755), "drwxr-xr-x");
        assert_eq!(mode(0o120777), "lrwxrwxrwx");
        assert_eq!(mode(0o104755), "-rwsr-xr-x");
        assert_eq!(mode(0o041777), "drwxrwxrwt");
        assert_eq!(mode(0o102644), "-rw-r-Sr--");
        assert_eq!(mode(0o010600), "prw-------");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(12488), "3h 28m");
        assert_eq!(duration(3 * 86400 + 3600 + 120), "3d 1h 2m");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["NAME", "SIZE"], &[Align::Left, Align::Right]);
        t.row(vec!["a".into(), "1.5K".into()]);
        t.row(vec!["longer".into(), "12".into()]);
        assert_eq!(t.render(), "NAME    SIZE\na       1.5K\nlonger    12\n");
    }
}
