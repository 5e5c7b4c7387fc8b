//! `guest-set-time`: the system clock from a time the host gives, then the RTC from
//! the clock; or, without a time, the clock from the RTC (`hwclock -w` and `hwclock
//! -s`, without hwclock).
//!
//! A time must fall in 1970 to 2069, which the RTC can hold (a PC's CMOS keeps two
//! digits of the year); qemu-ga has the same bound. The RTC keeps UTC or local time as
//! /etc/adjtime says ([`adjtime`](super::adjtime)); local time is the guest's zone
//! (`TZ`, else /etc/localtime), read with the system family's zone code.
//!
//! Precision: the RTC counts whole seconds. It is written when the clock is at the
//! point of a second where the RTC's next second starts in step ([`Rtc::phase`]), and
//! it is read at the moment its second changes (polled every millisecond, at most
//! 1.5 s), so clock and RTC agree within a few milliseconds, as with hwclock. Setting
//! the time takes up to a second for that.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, clock_settime, ClockId};

use super::adjtime::{self, RtcScale};
use super::rtc::{Rtc, RtcTime};
use super::Sources;
use crate::error::{Context as _, Error};
use crate::families::system::timezone;

const NS: i64 = 1_000_000_000;

/// 2070-01-01 00:00:00 UTC: the first second the RTC cannot hold.
const END_SECS: i64 = 3_155_760_000;

/// How long to wait for the RTC's second to change.
const TICK_WAIT: Duration = Duration::from_millis(1500);

/// Refuses a time the RTC cannot hold: before 1970 or from 2070 on.
pub fn check(time_ns: i64) -> Result<(), Error> {
    let secs = time_ns.div_euclid(NS);
    if (0..END_SECS).contains(&secs) {
        Ok(())
    } else {
        Err(Error::errno(
            Errno::EINVAL,
            format!(
                "invalid time {time_ns}: outside 1970-01-01 to 2069-12-31 UTC, what the RTC \
                 can hold"
            ),
        ))
    }
}

/// Refuses a time that the RTC, on its scale, cannot hold: on an RTC kept in local
/// time the zone's offset can carry a time near either end past 1970 to 2069, which
/// its two year digits would wrap.
fn check_on_scale(time_ns: i64, scale: RtcScale, offset_at: &dyn Fn(i64) -> i64) -> Result<(), Error> {
    let fits = rtc_from_clock(time_ns.div_euclid(NS), scale, offset_at)
        .is_some_and(|r| (70..170).contains(&r.tm_year));
    if fits {
        return Ok(());
    }
    Err(Error::errno(
        Errno::EINVAL,
        format!(
            "invalid time {time_ns}: on the RTC's scale ({scale:?}) it falls outside 1970 \
             to 2069, what the RTC can hold"
        ),
    ))
}

/// Sets the clock to `time_ns`, then the RTC from the clock; without a time, the clock
/// from the RTC. A guest without an RTC device gets its clock set; without a time it
/// is an error.
pub fn set_time(src: &Sources, time_ns: Option<i64>) -> Result<(), Error> {
    if let Some(t) = time_ns {
        check(t)?;
    }
    // Everything that can fail without changing anything comes first.
    let rtc = Rtc::open(&src.rtc, &src.sys_class_rtc)?;
    let scale = adjtime::read(&src.adjtime)?;
    let offset_at = |t: i64| {
        let z = &src.zone;
        timezone::local(&z.localtime, &z.zoneinfo, z.tz.as_deref(), t).offset
    };
    match time_ns {
        Some(t) => {
            if rtc.is_some() {
                check_on_scale(t, scale, &offset_at)?;
            }
            set_clock(t)?;
            tracing::info!(time_ns = t, "guest-set-time: clock set");
            match rtc {
                Some(rtc) => {
                    write_rtc_from_clock(&rtc, scale, &offset_at)?;
                    tracing::info!(rtc = %rtc.path().display(), ?scale, "guest-set-time: RTC set from the clock");
                }
                None => tracing::info!("guest-set-time: no RTC device to set"),
            }
            Ok(())
        }
        None => {
            let Some(rtc) = rtc else {
                let names: Vec<String> = src.rtc.iter().map(|p| p.display().to_string()).collect();
                return Err(Error::errno(
                    Errno::ENODEV,
                    format!(
                        "no RTC to set the clock from ({} missing): give the time to set",
                        names.join(", ")
                    ),
                ));
            };
            let (t, since) = read_rtc_at_tick(&rtc)?;
            let secs = clock_from_rtc(&t, scale, &offset_at).ok_or_else(|| {
                Error::errno(
                    Errno::EINVAL,
                    format!("the RTC holds an invalid date: {t:?}"),
                )
            })?;
            let elapsed = i64::try_from(since.elapsed().as_nanos()).unwrap_or(0);
            let ns = secs.saturating_mul(NS).saturating_add(elapsed);
            set_clock(ns)?;
            tracing::info!(time_ns = ns, rtc = %rtc.path().display(), ?scale, "guest-set-time: clock set from the RTC");
            Ok(())
        }
    }
}

