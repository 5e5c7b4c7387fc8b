//! The exec commands, the same in both dialects: `guest-exec`, `guest-exec-status`
//! (qemu-ga's, with their extensions), `guest-exec-read`, `guest-exec-write`,
//! `guest-exec-kill` and `guest-exec-resize`.
//!
//! Only `guest-exec` is refused while the filesystems are frozen (a new program may
//! write anywhere); the others touch pipes and signals, never a disk, so a host can
//! still read, stop or kill what it started. Kill and resize answer on the reader
//! thread (a signal and an ioctl never block), so they reach a process even while the
//! same qemu-ga connection waits in a status.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use phoenix_proto::qga::Empty;
use phoenix_proto::types::exec::cmd::{
    GuestExec, GuestExecKill, GuestExecRead, GuestExecResize, GuestExecStatus, GuestExecWrite,
};
use phoenix_proto::types::exec::{self as wire, GuestExecCaptureOutputMode as CaptureMode};

use super::ops::{Captured, Start, Status};
use super::{Ended, Exec};
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run, Value};
use crate::error::Error;
use crate::memory::Buffer;

/// Longest `wait` of a status, read or write.
pub const MAX_WAIT: f64 = 60.0;

/// `wait` of a write when absent.
const WRITE_WAIT: Duration = Duration::from_secs(10);

/// Bytes per stream a read returns when `count` is absent, and at most.
const READ_COUNT: u64 = 1 << 20;
const MAX_READ_COUNT: u64 = 16 << 20;

/// A terminal's size when `rows` or `cols` is absent.
const DEFAULT_WINDOW: (u16, u16) = (24, 80);

/// `wait` in seconds, 0 to [`MAX_WAIT`].
fn wait_arg(wait: Option<f64>, default: Duration) -> Result<Duration, Error> {
    match wait {
        None => Ok(default),
        Some(w) if (0.0..=MAX_WAIT).contains(&w) => Ok(Duration::from_secs_f64(w)),
        Some(w) => Err(Error::invalid(format!(
            "'wait' must be 0 to {MAX_WAIT} seconds, not {w}"
        ))),
    }
}

/// A terminal dimension, 1 to 65535.
fn dimension(name: &str, v: i64) -> Result<u16, Error> {
    u16::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| Error::invalid(format!("'{name}' must be 1 to 65535, not {v}")))
}

/// Base64 as qemu-ga takes it (GLib's decoder): the standard alphabet, with or
/// without padding, line breaks skipped; any other character is refused with
/// qemu-ga's words.
fn decode_input(text: &str) -> Result<Vec<u8>, Error> {
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n');
    if !text.bytes().all(valid) {
        return Err(Error::invalid("Base64 data contains invalid characters"));
    }
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let joined: String;
    let text = if text.contains('\n') {
        joined = text.chars().filter(|&c| c != '\n').collect();
        &joined
    } else {
        text
    };
    lenient
        .decode(text)
        .map_err(|e| Error::invalid(format!("Base64 data is invalid: {e}")))
}

/// The arguments of `guest-exec`, checked, as an operation's [`Start`].
fn start_of(a: &wire::GuestExecArgs) -> Result<Start<'_>, Error> {
    let pty = a.pty.unwrap_or(false);
    let stream = a.stream.unwrap_or(false) || pty;
    if pty && a.capture_output.is_some() {
        return Err(Error::invalid(
            "'capture-output' does not go with 'pty': the terminal carries both streams",
        ));
    }
    if !pty && (a.rows.is_some() || a.cols.is_some()) {
        return Err(Error::invalid("'rows' and 'cols' need 'pty'"));
    }
    let mode = match a.capture_output {
        Some(c) => c.mode(),
        None if stream => CaptureMode::Separated,
        None => CaptureMode::None,
    };
    let window = match pty {
        true => Some((
            a.rows.map_or(Ok(DEFAULT_WINDOW.0), |r| dimension("rows", r))?,
            a.cols.map_or(Ok(DEFAULT_WINDOW.1), |c| dimension("cols", c))?,
        )),
        false => None,
    };
    let timeout = match a.timeout {
        None => None,
        Some(t) => Some(
            Duration::try_from_secs_f64(t)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    Error::invalid(format!("'timeout' must be a positive number of seconds, not {t}"))
                })?,
        ),
    };
    Ok(Start {
        path: &a.path,
        args: a.arg.as_deref().unwrap_or_default(),
        env: a.env.as_deref(),
        input: a.input_data.as_deref().map(decode_input).transpose()?.unwrap_or_default(),
        out: matches!(mode, CaptureMode::Stdout | CaptureMode::Separated),
        err: matches!(mode, CaptureMode::Stderr | CaptureMode::Separated),
        merged: mode == CaptureMode::Merged,
        stream,
        stdin: a.stdin.unwrap_or(false),
        pty: window,
        timeout,
    })
}

