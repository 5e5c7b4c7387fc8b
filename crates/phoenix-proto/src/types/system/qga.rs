//! qemu-ga's inventory commands: the operating system, host name, time zone, users,
//! clock, logical processors, memory blocks, load and CPU times.
//!
//! None takes arguments ([`Empty`]: an argument is refused, as qemu-ga refuses it).
//! Names and types are those of QEMU's `qga/qapi-schema.json`: members are kebab-case
//! except where the schema spells them otherwise (`guestnice`); QAPI `int` is `i64`,
//! `uint64` is `u64`, `number` is `f64`; an optional member the agent has no value for
//! is left out of the reply, never `null`.

use serde::{Deserialize, Serialize};

use crate::qga::Empty;

/// The return value of `guest-get-osinfo`: uname(2) and os-release(5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestOSInfo {
    /// uname(2)'s `release`, e.g. "6.1.0-27-amd64".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
    /// uname(2)'s `version`, e.g. "#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
    /// uname(2)'s `machine`, e.g. "x86_64".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// os-release's `ID`, e.g. "debian".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// os-release's `NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// os-release's `PRETTY_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
    /// os-release's `VERSION`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// os-release's `VERSION_ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// os-release's `VARIANT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// os-release's `VARIANT_ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
}

/// The return value of `guest-get-host-name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestHostName {
    /// The kernel's host name (gethostname(2)); not necessarily a qualified name.
    pub host_name: String,
}

/// The return value of `guest-get-timezone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTimezone {
    /// The zone's abbreviation in force now ("UTC", "CET", "CEST", "-03").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Seconds east of UTC in force now (west is negative).
    pub offset: i64,
}

/// One user of `guest-get-users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestUser {
    /// Login name.
    pub user: String,
    /// The user's earliest login still open, in seconds since the epoch, with a
    /// fraction.
    pub login_time: f64,
    /// The logon domain (Windows only; never sent by a Linux agent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// One logical processor of `guest-get-vcpus` (and, later, `guest-set-vcpus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestLogicalProcessor {
    /// The kernel's CPU number (`cpuN` in sysfs).
    pub logical_id: i64,
    /// Whether it is online.
    pub online: bool,
    /// Whether it could be taken offline (it has an `online` switch in sysfs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_offline: Option<bool>,
}

/// One memory block of `guest-get-memory-blocks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestMemoryBlock {
    /// The block's number (`memoryN` in sysfs).
    pub phys_index: u64,
    /// Whether it is online.
    pub online: bool,
    /// Whether the kernel says it could be taken offline (`removable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_offline: Option<bool>,
}

/// The return value of `guest-get-memory-block-info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestMemoryBlockInfo {
    /// Bytes in one memory block, the unit of memory hotplug.
    pub size: u64,
}

/// The return value of `guest-get-load`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GuestLoadAverage {
    /// Over 1 minute.
    pub load1m: f64,
    /// Over 5 minutes.
    pub load5m: f64,
    /// Over 15 minutes.
    pub load15m: f64,
}

/// One CPU of `guest-get-cpustats`: a QAPI union, its `type` member beside the
/// members of the variant (`{"type": "linux", "cpu": 0, "user": ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum GuestCpuStats {
    /// A Linux guest's figures.
    Linux(GuestLinuxCpuStats),
}

/// A Linux CPU's times since boot, in milliseconds (/proc/stat's ticks × 1000 /
/// `CLK_TCK`). The optional members are those older kernels do not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestLinuxCpuStats {
    /// The CPU's number.
    pub cpu: i64,
    /// In user mode.
    pub user: u64,
    /// In user mode at low priority.
    pub nice: u64,
    /// In the kernel.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Waiting for I/O (Linux 2.5.41).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iowait: Option<u64>,
    /// Serving interrupts (2.6.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub irq: Option<u64>,
    /// Serving softirqs (2.6.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub softirq: Option<u64>,
    /// Taken by the hypervisor for other guests (2.6.11).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steal: Option<u64>,
    /// Running guests of its own (2.6.24).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<u64>,
    /// Running niced guests of its own (2.6.33).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guestnice: Option<u64>,
}

/// The inventory commands.
pub mod cmd {
    use super::*;

