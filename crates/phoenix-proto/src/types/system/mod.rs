//! The system family: Phoenix's `sysinfo`, the guest's summary (kernel identity,
//! uptime, load, memory, users, disks), and qemu-ga's inventory commands ([`qga`]).
//!
//! `sysinfo`'s key names and units are those of the original agent's reply, which
//! existing hosts decode: sizes in KiB, times in seconds, load averages as floats.

pub mod qga;

use serde::{Deserialize, Serialize};

/// The return value of `sysinfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SysInfo {
    /// The kernel's identity, as uname(2) gives it.
    pub uname: Uname,
    /// Bits in a C `long` of the guest's userland (what `getconf LONG_BIT` prints).
    pub long_bit: u32,
    /// Seconds since boot.
    pub uptime: u64,
    /// The 1, 5 and 15 minute load averages.
    pub loadavg: LoadAvg,
    /// Main memory, KiB.
    pub ram: Ram,
    /// Swap space, KiB.
    pub swap: Swap,
    /// Logged-in users (remote sessions, as the original reported them).
    pub users: Vec<User>,
    /// Real block devices (those with a `device` link in /sys/block), sorted by name.
    pub disks: Vec<Disk>,
}

/// The fields of `struct utsname`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uname {
    /// Kernel name, "Linux".
    pub sysname: String,
    /// Host name.
    pub nodename: String,
    /// Kernel release, e.g. "6.1.0-27-cloud-amd64".
    pub release: String,
    /// Kernel build string.
    pub version: String,
    /// Hardware name, e.g. "x86_64".
    pub machine: String,
    /// NIS domain name; "(none)" when unset.
    pub domain: String,
}

/// Load averages. The keys start with a digit, hence the renames.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadAvg {
    /// Over 1 minute.
    #[serde(rename = "1m")]
    pub one: f64,
    /// Over 5 minutes.
    #[serde(rename = "5m")]
    pub five: f64,
    /// Over 15 minutes.
    #[serde(rename = "15m")]
    pub fifteen: f64,
}

/// Main memory in KiB (`MemTotal`, `MemFree`, `Buffers` of /proc/meminfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ram {
    /// Usable RAM.
    pub total: u64,
    /// RAM not used at all (page cache counts as used).
    pub free: u64,
    /// Block-device buffers.
    pub buffer: u64,
}

/// Swap space in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swap {
    /// All swap areas together.
    pub total: u64,
    /// Swap not in use.
    pub free: u64,
}

/// A logged-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Terminal without "/dev/", e.g. "pts/0"; "" when the session has none.
    pub device: String,
    /// Remote host the user came from.
    pub host: String,
    /// Login time, seconds since the epoch.
    pub login_time: i64,
}

/// A block device and the filesystem mounted from it.
///
/// Sizes are 0 when nothing is mounted, or when the filesystem did not answer statvfs
/// in time (a dead network mount); the keys are always present, as old hosts expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Device path, e.g. "/dev/vda".
    pub name: String,
    /// Whether the device, one of its partitions, or a device built on them is mounted.
    pub is_mounted: bool,
    /// Where it is mounted; "" when not mounted.
    pub mountpoint: String,
    /// Filesystem size, KiB.
    pub size_total: u64,
    /// Used space, KiB (total minus free, blocks reserved for root counted as used).
    pub size_used: u64,
    /// Space available to unprivileged users, KiB.
    pub size_avail: u64,
}

/// The system family's commands.
pub mod cmd {
    use crate::NoArgs;

    crate::commands! { Phoenix;
        /// `sysinfo`: the guest's summary.
        Sysinfo = "sysinfo" (NoArgs) -> super::SysInfo;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_reference_example() {
        let text = r##"{"long_bit":64,"disks":[{"size_used":621900,"name":"/dev/vda",
            "size_total":5131008,"size_avail":4230592,"is_mounted":true,"mountpoint":"/"}],
            "users":[{"device":"pts/0","host":"79.172.60.6","name":"root","login_time":1478346362}],
            "ram":{"buffer":14928,"total":1032644,"free":838220},"uptime":12488,
            "uname":{"sysname":"Linux","domain":"(none)","nodename":"vm-61b27f65","machine":"x86_64",
            "version":"#66-Ubuntu SMP Wed Oct 19 14:12:37 UTC 2016","release":"4.4.0-45-generic"},
            "loadavg":{"5m":0.0087890625,"15m":0,"1m":0.0185546875},"swap":{"total":0,"free":0}}"##;
        let s: SysInfo = serde_json::from_str(text).unwrap();
        assert_eq!(s.loadavg.one, 0.0185546875);
        assert_eq!(s.disks[0].size_avail, 4230592);
        assert_eq!(s.users[0].device, "pts/0");
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["loadavg"]["15m"], 0.0);
        assert_eq!(back["ram"]["buffer"], 14928);
        // Same keys everywhere as the original's reply.
        let orig: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(keys(&back), keys(&orig));
    }

    fn keys(v: &serde_json::Value) -> Vec<String> {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .flat_map(|(k, v)| std::iter::once(k.clone()).chain(keys(v)))
                .collect(),
            serde_json::Value::Array(a) => a.iter().flat_map(keys).collect(),
            _ => Vec::new(),
        }
    }
}
