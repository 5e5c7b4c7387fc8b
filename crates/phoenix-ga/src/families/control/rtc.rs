//! The RTC through its character device: RTC_RD_TIME and RTC_SET_TIME (linux/rtc.h),
//! the broken-down time they carry, and its conversion to and from seconds since the
//! epoch. No `hwclock`: minimal guests (busybox, distroless) lack it, and qemu-ga
//! refuses `guest-set-time` there.
//!
//! Kernel facts:
//! - `/dev/rtc0` is the first RTC (`/dev/rtc` a link to it on some systems); it can be
//!   open by one process at a time (EBUSY otherwise). RTC_SET_TIME needs CAP_SYS_TIME.
//! - RTC_RD_TIME fails with EINVAL when the RTC holds no valid time (never set, or a
//!   dead battery).
//! - The time carries whole seconds. An MC146818 (`rtc_cmos`, what QEMU's PC machines
//!   have) starts its next second 500 ms after it is written, others a whole second
//!   after: to keep the RTC in step with the clock, it is written when the clock is
//!   that far into a second (as the kernel's own RTC sync and util-linux's hwclock do).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libc::c_int;

use crate::error::{Context as _, Error};
use crate::families::system::posix_tz::{civil_from_days, days_from_civil};

/// `struct rtc_time` of linux/rtc.h (the fields of `struct tm` it mirrors).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtcTime {
    /// Seconds, 0 to 59.
    pub tm_sec: c_int,
    /// Minutes, 0 to 59.
    pub tm_min: c_int,
    /// Hours, 0 to 23.
    pub tm_hour: c_int,
    /// Day of the month, 1 to 31.
    pub tm_mday: c_int,
    /// Month, 0 to 11.
    pub tm_mon: c_int,
    /// Years since 1900.
    pub tm_year: c_int,
    /// Day of the week, 0 (Sunday) to 6; not used by the kernel on input.
    pub tm_wday: c_int,
    /// Day of the year, 0 to 365; not used by the kernel on input.
    pub tm_yday: c_int,
    /// Unused by RTCs.
    pub tm_isdst: c_int,
}

// RTC_RD_TIME = _IOR('p', 0x09, struct rtc_time), RTC_SET_TIME = _IOW('p', 0x0a, ...).
nix::ioctl_read!(rtc_rd_time, b'p', 0x09, RtcTime);
nix::ioctl_write_ptr!(rtc_set_time, b'p', 0x0a, RtcTime);

const DAY: i64 = 86_400;

impl RtcTime {
    /// The broken-down form of `secs` seconds since the epoch, read as UTC; `None` for
    /// a year outside what `tm_year` holds.
    pub fn from_epoch(secs: i64) -> Option<Self> {
        let days = secs.div_euclid(DAY);
        let sod = secs.rem_euclid(DAY);
        let (y, m, d) = civil_from_days(days);
        let int = |v: i64| c_int::try_from(v).ok();
        Some(RtcTime {
            tm_sec: int(sod % 60)?,
            tm_min: int(sod / 60 % 60)?,
            tm_hour: int(sod / 3600)?,
            tm_mday: int(d)?,
            tm_mon: int(m - 1)?,
            tm_year: int(y - 1900)?,
            tm_wday: int((days + 4).rem_euclid(7))?,
            tm_yday: int(days - days_from_civil(y, 1, 1))?,
            tm_isdst: 0,
        })
    }

