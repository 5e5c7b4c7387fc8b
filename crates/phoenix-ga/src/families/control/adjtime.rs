//! Whether the RTC keeps UTC or local time: the third line of /etc/adjtime, as
//! util-linux's hwclock reads it (adjtime_config(5)).
//!
//! The file's lines: drift factor, last adjustment and adjustment status; the last
//! calibration time; then `UTC` or `LOCAL`. No file, a shorter file or an empty third
//! line mean UTC (hwclock's default); another word is taken as UTC with a warning, as
//! hwclock does. Dual-boot guests with Windows keep LOCAL.

use std::io;
use std::path::Path;

use crate::error::{Context as _, Error};

/// What the RTC keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcScale {
    /// Coordinated universal time.
    Utc,
    /// The guest's local time (its /etc/localtime, or `TZ`).
    Local,
}

/// The scale the text of an adjtime file says.
pub fn parse(text: &str) -> RtcScale {
    match text.lines().nth(2).map(str::trim) {
        Some("LOCAL") => RtcScale::Local,
        Some("UTC" | "") | None => RtcScale::Utc,
        Some(other) => {
            tracing::warn!(
                word = other,
                "adjtime: third line is neither UTC nor LOCAL; the RTC is taken as UTC"
            );
            RtcScale::Utc
        }
    }
}

/// The scale `path` says; UTC when there is no such file. Adjtime files are a few
/// dozen bytes: more than 4 KiB is not read.
pub fn read(path: &Path) -> Result<RtcScale, Error> {
    use std::io::Read as _;
    let mut text = String::new();
    match std::fs::File::open(path) {
        Ok(f) => {
            f.take(4096)
                .read_to_string(&mut text)
                .context(|| format!("read {}", path.display()))?;
            Ok(parse(&text))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RtcScale::Utc),
        Err(e) => Err(Error::os(format!("open {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn third_line() {
        assert_eq!(parse("0.0 0 0.0\n0\nLOCAL\n"), RtcScale::Local);
        assert_eq!(parse("0.0 0 0.0\n0\nUTC\n"), RtcScale::Utc);
        assert_eq!(parse("0.000000 1700000000 0.000000\n1700000000\nLOCAL"), RtcScale::Local);
        assert_eq!(parse("0.0 0 0.0\n0\n  LOCAL \n"), RtcScale::Local);
        assert_eq!(parse("0.0 0 0.0\n0\n"), RtcScale::Utc);
        assert_eq!(parse("0.0 0 0.0\n0\n\n"), RtcScale::Utc);
        assert_eq!(parse(""), RtcScale::Utc);
        // Only the third line counts, and only the exact word.
        assert_eq!(parse("LOCAL\nLOCAL\nlocal\n"), RtcScale::Utc);
        assert_eq!(parse("0\n0\nUTC\nLOCAL\n"), RtcScale::Utc);
    }

    #[test]
    fn from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("adjtime");
        assert_eq!(read(&p).unwrap(), RtcScale::Utc);
        std::fs::write(&p, "0.0 0 0.0\n0\nLOCAL\n").unwrap();
        assert_eq!(read(&p).unwrap(), RtcScale::Local);
        // A directory cannot be read: the error names the file.
        let e = read(dir.path()).unwrap_err();
        assert_eq!(e.code(), libc::EISDIR);
        assert!(e.message().contains(&dir.path().display().to_string()));
    }
}
