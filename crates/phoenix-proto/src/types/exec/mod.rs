//! Running programs in the guest: qemu-ga's `guest-exec` and `guest-exec-status`, with
//! their arguments and replies as QEMU's `qga/qapi-schema.json` declares them, and the
//! extensions of phoenix-rs: optional arguments of those two (`stream`, `stdin`, `pty`,
//! `rows`, `cols`, `timeout`; `wait`) and the commands `guest-exec-read`,
//! `guest-exec-write`, `guest-exec-kill` and `guest-exec-resize`.
//!
//! Both dialects offer these commands under the same names and shapes. A host that
//! sends only qemu-ga's arguments gets qemu-ga's behaviour: the output is captured and
//! delivered with the status that reports the exit, which forgets the pid.

mod capture;

use serde::{Deserialize, Serialize};

pub use capture::{GuestExecCaptureOutput, GuestExecCaptureOutputMode};

use crate::qga::Empty;

/// `guest-exec` arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GuestExecArgs {
    /// The program: a path, or a name looked up in the child's `PATH`.
    pub path: String,
    /// Its arguments (after the program name, which is `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg: Option<Vec<String>>,
    /// Its whole environment, `NAME=VALUE` each; the agent's own when absent. A
    /// default `PATH` is added when the list has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Bytes for its standard input, base64; standard input is /dev/null when absent
    /// (and `stdin` is not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_data: Option<String>,
    /// Which output streams are captured (none when absent; both in streaming mode).
    /// `null` is refused, as qemu-ga refuses it.
    #[serde(
        default,
        deserialize_with = "present_capture",
        skip_serializing_if = "Option::is_none"
    )]
    pub capture_output: Option<GuestExecCaptureOutput>,
    /// Extension: stream the output instead of capturing it: `guest-exec-read` takes
    /// it from an offset while the process runs, nothing is capped and nothing lost
    /// (a process that writes faster than the host reads waits on its pipe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Extension: keep standard input open for `guest-exec-write` (after
    /// `input-data`), until closed with `close`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<bool>,
    /// Extension: run on a new pseudo-terminal, as its session's leader with the
    /// terminal as its controlling one; implies `stream` and `stdin`. Standard error
    /// is the terminal too, read as the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pty: Option<bool>,
    /// Extension: the terminal's rows (`pty`), 24 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// Extension: the terminal's columns (`pty`), 80 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<i64>,
    /// Extension: seconds after which the process group is sent SIGTERM, and SIGKILL a
    /// grace period later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
}

/// Called only when `capture-output` is present: `null` is then no branch of the
/// alternate.
fn present_capture<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<GuestExecCaptureOutput>, D::Error> {
    GuestExecCaptureOutput::deserialize(d).map(Some)
}

/// `guest-exec` return value (QAPI's `GuestExec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestExec {
    /// The child's pid, which the other `guest-exec-*` commands take.
    pub pid: i64,
}

/// `guest-exec-status` arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestExecStatusArgs {
    /// A pid `guest-exec` returned.
    pub pid: i64,
    /// Extension: seconds to wait for the process to exit before answering (0 to 60;
    /// no wait when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<f64>,
}

/// `guest-exec-status` return value (QAPI's `GuestExecStatus`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestExecStatus {
    /// Whether the process has exited (and its output is complete).
    pub exited: bool,
    /// Its exit code, when it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exitcode: Option<i64>,
    /// The signal that killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
    /// Captured standard output (or both, merged), base64; absent when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_data: Option<String>,
    /// Captured standard error, base64; absent when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_data: Option<String>,
    /// Present (and true) when standard output was cut at the capture limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_truncated: Option<bool>,
    /// Present (and true) when standard error was cut at the capture limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_truncated: Option<bool>,
}

/// `guest-exec-read` arguments (extension).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GuestExecReadArgs {
    /// A pid `guest-exec` returned with `stream` (or `pty`).
    pub pid: i64,
    /// Where to read standard output from: the count of its bytes already taken
    /// (0 when absent). Bytes before it are dropped by the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_offset: Option<u64>,
    /// The same for standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_offset: Option<u64>,
    /// Largest count of bytes returned per stream (1 to 16 MiB; 1 MiB when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Seconds to wait for output or the end before answering (0 to 60; no wait when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<f64>,
}

