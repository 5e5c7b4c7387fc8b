//! Control of the guest: its clock (`guest-get-time`, `guest-set-time`), power
//! (`guest-shutdown`, `guest-suspend-*`), processors (`guest-get-vcpus`,
//! `guest-set-vcpus`), memory blocks (`guest-get-memory-blocks`,
//! `guest-set-memory-blocks`) and `guest-fstrim`. These are qemu-ga's commands, which
//! phoenix-ga also answers in the Phoenix dialect under the same names: the calls are
//! the same in both dialects, and work against qemu-ga itself.
//!
//! The power commands have no success response (QAPI's `success-response: false`):
//! the agent answers only their errors, and the host sees the guest go.
//! [`Client::shutdown`] and [`Client::suspend`] therefore return `Ok` when no error
//! came: in the qemu-ga dialect, whose agents run a connection's requests in order,
//! once a `guest-get-time` sent after the request is answered (the request then ended
//! without an error) or the connection closes (the guest went); in the Phoenix
//! dialect, whose requests run concurrently, when no error came within
//! [`NO_REPLY_GRACE`] or the connection closed.

use std::time::Duration;

use phoenix_proto::qga::Empty;
use phoenix_proto::types::control::cmd::{
    GuestSetMemoryBlocks, GuestSetTime, GuestSetVcpus, GuestShutdown, GuestSuspendDisk,
    GuestSuspendHybrid, GuestSuspendRam,
};
use phoenix_proto::types::control::{
    GuestLogicalProcessorArg, GuestMemoryBlockArg, GuestMemoryBlockResponse,
    GuestSetMemoryBlocksArgs, GuestSetTimeArgs, GuestSetVcpusArgs, GuestShutdownArgs,
};
use phoenix_proto::types::storage::qga::cmd::GuestFstrim;
use phoenix_proto::types::storage::qga::{FstrimArgs, GuestFilesystemTrimResponse};
use phoenix_proto::types::system::qga::cmd::{GuestGetMemoryBlocks, GuestGetTime, GuestGetVcpus};
use phoenix_proto::types::system::qga::{GuestLogicalProcessor, GuestMemoryBlock};
use phoenix_proto::{Command, Dialect};
use serde::Serialize;

use crate::{Client, ClientError};

/// How long a power request waits for an error in the Phoenix dialect.
pub const NO_REPLY_GRACE: Duration = Duration::from_secs(5);

/// What [`Client::shutdown`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerMode {
    /// Power off.
    Powerdown,
    /// Stop without powering off.
    Halt,
    /// Restart.
    Reboot,
}

impl PowerMode {
    /// The schema's word.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerMode::Powerdown => "powerdown",
            PowerMode::Halt => "halt",
            PowerMode::Reboot => "reboot",
        }
    }
}

/// What [`Client::suspend`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendMode {
    /// Suspend to RAM (`guest-suspend-ram`).
    Ram,
    /// Hibernate (`guest-suspend-disk`).
    Disk,
    /// Both (`guest-suspend-hybrid`).
    Hybrid,
}

impl Client {
    /// `guest-get-time`: the guest's clock, in nanoseconds since the epoch.
    pub fn guest_time(&self) -> Result<i64, ClientError> {
        self.invoke_no_args::<GuestGetTime>()
    }

    /// `guest-set-time`: the guest's clock to `time_ns` (nanoseconds since the epoch),
    /// then its RTC from the clock; with `None`, the clock from the RTC.
    pub fn set_time(&self, time_ns: Option<i64>) -> Result<(), ClientError> {
        self.invoke::<GuestSetTime>(&GuestSetTimeArgs { time: time_ns })
            .map(drop)
    }

    /// `guest-shutdown`: asks the guest to power down, halt or reboot (see the module
    /// documentation for when this returns).
    pub fn shutdown(&self, mode: PowerMode) -> Result<(), ClientError> {
        let args = GuestShutdownArgs {
            mode: Some(mode.as_str().to_string()),
        };
        self.no_reply::<GuestShutdown>(&args)
    }

    /// `guest-suspend-ram`, `-disk` or `-hybrid` (see the module documentation for when
    /// this returns). Send `guest-sync` (or `ping`) before anything else once the guest
    /// wakes up.
    pub fn suspend(&self, mode: SuspendMode) -> Result<(), ClientError> {
        match mode {
            SuspendMode::Ram => self.no_reply::<GuestSuspendRam>(&Empty {}),
            SuspendMode::Disk => self.no_reply::<GuestSuspendDisk>(&Empty {}),
            SuspendMode::Hybrid => self.no_reply::<GuestSuspendHybrid>(&Empty {}),
        }
    }

    /// `guest-get-vcpus`: the logical processors.
    pub fn vcpus(&self) -> Result<Vec<GuestLogicalProcessor>, ClientError> {
        self.invoke_no_args::<GuestGetVcpus>()
    }

    /// `guest-set-vcpus`: switches processors in order, stopping at the first that
    /// fails; how many were switched (the failure is the error only when it is the
    /// first).
    pub fn set_vcpus(&self, vcpus: &[GuestLogicalProcessorArg]) -> Result<i64, ClientError> {
        self.invoke::<GuestSetVcpus>(&GuestSetVcpusArgs {
            vcpus: vcpus.to_vec(),
        })
    }

    /// `guest-get-memory-blocks`: the memory blocks.
    pub fn memory_blocks(&self) -> Result<Vec<GuestMemoryBlock>, ClientError> {
        self.invoke_no_args::<GuestGetMemoryBlocks>()
    }

    /// `guest-set-memory-blocks`: switches memory blocks; one result per block.
    pub fn set_memory_blocks(
        &self,
        blocks: &[GuestMemoryBlockArg],
    ) -> Result<Vec<GuestMemoryBlockResponse>, ClientError> {
        self.invoke::<GuestSetMemoryBlocks>(&GuestSetMemoryBlocksArgs {
            mem_blks: blocks.to_vec(),
        })
    }

    /// `guest-fstrim`: discards the unused blocks of every local filesystem, skipping
    /// free extents shorter than `minimum` bytes.
    pub fn fstrim(&self, minimum: Option<i64>) -> Result<GuestFilesystemTrimResponse, ClientError> {
        self.invoke::<GuestFstrim>(&FstrimArgs { minimum })
    }

    /// Sends `C`, which answers only errors, and waits for an error as the module
    /// documentation says.
    fn no_reply<C: Command>(&self, args: &(impl Serialize + ?Sized)) -> Result<(), ClientError> {
        let args = serde_json::value::to_raw_value(args)
            .map_err(|e| ClientError::Protocol(format!("arguments: {e}")))?;
        let request = self.send_request(C::NAME, Some(&args))?;
        let grace = match self.options().timeout {
            Some(t) => t.min(NO_REPLY_GRACE),
            None => NO_REPLY_GRACE,
        };
        let outcome = match self.dialect() {
            Dialect::Qga => match self.send_request(GuestGetTime::NAME, None) {
                Ok(probe) => {
                    // Answered, refused, timed out or closed: the request ended before
                    // it, so an error of the request would have come first.
                    let _ = probe.wait(self.options().timeout);
                    request.wait(Some(Duration::ZERO))
                }
                Err(_) => request.wait(Some(grace)),
            },
            Dialect::Phoenix => request.wait(Some(grace)),
        };
        match outcome {
            Err(ClientError::Agent(e)) => Err(ClientError::Agent(e)),
            Ok(_) | Err(ClientError::Timeout { .. } | ClientError::Closed) => Ok(()),
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