/// `guest-exec`: starts the program; `{"pid": N}`.
impl Command for GuestExec {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::GuestExecArgs) -> Outcome {
        let pid = agent.family::<Exec>().start(start_of(&a)?)?;
        reply::<Self>(&wire::GuestExec { pid: pid.into() })
    }
}

/// `exitcode` and `signal` of an end.
fn end_fields(ended: Option<Ended>) -> (Option<i64>, Option<i64>) {
    match ended {
        Some(Ended::Code(c)) => (Some(c.into()), None),
        Some(Ended::Signal(s)) => (None, Some(s.into())),
        None => (None, None),
    }
}

/// The reply of a status. The captured standard output (up to 16 MiB) is encoded
/// while it is written rather than as a whole string first.
fn status_value(s: Status) -> Outcome {
    let (exitcode, signal) = end_fields(s.ended);
    let small = |c: &Option<Captured>| c.as_ref().map(|c| STANDARD.encode(&c.data));
    let truncated = |c: &Option<Captured>| c.as_ref().and_then(|c| c.truncated.then_some(true));
    let mut value = wire::GuestExecStatus {
        exited: s.exited,
        exitcode,
        signal,
        out_data: None,
        err_data: small(&s.err),
        out_truncated: truncated(&s.out),
        err_truncated: truncated(&s.err),
    };
    let Some(out) = s.out else {
        return reply::<GuestExecStatus>(&value);
    };
    // `{...,"out-data":"` BASE64 `"}`: the other fields first.
    value.out_data = None;
    let mut head = serde_json::to_string(&value).map_err(|e| Error::Internal(e.to_string()))?;
    head.pop();
    head.push_str(",\"out-data\":\"");
    Ok(Value::Encoded {
        head: head.into(),
        data: Buffer::from(out.data),
        tail: "\"}".into(),
    })
}

/// `guest-exec-status`: whether it exited, how, and its captured output; with `wait`,
/// after waiting for the exit.
impl Command for GuestExecStatus {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, a: wire::GuestExecStatusArgs) -> Outcome {
        let wait = wait_arg(a.wait, Duration::ZERO)?;
        status_value(agent.family::<Exec>().status(a.pid, wait)?)
    }
}

/// `guest-exec-read`: streamed output from the offsets; with `wait`, after waiting for
/// some.
impl Command for GuestExecRead {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, a: wire::GuestExecReadArgs) -> Outcome {
        let wait = wait_arg(a.wait, Duration::ZERO)?;
        let count = a.count.unwrap_or(READ_COUNT);
        if !(1..=MAX_READ_COUNT).contains(&count) {
            return Err(Error::invalid(format!(
                "'count' must be 1 to {MAX_READ_COUNT}, not {count}"
            )));
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let offsets = (a.out_offset.unwrap_or(0), a.err_offset.unwrap_or(0));
        let c = agent.family::<Exec>().read(a.pid, offsets, count, wait)?;
        let (exitcode, signal) = end_fields(c.ended);
        reply::<Self>(&wire::GuestExecRead {
            out_data: STANDARD.encode(&c.out),
            out_eof: c.out_eof,
            err_data: STANDARD.encode(&c.err),
            err_eof: c.err_eof,
            exited: c.ended.is_some(),
            exitcode,
            signal,
        })
    }
}

/// `guest-exec-write`: bytes for standard input; how many were taken.
impl Command for GuestExecWrite {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, a: wire::GuestExecWriteArgs) -> Outcome {
        let wait = wait_arg(a.wait, WRITE_WAIT)?;
        let data = a.input_data.as_deref().map(decode_input).transpose()?.unwrap_or_default();
        let close = a.close.unwrap_or(false);
        let n = agent.family::<Exec>().write(a.pid, &data, close, wait)?;
        reply::<Self>(&wire::GuestExecWrite {
            count: i64::try_from(n).map_err(|e| Error::Internal(e.to_string()))?,
        })
    }
}

