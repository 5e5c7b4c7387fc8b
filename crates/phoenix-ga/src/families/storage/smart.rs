//! An NVMe disk's SMART / Health Information log (log page 02h), which
//! `guest-get-disks` reports for NVMe disks, as qemu-ga does.
//!
//! The log is read with an admin Get Log Page command through the namespace's node
//! (NVME_IOCTL_ADMIN_CMD of linux/nvme_ioctl.h). It is 512 bytes, little-endian
//! (NVMe base specification, "SMART / Health Information"): byte 0 critical warning,
//! 1-2 composite temperature (kelvin), 3 available spare, 4 its threshold, 5 percentage
//! used; from byte 32, ten 128-bit counters (data units read and written, host read
//! and write commands, controller busy time, power cycles, power-on hours, unsafe
//! shutdowns, media errors, error log entries), each reported as two 64-bit halves.

use std::fs::File;
use std::os::fd::AsRawFd;

use phoenix_proto::types::storage::qga::GuestNvmeSmart;

/// `struct nvme_passthru_cmd` (alias `nvme_admin_cmd`) of linux/nvme_ioctl.h.
#[repr(C)]
#[derive(Debug, Default)]
struct NvmeAdminCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

// NVME_IOCTL_ADMIN_CMD = _IOWR('N', 0x41, struct nvme_admin_cmd).
nix::ioctl_readwrite!(nvme_admin_cmd, b'N', 0x41, NvmeAdminCmd);

/// The size of the log page.
const LOG_SIZE: usize = 512;
/// Get Log Page.
const GET_LOG_PAGE: u8 = 0x02;
/// The SMART / Health Information log's identifier.
const SMART_LOG: u32 = 0x02;
/// Retain Asynchronous Event: reading the log does not clear a pending event.
const RAE: u32 = 1 << 15;
/// The log applies to the controller as a whole (all namespaces).
const NSID_ALL: u32 = 0xffff_ffff;

/// The health log of the NVMe namespace at `node` (`/dev/nvme0n1`); `None` when the
/// device cannot be opened or does not answer.
pub fn read(node: &str) -> Option<GuestNvmeSmart> {
    let dev = File::open(node)
        .inspect_err(|e| tracing::debug!(node, error = %e, "cannot open for the SMART log"))
        .ok()?;
    let mut log = [0u8; LOG_SIZE];
    let dwords = u32::try_from(LOG_SIZE / 4 - 1).ok()?;
    let mut cmd = NvmeAdminCmd {
        opcode: GET_LOG_PAGE,
        nsid: NSID_ALL,
        addr: log.as_mut_ptr() as u64,
        data_len: u32::try_from(LOG_SIZE).ok()?,
        cdw10: SMART_LOG | RAE | (dwords << 16),
        ..Default::default()
    };
    // SAFETY: `dev` is open for the whole call; `cmd` is a live struct of the layout
    // the ioctl reads and writes, and its `addr` points to `log`, a live writable
    // buffer of `data_len` bytes that outlives the call.
    match unsafe { nvme_admin_cmd(dev.as_raw_fd(), &mut cmd) } {
        Ok(0) => Some(decode(&log)),
        Ok(status) => {
            tracing::debug!(node, status, "the SMART log command failed");
            None
        }
        Err(e) => {
            tracing::debug!(node, error = %e, "cannot read the SMART log");
            None
        }
    }
}

/// Decodes a SMART / Health Information log page.
pub fn decode(log: &[u8; LOG_SIZE]) -> GuestNvmeSmart {
    let byte = |i: usize| i64::from(log[i]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&log[i..i + 8]);
        u64::from_le_bytes(b)
    };
    // The 128-bit counter at `i`: (low half, high half).
    let counter = |i: usize| (u64_at(i), u64_at(i + 8));
    let (data_units_read_lo, data_units_read_hi) = counter(32);
    let (data_units_written_lo, data_units_written_hi) = counter(48);
    let (host_read_commands_lo, host_read_commands_hi) = counter(64);
    let (host_write_commands_lo, host_write_commands_hi) = counter(80);
    let (controller_busy_time_lo, controller_busy_time_hi) = counter(96);
    let (power_cycles_lo, power_cycles_hi) = counter(112);
    let (power_on_hours_lo, power_on_hours_hi) = counter(128);
    let (unsafe_shutdowns_lo, unsafe_shutdowns_hi) = counter(144);
    let (media_errors_lo, media_errors_hi) = counter(160);
    let (number_of_error_log_entries_lo, number_of_error_log_entries_hi) = counter(176);
    GuestNvmeSmart {
        critical_warning: byte(0),
        temperature: i64::from(u16::from_le_bytes([log[1], log[2]])),
        available_spare: byte(3),
        available_spare_threshold: byte(4),
        percentage_used: byte(5),
        data_units_read_lo,
        data_units_read_hi,
        data_units_written_lo,
        data_units_written_hi,
        host_read_commands_lo,
        host_read_commands_hi,
        host_write_commands_lo,
        host_write_commands_hi,
        controller_busy_time_lo,
        controller_busy_time_hi,
        power_cycles_lo,
        power_cycles_hi,
        power_on_hours_lo,
        power_on_hours_hi,
        unsafe_shutdowns_lo,
        unsafe_shutdowns_hi,
        media_errors_lo,
        media_errors_hi,
        number_of_error_log_entries_lo,
        number_of_error_log_entries_hi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_has_the_kernels_layout() {
        assert_eq!(std::mem::size_of::<NvmeAdminCmd>(), 72);
        // _IOWR('N', 0x41, 72 bytes), as the kernel headers compute it.
        assert_eq!(
            nix::request_code_readwrite!(b'N', 0x41, std::mem::size_of::<NvmeAdminCmd>()),
            0xC048_4E41
        );
    }

    #[test]
    fn decodes_a_log_page() {
        let mut log = [0u8; LOG_SIZE];
        log[0] = 0x04; // reliability degraded
        log[1..3].copy_from_slice(&310u16.to_le_bytes());
        log[3] = 100;
        log[4] = 10;
        log[5] = 3;
        log[32..40].copy_from_slice(&12_345u64.to_le_bytes());
        log[40..48].copy_from_slice(&1u64.to_le_bytes());
        log[128..136].copy_from_slice(&777u64.to_le_bytes());
        log[176..184].copy_from_slice(&u64::MAX.to_le_bytes());
        log[184..192].copy_from_slice(&2u64.to_le_bytes());
        let s = decode(&log);
        assert_eq!(s.critical_warning, 4);
        assert_eq!(s.temperature, 310);
        assert_eq!((s.available_spare, s.available_spare_threshold), (100, 10));
        assert_eq!(s.percentage_used, 3);
        assert_eq!((s.data_units_read_lo, s.data_units_read_hi), (12_345, 1));
        assert_eq!(s.data_units_written_lo, 0);
        assert_eq!((s.power_on_hours_lo, s.power_on_hours_hi), (777, 0));
        assert_eq!(
            (
                s.number_of_error_log_entries_lo,
                s.number_of_error_log_entries_hi
            ),
            (u64::MAX, 2)
        );
    }

    #[test]
    fn a_node_that_is_not_nvme_gives_nothing() {
        assert_eq!(read("/nonexistent"), None);
        // A character device that rejects the ioctl.
        assert_eq!(read("/dev/null"), None);
    }
}
