//! Running programs: `guest-exec` and `guest-exec-status` (qemu-ga's, in both
//! dialects of phoenix-rs) and the extensions of phoenix-rs: `guest-exec-read`,
//! `guest-exec-write`, `guest-exec-kill`, `guest-exec-resize`, and the `wait` of a
//! status. [`AgentInfo::streams_exec`] says whether the agent has the extensions;
//! without them (qemu-ga) a host polls `guest-exec-status` for the exit and the
//! captured output.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use phoenix_proto::qga::Empty;
use phoenix_proto::types::exec::cmd::{
    GuestExec, GuestExecKill, GuestExecRead, GuestExecResize, GuestExecStatus, GuestExecWrite,
};
use phoenix_proto::types::exec::{
    GuestExecArgs, GuestExecKillArgs, GuestExecRead as Chunk, GuestExecReadArgs,
    GuestExecResizeArgs, GuestExecStatus as Status, GuestExecStatusArgs, GuestExecWriteArgs,
};

use super::AgentInfo;
use crate::{Client, ClientError};

impl AgentInfo {
    /// Whether the agent has the exec extensions of phoenix-rs (streamed output and
    /// input, a terminal, kill, a status that waits); qemu-ga has none of them.
    pub fn streams_exec(&self) -> bool {
        self.supports("guest-exec-read")
    }
}

/// Decodes a reply's base64 field.
pub fn decode(field: &str) -> Result<Vec<u8>, ClientError> {
    STANDARD
        .decode(field)
        .map_err(|e| ClientError::Protocol(format!("exec output is not base64: {e}")))
}

impl Client {
    /// `guest-exec`: starts a program; its pid.
    pub fn exec(&self, args: &GuestExecArgs) -> Result<i64, ClientError> {
        Ok(self.invoke::<GuestExec>(args)?.pid)
    }

    /// `guest-exec-status`: whether `pid` exited, how, and its captured output (base64,
    /// see [`decode`]). `wait` (phoenix-rs only, up to 60 s): wait that long for the
    /// exit before answering. The reply that reports the exit forgets the pid.
    pub fn exec_status(&self, pid: i64, wait: Option<f64>) -> Result<Status, ClientError> {
        self.invoke::<GuestExecStatus>(&GuestExecStatusArgs { pid, wait })
    }

    /// `guest-exec-read` (phoenix-rs): streamed output from the offsets given (the
    /// bytes before them are dropped by the agent).
    pub fn exec_read(&self, args: &GuestExecReadArgs) -> Result<Chunk, ClientError> {
        self.invoke::<GuestExecRead>(args)
    }

    /// `guest-exec-write` (phoenix-rs): bytes for the standard input of `pid`; how many
    /// were taken (the caller sends the rest again). `close` closes the input once all
    /// of `data` is written.
    pub fn exec_write(&self, pid: i64, data: &[u8], close: bool) -> Result<usize, ClientError> {
        let args = GuestExecWriteArgs {
            pid,
            input_data: (!data.is_empty()).then(|| STANDARD.encode(data)),
            close: close.then_some(true),
            wait: None,
        };
        let n = self.invoke::<GuestExecWrite>(&args)?.count;
        usize::try_from(n).map_err(|_| ClientError::Protocol(format!("write count {n}")))
    }

    /// Writes all of `data` with [`Client::exec_write`], then closes the input if
    /// `close`.
    pub fn exec_write_all(
        &self,
        pid: i64,
        mut data: &[u8],
        close: bool,
    ) -> Result<(), ClientError> {
        loop {
            let n = self.exec_write(pid, data, close)?;
            data = &data[n.min(data.len())..];
            if data.is_empty() {
                return Ok(());
            }
        }
    }

    /// `guest-exec-kill` (phoenix-rs): `signal` (SIGTERM when `None`) to the process
    /// group of `pid` (or to the process alone when `group` is false).
    pub fn exec_kill(&self, pid: i64, signal: Option<i64>, group: bool) -> Result<(), ClientError> {
        let args = GuestExecKillArgs {
            pid,
            signal,
            group: (!group).then_some(false),
        };
        self.invoke::<GuestExecKill>(&args).map(|Empty {}| ())
    }

    /// `guest-exec-resize` (phoenix-rs): the window size of the terminal of `pid`.
    pub fn exec_resize(&self, pid: i64, rows: u16, cols: u16) -> Result<(), ClientError> {
        let args = GuestExecResizeArgs {
            pid,
            rows: rows.into(),
            cols: cols.into(),
        };
        self.invoke::<GuestExecResize>(&args).map(|Empty {}| ())
    }
}