/// `guest-exec-kill`: a signal to the process group (or the process alone).
impl Command for GuestExecKill {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, a: wire::GuestExecKillArgs) -> Outcome {
        let signal = a.signal.unwrap_or(15);
        let signal = i32::try_from(signal)
            .ok()
            .filter(|s| (0..=64).contains(s))
            .ok_or_else(|| Error::invalid(format!("invalid signal {signal}")))?;
        agent
            .family::<Exec>()
            .kill(a.pid, signal, a.group.unwrap_or(true))?;
        reply::<Self>(&Empty {})
    }
}

/// `guest-exec-resize`: a terminal's window size.
impl Command for GuestExecResize {
    const RUN: Run = Run::Inline;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, a: wire::GuestExecResizeArgs) -> Outcome {
        let rows = dimension("rows", a.rows)?;
        let cols = dimension("cols", a.cols)?;
        agent.family::<Exec>().resize(a.pid, rows, cols)?;
        reply::<Self>(&Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_data_is_decoded_as_qemu_ga_decodes_it() {
        assert_eq!(decode_input("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_input("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_input("aGVs\nbG8=").unwrap(), b"hello");
        assert_eq!(decode_input("").unwrap(), b"");
        let e = decode_input("!!!").unwrap_err();
        assert_eq!(
            e.message(),
            "invalid arguments: Base64 data contains invalid characters"
        );
        decode_input("a===").unwrap_err();
    }

    #[test]
    fn arguments_are_checked() {
        let args = |json: &str| serde_json::from_str::<wire::GuestExecArgs>(json).unwrap();
        type Seen = (bool, bool, bool, bool, Option<(u16, u16)>, Option<Duration>);
        let seen = |json: &str| -> Seen {
            let a = args(json);
            let s = start_of(&a).unwrap();
            (s.out, s.err, s.merged, s.stream, s.pty, s.timeout)
        };
        assert_eq!(seen(r#"{"path":"x"}"#), (false, false, false, false, None, None));
        assert_eq!(
            seen(r#"{"path":"x","capture-output":true}"#),
            (true, true, false, false, None, None)
        );
        assert_eq!(
            seen(r#"{"path":"x","capture-output":"merged"}"#),
            (false, false, true, false, None, None)
        );
        assert_eq!(
            seen(r#"{"path":"x","stream":true}"#),
            (true, true, false, true, None, None)
        );
        assert_eq!(
            seen(r#"{"path":"x","pty":true,"rows":50,"timeout":1.5}"#),
            (true, true, false, true, Some((50, 80)), Some(Duration::from_millis(1500)))
        );
        for bad in [
            r#"{"path":"x","pty":true,"capture-output":true}"#,
            r#"{"path":"x","rows":5}"#,
            r#"{"path":"x","pty":true,"cols":0}"#,
            r#"{"path":"x","pty":true,"cols":65536}"#,
            r#"{"path":"x","timeout":0}"#,
            r#"{"path":"x","timeout":-1}"#,
            r#"{"path":"x","timeout":1e300}"#,
        ] {
            assert!(start_of(&args(bad)).is_err(), "{bad}");
        }
        assert_eq!(wait_arg(None, WRITE_WAIT).unwrap(), WRITE_WAIT);
        assert_eq!(wait_arg(Some(0.25), WRITE_WAIT).unwrap(), Duration::from_millis(250));
        wait_arg(Some(61.0), WRITE_WAIT).unwrap_err();
        wait_arg(Some(-0.5), WRITE_WAIT).unwrap_err();
        wait_arg(Some(f64::NAN), WRITE_WAIT).unwrap_err();
    }

    #[test]
    fn a_status_reply_is_qemu_ga_s() {
        let json = |s: Status| {
            let v = status_value(s).unwrap();
            serde_json::from_str::<serde_json::Value>(&v.to_json()).unwrap()
        };
        let running = Status {
            exited: false,
            ended: None,
            out: None,
            err: None,
        };
        assert_eq!(json(running), serde_json::json!({"exited": false}));
        let done = Status {
            exited: true,
            ended: Some(Ended::Signal(9)),
            out: Some(Captured {
                data: b"hi\n".to_vec(),
                truncated: true,
            }),
            err: Some(Captured {
                data: b"e".to_vec(),
                truncated: false,
            }),
        };
        assert_eq!(
            json(done),
            serde_json::json!({"exited": true, "signal": 9, "out-data": "aGkK",
                               "err-data": "ZQ==", "out-truncated": true})
        );
    }
}