    crate::commands! { Qga;
        /// `guest-get-osinfo`: the kernel (uname) and the distribution (os-release).
        GuestGetOsinfo = "guest-get-osinfo" (Empty) -> GuestOSInfo;
        /// `guest-get-host-name`: the host name.
        GuestGetHostName = "guest-get-host-name" (Empty) -> GuestHostName;
        /// `guest-get-timezone`: the zone's abbreviation and offset now.
        GuestGetTimezone = "guest-get-timezone" (Empty) -> GuestTimezone;
        /// `guest-get-users`: each logged-in user once, with the earliest login.
        GuestGetUsers = "guest-get-users" (Empty) -> Vec<GuestUser>;
        /// `guest-get-time`: nanoseconds since the epoch.
        GuestGetTime = "guest-get-time" (Empty) -> i64;
        /// `guest-get-vcpus`: the logical processors.
        GuestGetVcpus = "guest-get-vcpus" (Empty) -> Vec<GuestLogicalProcessor>;
        /// `guest-get-memory-blocks`: the hotpluggable memory blocks.
        GuestGetMemoryBlocks = "guest-get-memory-blocks" (Empty) -> Vec<GuestMemoryBlock>;
        /// `guest-get-memory-block-info`: the size of one memory block.
        GuestGetMemoryBlockInfo = "guest-get-memory-block-info" (Empty) -> GuestMemoryBlockInfo;
        /// `guest-get-load`: the load averages.
        GuestGetLoad = "guest-get-load" (Empty) -> GuestLoadAverage;
        /// `guest-get-cpustats`: each CPU's times.
        GuestGetCpustats = "guest-get-cpustats" (Empty) -> Vec<GuestCpuStats>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn optional_members_are_left_out() {
        let info = GuestOSInfo {
            kernel_release: Some("6.1.0".into()),
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            version_id: Some("12".into()),
            ..GuestOSInfo::default()
        };
        assert_eq!(
            serde_json::to_value(&info).unwrap(),
            json!({"kernel-release": "6.1.0", "pretty-name": "Debian GNU/Linux 12 (bookworm)",
                   "version-id": "12"})
        );
        assert_eq!(
            serde_json::to_string(&GuestOSInfo::default()).unwrap(),
            "{}"
        );
        let tz = GuestTimezone {
            zone: None,
            offset: -18000,
        };
        assert_eq!(serde_json::to_string(&tz).unwrap(), r#"{"offset":-18000}"#);
        let u = GuestUser {
            user: "root".into(),
            login_time: 1_700_000_000.25,
            domain: None,
        };
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            r#"{"user":"root","login-time":1700000000.25}"#
        );
    }

    #[test]
    fn names_are_the_schemas() {
        let v = GuestLogicalProcessor {
            logical_id: 1,
            online: true,
            can_offline: Some(false),
        };
        assert_eq!(
            serde_json::to_value(v).unwrap(),
            json!({"logical-id": 1, "online": true, "can-offline": false})
        );
        let m = GuestMemoryBlock {
            phys_index: 188,
            online: true,
            can_offline: Some(true),
        };
        assert_eq!(
            serde_json::to_value(m).unwrap(),
            json!({"phys-index": 188, "online": true, "can-offline": true})
        );
        let h = GuestHostName {
            host_name: "vm".into(),
        };
        assert_eq!(serde_json::to_value(h).unwrap(), json!({"host-name": "vm"}));
        // Loads are floats even when whole (qemu-ga prints 0 for a zero load; both
        // read back as the same number).
        let l = GuestLoadAverage {
            load1m: 0.353515625,
            load5m: 1.0,
            load15m: 0.0,
        };
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"load1m":0.353515625,"load5m":1.0,"load15m":0.0}"#
        );
    }

    #[test]
    fn cpu_stats_are_a_flat_union() {
        let s = GuestCpuStats::Linux(GuestLinuxCpuStats {
            cpu: 0,
            user: 1894310,
            nice: 0,
            system: 507950,
            idle: 1796100,
            iowait: Some(9310),
            irq: Some(0),
            softirq: Some(1390),
            steal: Some(5400),
            guest: Some(0),
            guestnice: Some(0),
        });
        // As Debian's qemu-ga 10 answered on this kind of machine.
        let qemu_ga = json!({"cpu": 0, "guestnice": 0, "idle": 1796100, "steal": 5400,
            "iowait": 9310, "system": 507950, "guest": 0, "nice": 0, "irq": 0,
            "type": "linux", "user": 1894310, "softirq": 1390});
        assert_eq!(serde_json::to_value(s).unwrap(), qemu_ga);
        assert_eq!(serde_json::from_value::<GuestCpuStats>(qemu_ga).unwrap(), s);
        let old = GuestCpuStats::Linux(GuestLinuxCpuStats {
            cpu: 3,
            user: 1,
            nice: 2,
            system: 3,
            idle: 4,
            iowait: None,
            irq: None,
            softirq: None,
            steal: None,
            guest: None,
            guestnice: None,
        });
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"type":"linux","cpu":3,"user":1,"nice":2,"system":3,"idle":4}"#
        );
    }
}
