//! What the kernel says about itself: uname(2), sysinfo(2) and the clock.
//!
//! Uptime, load averages, RAM and swap all come from one sysinfo(2) call. Its RAM
//! figures are the very counters /proc/meminfo prints as `MemTotal`, `MemFree` and
//! `Buffers` (both are filled by the kernel's `si_meminfo`), without a file to open and
//! parse; its load averages are the kernel's fixed-point values scaled by 2^16, exact,
//! where /proc/loadavg rounds them to two decimals. The original agent reported loads
//! the same way (0.0185546875 in the command reference is 1216 / 65536).

use std::ffi::OsStr;

use phoenix_proto::types::system::{LoadAvg, Ram, Swap, Uname};

use crate::error::{Context as _, Error};

/// `SI_LOAD_SHIFT` of <linux/kernel.h>: sysinfo(2) loads are fixed point with 16
/// fraction bits.
const LOAD_SCALE: f64 = (1u32 << 16) as f64;

/// The kernel's identity.
pub fn uname() -> Result<Uname, Error> {
    let u = nix::sys::utsname::uname().context(|| "uname")?;
    let s = |v: &OsStr| v.to_string_lossy().into_owned();
    Ok(Uname {
        sysname: s(u.sysname()),
        nodename: s(u.nodename()),
        release: s(u.release()),
        version: s(u.version()),
        machine: s(u.machine()),
        domain: s(u.domainname()),
    })
}

/// The host name (uname(2)'s `nodename`, what gethostname(2) returns), read anew
/// each time so that a change shows at once.
pub fn host_name() -> Result<String, Error> {
    uname().map(|u| u.nodename)
}

/// The system clock (CLOCK_REALTIME) in nanoseconds since the epoch.
// time_t and long are i32 on 32-bit targets, where the conversions are not useless.
#[allow(clippy::useless_conversion)]
pub fn now_ns() -> Result<i64, Error> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .context(|| "clock_gettime")?;
    i64::from(now.tv_sec())
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(i64::from(now.tv_nsec())))
        .ok_or_else(|| {
            Error::errno(
                nix::errno::Errno::EOVERFLOW,
                "clock_gettime: the time does not fit 64-bit nanoseconds",
            )
        })
}

/// `LONG_BIT` of the guest's userland, the number `getconf LONG_BIT` prints.
///
/// The original forked getconf for it. getconf answers for the C library it was built
/// against, which is the userland's ABI, not the kernel's: a 32-bit userland on a
/// 64-bit kernel says 32. The agent is built for the guest's userland, so the width of
/// its own C `long` is the same fact, with no process to start.
pub fn long_bit() -> u32 {
    libc::c_long::BITS
}

/// The figures of sysinfo(2), converted to the reply's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counters {
    /// Seconds since boot.
    pub uptime: u64,
    /// Load averages.
    pub loadavg: LoadAvg,
    /// RAM in KiB.
    pub ram: Ram,
    /// Swap in KiB.
    pub swap: Swap,
}

/// Calls sysinfo(2).
pub fn counters() -> Result<Counters, Error> {
    // SAFETY: all-zero bytes are a valid `struct sysinfo` (integers and padding only).
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `si` is a valid, writable `struct sysinfo` for the kernel to fill.
    let rc = unsafe { libc::sysinfo(&mut si) };
    if rc != 0 {
        return Err(Error::os("sysinfo", std::io::Error::last_os_error()));
    }
    Ok(convert(&si))
}

/// Converts raw sysinfo(2) figures: memory sizes are counts of `mem_unit` bytes.
pub fn convert(si: &libc::sysinfo) -> Counters {
    let unit = u64::from(si.mem_unit.max(1));
    // c_ulong is u32 on 32-bit targets, where the conversion is not useless.
    #[allow(clippy::useless_conversion)]
    let kib = |n: libc::c_ulong| u64::from(n).saturating_mul(unit) / 1024;
    let load = |n: libc::c_ulong| n as f64 / LOAD_SCALE;
    Counters {
        uptime: u64::try_from(si.uptime).unwrap_or(0),
        loadavg: LoadAvg {
            one: load(si.loads[0]),
            five: load(si.loads[1]),
            fifteen: load(si.loads[2]),
        },
        ram: Ram {
            total: kib(si.totalram),
            free: kib(si.freeram),
            buffer: kib(si.bufferram),
        },
        swap: Swap {
            total: kib(si.totalswap),
            free: kib(si.freeswap),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(mem_unit: u32) -> libc::sysinfo {
        // SAFETY: all-zero bytes are a valid `struct sysinfo`.
        let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
        si.mem_unit = mem_unit;
        si
    }

    #[test]
    fn converts_the_reference_example() {
        // The figures behind the command reference's example reply.
        let mut si = raw(1);
        si.uptime = 12488;
        si.loads = [1216, 576, 0];
        si.totalram = 1032644 * 1024;
        si.freeram = 838220 * 1024;
        si.bufferram = 14928 * 1024;
        let c = convert(&si);
        assert_eq!(c.uptime, 12488);
        assert_eq!(c.loadavg.one, 0.0185546875);
        assert_eq!(c.loadavg.five, 0.0087890625);
        assert_eq!(c.loadavg.fifteen, 0.0);
        assert_eq!(
            c.ram,
            Ram {
                total: 1032644,
                free: 838220,
                buffer: 14928
            }
        );
        assert_eq!(c.swap, Swap { total: 0, free: 0 });
    }

    #[test]
    fn honours_mem_unit() {
        // Kernels report in pages (mem_unit 4096) when bytes would overflow a long.
        let mut si = raw(4096);
        si.totalram = 3;
        si.freeram = 1;
        si.totalswap = 1 << 20;
        si.freeswap = 5;
        si.loads = [3 << 16, 1 << 15, 65536 + 6554];
        let c = convert(&si);
        assert_eq!((c.ram.total, c.ram.free), (12, 4));
        assert_eq!(
            c.swap,
            Swap {
                total: 4 << 20,
                free: 20
            }
        );
        assert_eq!((c.loadavg.one, c.loadavg.five), (3.0, 0.5));
        assert!((c.loadavg.fifteen - 1.1).abs() < 1e-4);
        // mem_unit 0 (kernels before 2.3.23) means bytes.
        let mut si = raw(0);
        si.totalram = 2048;
        assert_eq!(convert(&si).ram.total, 2);
    }

    #[test]
    fn live_values_are_sane() {
        let c = counters().unwrap();
        assert!(c.ram.total > 0 && c.ram.free <= c.ram.total);
        assert!(c.swap.free <= c.swap.total);
        assert_eq!(long_bit(), usize::BITS);
        assert_eq!(uname().unwrap().sysname, "Linux");
        assert_eq!(
            host_name().unwrap(),
            nix::unistd::gethostname().unwrap().to_string_lossy()
        );
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let ns = u128::try_from(now_ns().unwrap()).unwrap();
        assert!(ns >= before && ns - before < 1_000_000_000);
    }
}