/// `guest-exec-read` return value (extension).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestExecRead {
    /// Standard output from `out-offset` on, base64 (`""` when none yet).
    pub out_data: String,
    /// Whether standard output ends with these bytes: nothing more will come.
    pub out_eof: bool,
    /// Standard error from `err-offset` on, base64.
    pub err_data: String,
    /// Whether standard error ends with these bytes.
    pub err_eof: bool,
    /// Whether the process has exited.
    pub exited: bool,
    /// Its exit code, when it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exitcode: Option<i64>,
    /// The signal that killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
}

/// `guest-exec-write` arguments (extension).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GuestExecWriteArgs {
    /// A pid `guest-exec` returned with `stdin` (or `pty`).
    pub pid: i64,
    /// Bytes for the process's standard input, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_data: Option<String>,
    /// Close standard input once these bytes are written (a terminal gets its
    /// end-of-file character instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<bool>,
    /// Seconds to wait for room when the process is slower than the host (0 to 60;
    /// 10 when absent); the reply says how much was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<f64>,
}

/// `guest-exec-write` return value (extension).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestExecWrite {
    /// Bytes taken, from the start of `input-data`; the host sends the rest again.
    pub count: i64,
}

/// `guest-exec-kill` arguments (extension).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestExecKillArgs {
    /// A pid `guest-exec` returned.
    pub pid: i64,
    /// The signal number (0 to 64); SIGTERM (15) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
    /// Signal the process's whole group (true when absent) or the process alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<bool>,
}

/// `guest-exec-resize` arguments (extension).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestExecResizeArgs {
    /// A pid `guest-exec` returned with `pty`.
    pub pid: i64,
    /// Rows (1 to 65535).
    pub rows: i64,
    /// Columns (1 to 65535).
    pub cols: i64,
}

/// The exec family's commands, in qemu-ga's dialect and offered in Phoenix's too.
pub mod cmd {
    use super::*;

    crate::commands! { Qga;
        /// `guest-exec`: starts a program; its pid.
        GuestExec = "guest-exec" (GuestExecArgs) -> super::GuestExec;
        /// `guest-exec-status`: whether it exited, how, and its captured output.
        GuestExecStatus = "guest-exec-status" (GuestExecStatusArgs) -> super::GuestExecStatus;
        /// `guest-exec-read` (extension): streamed output from offsets.
        GuestExecRead = "guest-exec-read" (GuestExecReadArgs) -> super::GuestExecRead;
        /// `guest-exec-write` (extension): bytes for standard input.
        GuestExecWrite = "guest-exec-write" (GuestExecWriteArgs) -> super::GuestExecWrite;
        /// `guest-exec-kill` (extension): a signal to the process or its group.
        GuestExecKill = "guest-exec-kill" (GuestExecKillArgs) -> Empty;
        /// `guest-exec-resize` (extension): a terminal's window size.
        GuestExecResize = "guest-exec-resize" (GuestExecResizeArgs) -> Empty;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_ga_arguments_decode() {
        let a: GuestExecArgs = serde_json::from_str(
            r#"{"path":"/bin/sh","arg":["-c","echo"],"env":["A=1"],"input-data":"eA==",
                "capture-output":"merged"}"#,
        )
        .unwrap();
        assert_eq!(a.path, "/bin/sh");
        assert_eq!(a.arg.as_deref(), Some(&["-c".into(), "echo".into()][..]));
        assert_eq!(
            a.capture_output.map(GuestExecCaptureOutput::mode),
            Some(GuestExecCaptureOutputMode::Merged)
        );
        assert_eq!((a.stream, a.pty, a.timeout), (None, None, None));
        let e = serde_json::from_str::<GuestExecArgs>(r#"{"path":"x","nope":1}"#).unwrap_err();
        assert!(e.to_string().starts_with("unknown field `nope`"), "{e}");
        let e = serde_json::from_str::<GuestExecStatusArgs>(r#"{"pid":"1"}"#).unwrap_err();
        assert!(e.to_string().starts_with("invalid type"), "{e}");
    }

    #[test]
    fn replies_leave_out_what_is_absent() {
        let s = GuestExecStatus {
            exited: true,
            exitcode: Some(0),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"exited":true,"exitcode":0}"#
        );
        let s = GuestExecStatus {
            exited: true,
            signal: Some(9),
            out_data: Some("eA==".into()),
            out_truncated: Some(true),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"exited":true,"signal":9,"out-data":"eA==","out-truncated":true}"#
        );
        let r = GuestExecRead {
            out_eof: true,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"out-data":"","out-eof":true,"err-data":"","err-eof":false,"exited":false}"#
        );
    }
}