/// The RTC's broken-down time for `secs` seconds since the epoch on `scale`.
pub fn rtc_from_clock(secs: i64, scale: RtcScale, offset_at: &dyn Fn(i64) -> i64) -> Option<RtcTime> {
    match scale {
        RtcScale::Utc => RtcTime::from_epoch(secs),
        RtcScale::Local => RtcTime::from_epoch(secs.checked_add(offset_at(secs))?),
    }
}

/// Seconds since the epoch of the RTC's time `t` on `scale`; `None` when `t` is no
/// valid date. A local time that a zone change makes ambiguous or skips is read with
/// the offset in force just before it, as mktime(3) mostly does.
pub fn clock_from_rtc(t: &RtcTime, scale: RtcScale, offset_at: &dyn Fn(i64) -> i64) -> Option<i64> {
    let wall = t.to_epoch()?;
    match scale {
        RtcScale::Utc => Some(wall),
        RtcScale::Local => {
            let guess = wall.checked_sub(offset_at(wall))?;
            wall.checked_sub(offset_at(guess))
        }
    }
}

/// The clock now, in nanoseconds since the epoch.
// time_t and long are i32 on 32-bit targets, where the conversions are not useless.
#[allow(clippy::useless_conversion)]
fn now_ns() -> Result<i64, Error> {
    let ts = clock_gettime(ClockId::CLOCK_REALTIME).context(|| "clock_gettime")?;
    Ok(i64::from(ts.tv_sec())
        .saturating_mul(NS)
        .saturating_add(i64::from(ts.tv_nsec())))
}

/// clock_settime(CLOCK_REALTIME).
fn set_clock(ns: i64) -> Result<(), Error> {
    let ts = TimeSpec::new(ns.div_euclid(NS), ns.rem_euclid(NS));
    clock_settime(ClockId::CLOCK_REALTIME, ts).context(|| "set the clock (clock_settime)")
}

/// How long after `now_ns` the clock reaches `phase` into a second.
pub fn wait_for_phase(now_ns: i64, phase: Duration) -> Duration {
    let phase = i64::try_from(phase.as_nanos()).unwrap_or(0);
    let wait = (phase - now_ns.rem_euclid(NS)).rem_euclid(NS);
    Duration::from_nanos(u64::try_from(wait).unwrap_or(0))
}

/// The second to write into the RTC at `now_ns`, for an RTC whose next second starts
/// `phase` after the write: the clock's second `phase` ago, rounded.
pub fn second_to_write(now_ns: i64, phase: Duration) -> i64 {
    let phase = i64::try_from(phase.as_nanos()).unwrap_or(0);
    (now_ns - phase + NS / 2).div_euclid(NS)
}

/// Writes the clock's time into the RTC, at the right point of the second.
fn write_rtc_from_clock(rtc: &Rtc, scale: RtcScale, offset_at: &dyn Fn(i64) -> i64) -> Result<(), Error> {
    std::thread::sleep(wait_for_phase(now_ns()?, rtc.phase));
    let secs = second_to_write(now_ns()?, rtc.phase);
    let t = rtc_from_clock(secs, scale, offset_at).ok_or_else(|| {
        Error::errno(Errno::EOVERFLOW, format!("{secs} s does not fit the RTC"))
    })?;
    rtc.write(&t)
}

