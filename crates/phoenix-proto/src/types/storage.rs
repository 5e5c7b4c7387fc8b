//! Filesystems and disks, in the qemu-ga dialect only ([`qga`]): `guest-get-fsinfo`,
//! `guest-get-disks`, `guest-get-diskstats` and `guest-fstrim`.

/// The qemu-ga dialect's storage commands and their types, named and shaped as in
/// QEMU's `qga/qapi-schema.json` (`GuestFilesystemInfo`, `GuestDiskInfo`, ...).
pub mod qga {
    use serde::{Deserialize, Serialize};

    use crate::qga::Empty;

    /// `GuestPCIAddress`: where a disk's controller sits on the PCI bus; every field
    /// is -1 when there is no such address.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct GuestPciAddress {
        /// The PCI domain.
        pub domain: i64,
        /// The bus.
        pub bus: i64,
        /// The slot.
        pub slot: i64,
        /// The function.
        pub function: i64,
    }

    impl GuestPciAddress {
        /// "No PCI address": every field -1.
        pub const INVALID: Self = GuestPciAddress {
            domain: -1,
            bus: -1,
            slot: -1,
            function: -1,
        };
    }

    /// `GuestCCWAddress`: a channel I/O device's address (s390x).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct GuestCcwAddress {
        /// Channel subsystem image id.
        pub cssid: i64,
        /// Subchannel set id.
        pub ssid: i64,
        /// Subchannel number.
        pub subchno: i64,
        /// Device number.
        pub devno: i64,
    }

    /// `GuestDiskBusType`: the bus a disk hangs on. Linux reports `ide`, `scsi`,
    /// `virtio`, `sata`, `usb`, `nvme` and `unknown`; the others are Windows'.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    #[allow(missing_docs)]
    pub enum GuestDiskBusType {
        Ide,
        Fdc,
        Scsi,
        Virtio,
        Xen,
        Usb,
        Uml,
        Sata,
        Sd,
        Unknown,
        Ieee1394,
        Ssa,
        Fibre,
        Raid,
        Iscsi,
        Sas,
        Mmc,
        Virtual,
        FileBackedVirtual,
        Nvme,
    }

    /// `GuestDiskAddress`: a disk's hardware address, its serial number and node.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub struct GuestDiskAddress {
        /// The controller's PCI address ([`GuestPciAddress::INVALID`] when none).
        pub pci_controller: GuestPciAddress,
        /// The bus type.
        pub bus_type: GuestDiskBusType,
        /// The bus (an IDE channel's index, a SCSI channel).
        pub bus: i64,
        /// The target (a SCSI id).
        pub target: i64,
        /// The unit (a SCSI LUN, an IDE unit, a SATA port's index).
        pub unit: i64,
        /// The serial number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub serial: Option<String>,
        /// The device node (`/dev/vda1`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub dev: Option<String>,
        /// The channel I/O address (s390x).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ccw_address: Option<GuestCcwAddress>,
    }

    /// `GuestFilesystemInfo`: one mounted filesystem of `guest-get-fsinfo`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub struct GuestFilesystemInfo {
        /// The kernel's name of its block device (`vda1`, `dm-0`).
        pub name: String,
        /// Where it is mounted.
        pub mountpoint: String,
        /// The filesystem type (`ext4`).
        #[serde(rename = "type")]
        pub fs_type: String,
        /// Bytes in use.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub used_bytes: Option<u64>,
        /// Capacity for unprivileged users in bytes: used plus available.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub total_bytes: Option<u64>,
        /// Capacity in bytes, the blocks reserved for root included.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub total_bytes_privileged: Option<u64>,
        /// The disks under it (several for RAID or LVM over disks; none for a loop
        /// device).
        pub disk: Vec<GuestDiskAddress>,
    }

    /// `GuestNVMeSmart`: an NVMe disk's SMART / Health Information log (log page
    /// 02h); the 128-bit counters are split into `-lo` and `-hi` halves.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    #[allow(missing_docs)]
    pub struct GuestNvmeSmart {
        pub critical_warning: i64,
        pub temperature: i64,
        pub available_spare: i64,
        pub available_spare_threshold: i64,
        pub percentage_used: i64,
        pub data_units_read_lo: u64,
        pub data_units_read_hi: u64,
        pub data_units_written_lo: u64,
        pub data_units_written_hi: u64,
        pub host_read_commands_lo: u64,
        pub host_read_commands_hi: u64,
        pub host_write_commands_lo: u64,
        pub host_write_commands_hi: u64,
        pub controller_busy_time_lo: u64,
        pub controller_busy_time_hi: u64,
        pub power_cycles_lo: u64,
        pub power_cycles_hi: u64,
        pub power_on_hours_lo: u64,
        pub power_on_hours_hi: u64,
        pub unsafe_shutdowns_lo: u64,
        pub unsafe_shutdowns_hi: u64,
        pub media_errors_lo: u64,
        pub media_errors_hi: u64,
        pub number_of_error_log_entries_lo: u64,
        pub number_of_error_log_entries_hi: u64,
    }

    /// `GuestDiskSmart`: a union on the bus type; only NVMe has members.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "kebab-case")]
    pub enum GuestDiskSmart {
        /// An NVMe disk's health log.
        Nvme(GuestNvmeSmart),
    }

    /// `GuestDiskInfo`: one block device of `guest-get-disks`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub struct GuestDiskInfo {
        /// Its node (`/dev/vda`, `/dev/vda1`).
        pub name: String,
        /// Whether it is a partition.
        pub partition: bool,
        /// The nodes it is built on (a partition: its disk; a device-mapper device:
        /// its slaves).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub dependencies: Option<Vec<String>>,
        /// Its hardware address (disks on a bus, not virtual devices).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub address: Option<GuestDiskAddress>,
        /// Its device-mapper name (`vg-root`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub alias: Option<String>,
        /// Its health log (NVMe).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub smart: Option<GuestDiskSmart>,
    }

    /// `GuestDiskStats`: one line of /proc/diskstats; a field is absent when the
    /// kernel's line does not have it (discards since Linux 4.18, flushes since 5.5).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub struct GuestDiskStats {
        /// Sectors read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub read_sectors: Option<u64>,
        /// Reads completed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub read_ios: Option<u64>,
        /// Reads merged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub read_merges: Option<u64>,
        /// Sectors written.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub write_sectors: Option<u64>,
        /// Writes completed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub write_ios: Option<u64>,
        /// Writes merged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub write_merges: Option<u64>,
        /// Sectors discarded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub discard_sectors: Option<u64>,
        /// Discards completed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub discard_ios: Option<u64>,
        /// Discards merged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub discard_merges: Option<u64>,
        /// Flushes completed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub flush_ios: Option<u64>,
        /// Milliseconds spent reading.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub read_ticks: Option<u64>,
        /// Milliseconds spent writing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub write_ticks: Option<u64>,
        /// Milliseconds spent discarding.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub discard_ticks: Option<u64>,
        /// Milliseconds spent flushing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub flush_ticks: Option<u64>,
        /// I/Os in flight.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ios_pgr: Option<u64>,
        /// Milliseconds spent doing I/O.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub total_ticks: Option<u64>,
        /// Weighted milliseconds spent doing I/O.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub weight_ticks: Option<u64>,
    }

    /// `GuestDiskStatsInfo`: a block device and its counters.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct GuestDiskStatsInfo {
        /// The kernel's name (`vda`, `vda1`, `dm-0`).
        pub name: String,
        /// Major device number.
        pub major: u64,
        /// Minor device number.
        pub minor: u64,
        /// Its counters.
        pub stats: GuestDiskStats,
    }

    /// Arguments of `guest-fstrim`.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FstrimArgs {
        /// Free ranges shorter than this many bytes may be left untrimmed (0: trim
        /// every free block).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub minimum: Option<i64>,
    }

    /// `GuestFilesystemTrimResult`: one filesystem of `guest-fstrim`: `trimmed` and
    /// `minimum` when the trim succeeded, `error` when it did not.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct GuestFilesystemTrimResult {
        /// The mount point.
        pub path: String,
        /// Bytes trimmed, as the filesystem counts them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub trimmed: Option<i64>,
        /// The minimum free range the filesystem used.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub minimum: Option<i64>,
        /// Why it was not trimmed (`trim not supported`, `failed to trim: ...`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error: Option<String>,
    }

    /// `GuestFilesystemTrimResponse`: the return value of `guest-fstrim`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct GuestFilesystemTrimResponse {
        /// One result per filesystem.
        pub paths: Vec<GuestFilesystemTrimResult>,
    }

    /// The storage commands of the qemu-ga dialect.
    pub mod cmd {
        use super::*;

        crate::commands! { Qga;
            /// `guest-get-fsinfo`: every mounted local filesystem, its sizes and disks.
            GuestGetFsinfo = "guest-get-fsinfo" (Empty) -> Vec<GuestFilesystemInfo>;
            /// `guest-get-disks`: every disk of non-zero size and its partitions.
            GuestGetDisks = "guest-get-disks" (Empty) -> Vec<GuestDiskInfo>;
            /// `guest-get-diskstats`: /proc/diskstats.
            GuestGetDiskstats = "guest-get-diskstats" (Empty) -> Vec<GuestDiskStatsInfo>;
            /// `guest-fstrim`: discards the free blocks of every mounted local filesystem.
            GuestFstrim = "guest-fstrim" (FstrimArgs) -> GuestFilesystemTrimResponse;
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        #[test]
        fn names_as_the_schema_spells_them() {
            let addr = GuestDiskAddress {
                pci_controller: GuestPciAddress::INVALID,
                bus_type: GuestDiskBusType::FileBackedVirtual,
                bus: 0,
                target: 1,
                unit: 2,
                serial: None,
                dev: Some("/dev/sda".into()),
                ccw_address: None,
            };
            let fs = GuestFilesystemInfo {
                name: "sda1".into(),
                mountpoint: "/".into(),
                fs_type: "ext4".into(),
                used_bytes: Some(1),
                total_bytes: Some(2),
                total_bytes_privileged: None,
                disk: vec![addr],
            };
            assert_eq!(
                serde_json::to_value(&fs).unwrap(),
                json!({"name": "sda1", "mountpoint": "/", "type": "ext4", "used-bytes": 1,
                    "total-bytes": 2, "disk": [{"pci-controller": {"domain": -1, "bus": -1,
                    "slot": -1, "function": -1}, "bus-type": "file-backed-virtual", "bus": 0,
                    "target": 1, "unit": 2, "dev": "/dev/sda"}]})
            );
            let disk = GuestDiskInfo {
                name: "/dev/nvme0n1".into(),
                partition: false,
                dependencies: Some(vec![]),
                address: None,
                alias: None,
                smart: Some(GuestDiskSmart::Nvme(GuestNvmeSmart {
                    temperature: 310,
                    number_of_error_log_entries_hi: 7,
                    ..Default::default()
                })),
            };
            let v = serde_json::to_value(&disk).unwrap();
            assert_eq!(v["dependencies"], json!([]));
            assert_eq!(v["smart"]["type"], "nvme");
            assert_eq!(v["smart"]["temperature"], 310);
            assert_eq!(v["smart"]["number-of-error-log-entries-hi"], 7);
            assert_eq!(serde_json::from_value::<GuestDiskInfo>(v).unwrap(), disk);
            for (bus, name) in [
                (GuestDiskBusType::Ieee1394, "ieee1394"),
                (GuestDiskBusType::Nvme, "nvme"),
                (GuestDiskBusType::Sata, "sata"),
            ] {
                assert_eq!(serde_json::to_value(bus).unwrap(), name);
            }
            let stats = GuestDiskStats {
                read_ios: Some(3),
                ios_pgr: Some(0),
                ..Default::default()
            };
            assert_eq!(
                serde_json::to_value(stats).unwrap(),
                json!({"read-ios": 3, "ios-pgr": 0})
            );
        }

        #[test]
        fn fstrim_arguments_are_strict() {
            let a: FstrimArgs = serde_json::from_str("{}").unwrap();
            assert_eq!(a.minimum, None);
            let a: FstrimArgs = serde_json::from_str(r#"{"minimum": 4096}"#).unwrap();
            assert_eq!(a.minimum, Some(4096));
            serde_json::from_str::<FstrimArgs>(r#"{"min": 1}"#).unwrap_err();
            serde_json::from_str::<FstrimArgs>(r#"{"minimum": "1"}"#).unwrap_err();
            let r = GuestFilesystemTrimResult {
                path: "/".into(),
                trimmed: None,
                minimum: None,
                error: Some("trim not supported".into()),
            };
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                json!({"path": "/", "error": "trim not supported"})
            );
        }
    }
}