    /// Seconds since the epoch of this broken-down time read as UTC; `None` when a
    /// field is out of its range (an RTC holding garbage).
    pub fn to_epoch(self) -> Option<i64> {
        let f = |v: c_int| i64::from(v);
        let (y, m, d) = (f(self.tm_year) + 1900, f(self.tm_mon) + 1, f(self.tm_mday));
        let ok = (1..=12).contains(&m)
            && (1..=days_in_month(y, m)).contains(&d)
            && (0..24).contains(&f(self.tm_hour))
            && (0..60).contains(&f(self.tm_min))
            && (0..60).contains(&f(self.tm_sec));
        ok.then(|| {
            days_from_civil(y, m, d) * DAY
                + f(self.tm_hour) * 3600
                + f(self.tm_min) * 60
                + f(self.tm_sec)
        })
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// An open RTC.
#[derive(Debug)]
pub struct Rtc {
    file: File,
    path: PathBuf,
    /// How far into a second of the clock the RTC is written (see the module docs).
    pub phase: Duration,
}

impl Rtc {
    /// Opens the first of `candidates` that exists; `None` when none does (a guest
    /// without an RTC). `sys_class_rtc` (/sys/class/rtc) tells its driver.
    pub fn open(candidates: &[PathBuf], sys_class_rtc: &Path) -> Result<Option<Rtc>, Error> {
        for path in candidates {
            match File::open(path) {
                Ok(file) => {
                    let phase = phase_of(path, sys_class_rtc);
                    return Ok(Some(Rtc {
                        file,
                        path: path.clone(),
                        phase,
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::os(format!("open {}", path.display()), e)),
            }
        }
        Ok(None)
    }

    /// The device's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// RTC_RD_TIME.
    pub fn read(&self) -> Result<RtcTime, Error> {
        let mut t = RtcTime::default();
        // SAFETY: the descriptor is open for the whole call and `t` is a live, writable
        // struct of the layout RTC_RD_TIME fills.
        unsafe { rtc_rd_time(self.file.as_raw_fd(), &mut t) }.context(|| {
            format!(
                "read the RTC ({}: RTC_RD_TIME; EINVAL: it holds no valid time)",
                self.path.display()
            )
        })?;
        Ok(t)
    }

    /// RTC_SET_TIME.
    pub fn write(&self, t: &RtcTime) -> Result<(), Error> {
        // SAFETY: the descriptor is open for the whole call and `t` points to a live
        // struct of the layout RTC_SET_TIME reads.
        unsafe { rtc_set_time(self.file.as_raw_fd(), t) }
            .context(|| format!("set the RTC ({}: RTC_SET_TIME)", self.path.display()))?;
        Ok(())
    }
}

/// 500 ms for an MC146818 (`rtc_cmos`), else 0 (see the module docs). The driver's
/// name is in /sys/class/rtc/rtcN/name (`rtc_cmos 00:04`).
fn phase_of(dev: &Path, sys_class_rtc: &Path) -> Duration {
    let name = std::fs::canonicalize(dev)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_os_string()));
    let driver = name
        .and_then(|n| std::fs::read_to_string(sys_class_rtc.join(n).join("name")).ok())
        .unwrap_or_default();
    if driver.starts_with("rtc_cmos") {
        Duration::from_millis(500)
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tm(y: c_int, mon: c_int, d: c_int, h: c_int, mi: c_int, s: c_int) -> RtcTime {
        RtcTime {
            tm_sec: s,
            tm_min: mi,
            tm_hour: h,
            tm_mday: d,
            tm_mon: mon - 1,
            tm_year: y - 1900,
            ..RtcTime::default()
        }
    }

    #[test]
    fn epoch_round_trips() {
        let t = RtcTime::from_epoch(0).unwrap();
        assert_eq!((t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday, t.tm_yday), (70, 0, 1, 4, 0));
        // 2024-02-29 23:59:59 UTC, a Thursday, day 59 of a leap year.
        let t = RtcTime::from_epoch(1_709_251_199).unwrap();
        assert_eq!(
            (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec),
            (124, 1, 29, 23, 59, 59)
        );
        assert_eq!((t.tm_wday, t.tm_yday), (4, 59));
        // The last second the RTC may hold (qemu-ga's bound: before 2070).
        let t = RtcTime::from_epoch(3_155_759_999).unwrap();
        assert_eq!((t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour), (169, 11, 31, 23));
        for secs in [0, 59, 86_399, 951_782_400, 1_700_000_000, 4_102_444_800, -1] {
            assert_eq!(RtcTime::from_epoch(secs).unwrap().to_epoch(), Some(secs));
        }
        assert_eq!(tm(2000, 3, 1, 0, 0, 0).to_epoch(), Some(951_868_800));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(tm(2023, 2, 29, 0, 0, 0).to_epoch(), None);
        assert_eq!(tm(2024, 2, 29, 0, 0, 0).to_epoch(), Some(1_709_164_800));
        assert_eq!(tm(2024, 13, 1, 0, 0, 0).to_epoch(), None);
        assert_eq!(tm(2024, 0, 1, 0, 0, 0).to_epoch(), None);
        assert_eq!(tm(2024, 4, 31, 0, 0, 0).to_epoch(), None);
        assert_eq!(tm(2024, 1, 1, 24, 0, 0).to_epoch(), None);
        assert_eq!(tm(2024, 1, 1, 0, 60, 0).to_epoch(), None);
        assert_eq!(tm(2024, 1, 1, 0, 0, 60).to_epoch(), None);
        assert_eq!(tm(2024, 1, 0, 0, 0, 0).to_epoch(), None);
    }

    #[test]
    fn no_device_is_none_and_a_bad_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = [dir.path().join("rtc0"), dir.path().join("rtc")];
        assert!(Rtc::open(&missing, dir.path()).unwrap().is_none());
        // A regular file is no RTC: the ioctl says ENOTTY, with the device named.
        let file = dir.path().join("rtc");
        std::fs::write(&file, b"").unwrap();
        let rtc = Rtc::open(&missing, dir.path()).unwrap().unwrap();
        assert_eq!(rtc.path(), file);
        let e = rtc.read().unwrap_err();
        assert_eq!(e.code(), libc::ENOTTY);
        assert!(e.message().contains(&file.display().to_string()), "{}", e.message());
    }

    #[test]
    fn phase_from_the_driver() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("rtc0");
        std::fs::write(&dev, b"").unwrap();
        let class = dir.path().join("class");
        std::fs::create_dir_all(class.join("rtc0")).unwrap();
        assert_eq!(phase_of(&dev, &class), Duration::ZERO);
        std::fs::write(class.join("rtc0/name"), "rtc_cmos 00:04\n").unwrap();
        assert_eq!(phase_of(&dev, &class), Duration::from_millis(500));
        std::fs::write(class.join("rtc0/name"), "rtc-efi rtc-efi.0\n").unwrap();
        assert_eq!(phase_of(&dev, &class), Duration::ZERO);
    }
}