/// Reads the RTC at the moment its second changes: the new time and when it was
/// seen. An RTC that does not tick within [`TICK_WAIT`] is stopped: an error.
fn read_rtc_at_tick(rtc: &Rtc) -> Result<(RtcTime, Instant), Error> {
    let first = rtc.read()?;
    let deadline = Instant::now() + TICK_WAIT;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        let t = rtc.read()?;
        let seen = Instant::now();
        if t != first {
            return Ok((t, seen));
        }
    }
    Err(Error::errno(
        Errno::ETIMEDOUT,
        format!(
            "the RTC ({}) did not tick within {} ms: it is stopped",
            rtc.path().display(),
            TICK_WAIT.as_millis()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_of_what_the_rtc_holds() {
        check(0).unwrap();
        check(1_700_000_000_123_456_789).unwrap();
        check(END_SECS * NS - 1).unwrap();
        for bad in [-1, -NS, END_SECS * NS, i64::MAX, i64::MIN] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.code(), libc::EINVAL);
            assert!(e.message().contains("1970-01-01 to 2069-12-31"), "{}", e.message());
        }
    }

    #[test]
    fn a_local_rtc_must_hold_the_time_after_the_offset() {
        let east = |_: i64| 3600;
        let west = |_: i64| -3600;
        let last = (END_SECS - 1) * NS;
        check_on_scale(last, RtcScale::Utc, &east).unwrap();
        // 2069-12-31 23:59:59 UTC is 2070 at UTC+1, and 0 UTC is 1969 at UTC-1.
        check_on_scale(last, RtcScale::Local, &east).unwrap_err();
        check_on_scale(0, RtcScale::Local, &west).unwrap_err();
        check_on_scale(0, RtcScale::Local, &east).unwrap();
    }

    #[test]
    fn local_and_utc_rtc() {
        let utc = |_: i64| 0;
        let t = rtc_from_clock(1_700_000_000, RtcScale::Utc, &utc).unwrap();
        assert_eq!(t.tm_hour, 22);
        assert_eq!(clock_from_rtc(&t, RtcScale::Utc, &utc), Some(1_700_000_000));
        // One hour east: the RTC shows 23:13, and reads back to the same instant.
        let cet = |_: i64| 3600;
        let t = rtc_from_clock(1_700_000_000, RtcScale::Local, &cet).unwrap();
        assert_eq!((t.tm_hour, t.tm_min), (23, 13));
        assert_eq!(clock_from_rtc(&t, RtcScale::Local, &cet), Some(1_700_000_000));
        // Around a change of offset (CET to CEST at 1711846800 = 2024-03-31 01:00 UTC).
        let berlin = |t: i64| if t < 1_711_846_800 { 3600 } else { 7200 };
        for secs in [1_711_846_799, 1_711_846_800, 1_711_850_000, 1_711_800_000] {
            let t = rtc_from_clock(secs, RtcScale::Local, &berlin).unwrap();
            assert_eq!(clock_from_rtc(&t, RtcScale::Local, &berlin), Some(secs), "{secs}");
        }
        let bad = RtcTime {
            tm_mon: 12,
            ..RtcTime::default()
        };
        assert_eq!(clock_from_rtc(&bad, RtcScale::Utc, &utc), None);
    }

    #[test]
    fn when_and_what_to_write() {
        let ms = |n: u64| Duration::from_millis(n);
        // An MC146818 (500 ms): wait for x.5, write x.
        assert_eq!(wait_for_phase(10 * NS + 200_000_000, ms(500)), ms(300));
        assert_eq!(wait_for_phase(10 * NS + 700_000_000, ms(500)), ms(800));
        assert_eq!(wait_for_phase(10 * NS + 500_000_000, ms(500)), ms(0));
        assert_eq!(second_to_write(10 * NS + 500_000_000, ms(500)), 10);
        assert_eq!(second_to_write(10 * NS + 503_000_000, ms(500)), 10);
        assert_eq!(second_to_write(10 * NS + 497_000_000, ms(500)), 10);
        // Others: wait for the second to start, write it.
        assert_eq!(wait_for_phase(10 * NS + 200_000_000, ms(0)), ms(800));
        assert_eq!(second_to_write(11 * NS + 2_000_000, ms(0)), 11);
        assert_eq!(second_to_write(11 * NS - 2_000_000, ms(0)), 11);
    }
}
