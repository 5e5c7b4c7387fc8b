//! From a request line to a reply: parse the envelope, find the command, apply the
//! frozen gate, run it (inline or on the pool) and send the reply, tag echoed.
//!
//! Every failure on the way becomes an error reply; nothing a host sends can stop the
//! agent. A panicking command is caught and answered with an internal error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use phoenix_proto::{encode_error, encode_return, parse_request, Frame, Tag};
use serde_json::value::RawValue;

use crate::agent::Agent;
use crate::commands::{Args, Command, NoWait, Outcome, Run, Value};
use crate::error::Error;
use crate::pool::Lane;

/// Where the replies of one host connection go. Each call writes one whole reply;
/// replies are never interleaved. A sink whose host is gone drops replies.
pub trait Sink: Send + Sync {
    /// Writes one reply line.
    fn send(&self, reply: &[u8]);

    /// Writes one reply line given in parts, without gathering them first: a large
    /// return value is written from where it lies, and a transfer chunk is encoded
    /// piece by piece on its way out (see [`write_parts`]). Sinks that can write the
    /// pieces one after the other under their lock override this.
    fn send_parts(&self, parts: &[Part<'_>]) {
        let mut reply = Vec::new();
        write_parts(parts, |piece| {
            reply.extend_from_slice(piece);
            true
        });
        self.send(&reply);
    }
}

/// A part of a reply line.
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// Text written as it is.
    Text(&'a [u8]),
    /// Bytes written as standard padded base64.
    Base64(&'a [u8]),
}

/// Bytes of base64 input encoded at a time: a multiple of 3, so pieces encode
/// independently, and small enough that a piece stays in the CPU cache from its
/// encoding to its write.
const PIECE: usize = 3 << 14;

/// Replies up to this long are gathered and written with one call.
const GATHER: usize = 64 << 10;

/// Gives the bytes of `parts` to `out` in order: a short reply in one piece, a long
/// one in pieces of at most [`GATHER`] bytes (large text parts whole). Stops when
/// `out` returns false (the host is gone).
pub fn write_parts(parts: &[Part<'_>], mut out: impl FnMut(&[u8]) -> bool) {
    let encoded_len = |n: usize| n.div_ceil(3) * 4;
    let total: usize = parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.len(),
            Part::Base64(b) => encoded_len(b.len()),
        })
        .sum();
    let mut piece = Vec::with_capacity(total.min(GATHER));
    for part in parts {
        match *part {
            Part::Text(t) if piece.len() + t.len() <= GATHER => piece.extend_from_slice(t),
            Part::Text(t) => {
                if !piece.is_empty() && !out(&piece) {
                    return;
                }
                piece.clear();
                if !out(t) {
                    return;
                }
            }
            Part::Base64(bytes) => {
                for input in bytes.chunks(PIECE) {
                    let n = encoded_len(input.len());
                    if piece.len() + n > GATHER {
                        if !out(&piece) {
                            return;
                        }
                        piece.clear();
                    }
                    let at = piece.len();
                    piece.resize(at + n, 0);
                    let written = base64_simd::STANDARD
                        .encode(input, base64_simd::Out::from_slice(&mut piece[at..]))
                        .len();
                    debug_assert_eq!(written, n);
                }
            }
        }
    }
    if !piece.is_empty() {
        out(&piece);
    }
}

/// Handles one frame from a host connection.
pub fn handle(agent: &Arc<Agent>, frame: Frame<'_>, sink: &Arc<dyn Sink>) {
    match frame {
        Frame::TooLong { limit } => {
            tracing::warn!(limit, "request line too long, discarded");
            let err = Error::BadRequest(format!("request line longer than {limit} bytes"));
            respond(&**sink, &Tag::none(), Err(err));
        }
        Frame::NoMemory { needed } => {
            tracing::warn!(needed, "request line does not fit in memory, discarded");
            let err = Error::errno(
                nix::errno::Errno::ENOMEM,
                format!("request line of {needed} bytes or more does not fit in memory"),
            );
            respond(&**sink, &Tag::none(), Err(err));
        }
        Frame::Line(line) => handle_line(agent, line, sink),
    }
}

fn handle_line(agent: &Arc<Agent>, line: &[u8], sink: &Arc<dyn Sink>) {
    let req = match parse_request(line) {
        Ok(req) => req,
        Err(bad) => {
            tracing::warn!(reason = %bad.reason, "bad request");
            return respond(&**sink, &bad.tag, Err(Error::BadRequest(bad.reason)));
        }
    };
    tracing::debug!(command = %req.execute, tag = %req.tag.as_json(), "request");
    let cmd = match agent.command(&req.execute) {
        Ok(cmd) => cmd,
        Err(e) => return respond(&**sink, &req.tag, Err(e)),
    };
    if let Err(e) = frozen_gate(agent, cmd) {
        return respond(&**sink, &req.tag, Err(e));
    }
    match cmd.run {
        Run::Inline => {
            let out = execute(agent, cmd, req.arguments);
            respond(&**sink, &req.tag, out);
            if agent.shutdown_requested() {
                agent.exit(0);
            }
        }
        Run::Worker | Run::Ordered(_) => {
            let lane = match cmd.run {
                Run::Ordered(_) => lane(agent, sink, req.arguments),
                _ => None,
            };
            if let (Run::Ordered(Some(nowait)), Some(lane)) = (cmd.run, lane) {
                // Only this thread adds to the lane: idle now means nothing of it is
                // pending, so running here keeps the order.
                if agent.pool.lane_idle(lane) {
                    if let Some(out) = try_nowait(agent, cmd, nowait, req.arguments) {
                        return respond(&**sink, &req.tag, out);
                    }
                }
            }
            let tag = req.tag.into_owned();
            let args = match req.arguments.map(copy_arguments).transpose() {
                Ok(args) => args,
                Err(e) => return respond(&**sink, &tag, Err(e)),
            };
            let (agent2, sink) = (Arc::clone(agent), Arc::clone(sink));
            let request_bytes = line.len();
            let job = move || {
                // Checked again: a freeze may have started while this job was queued.
                let out =
                    frozen_gate(&agent2, cmd).and_then(|()| execute(&agent2, cmd, args.as_deref()));
                let large_reply = out.as_ref().is_ok_and(|v| v.text_len() > LARGE_REPLY);
                drop(args);
                respond(&*sink, &tag, out);
                if large_reply || request_bytes > LARGE_REPLY {
                    agent2.pool.note_large();
                }
            };
            match lane {
                Some(lane) => agent.pool.submit_in(lane, request_bytes, job),
                None => agent.pool.submit(request_bytes, job),
            }
        }
    }
}

/// The lane of an ordered request: its connection (the sink's address, unique while
/// the sink lives, which is as long as any of its requests is queued or running: each
/// holds the sink) and its handle. A request on a handle that is not open needs no
/// order: it runs at once and fails, even while an earlier request on that number is
/// stuck (a read of a FIFO that was closed meanwhile). So do arguments without a valid
/// `handle_id`.
fn lane(agent: &Agent, sink: &Arc<dyn Sink>, args: Option<&RawValue>) -> Option<Lane> {
    #[derive(serde::Deserialize)]
    struct Key {
        handle_id: u64,
    }
    let handle = serde_json::from_str::<Key>(args?.get()).ok()?.handle_id;
    agent
        .files
        .is_open(handle)
        .then(|| (Arc::as_ptr(sink).cast::<()>() as usize, handle))
}

/// The worker needs its own copy of the arguments (the line buffer is reused). Large
/// arguments are copied fallibly, so a request that does not fit in memory twice gets
/// an ENOMEM reply instead of aborting the agent.
fn copy_arguments(raw: &RawValue) -> Result<Box<RawValue>, Error> {
    const SMALL: usize = 1 << 20;
    let text = raw.get();
    if text.len() <= SMALL {
        return Ok(raw.to_owned());
    }
    let mut owned = String::new();
    owned.try_reserve_exact(text.len()).map_err(|_| {
        Error::errno(
            nix::errno::Errno::ENOMEM,
            format!("arguments of {} bytes do not fit in memory", text.len()),
        )
    })?;
    owned.push_str(text);
    RawValue::from_string(owned).map_err(|e| Error::Internal(e.to_string()))
}

/// While frozen, only commands that cannot touch a disk run.
fn frozen_gate(agent: &Agent, cmd: &Command) -> Result<(), Error> {
    if agent.is_frozen() && !cmd.while_frozen {
        return Err(Error::Frozen(cmd.name.to_string()));
    }
    Ok(())
}

/// Runs a command's non-blocking attempt. A panic is answered as an internal error,
/// like a panicking command: the attempt may have done part of its work (moved a
/// file offset), so it must not be run again on the pool.
fn try_nowait(
    agent: &Agent,
    cmd: &'static Command,
    nowait: NoWait,
    raw: Option<&RawValue>,
) -> Option<Outcome> {
    let args = Args::new(cmd.name, raw);
    catch_unwind(AssertUnwindSafe(|| nowait(agent, &args))).unwrap_or_else(|panic| {
        let what = panic_message(&*panic);
        tracing::error!(command = cmd.name, panic = %what, "command panicked");
        Some(Err(Error::Internal(format!("{} failed: {what}", cmd.name))))
    })
}

/// The text a panic was raised with.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn execute(agent: &Agent, cmd: &'static Command, raw: Option<&RawValue>) -> Outcome {
    let args = Args::new(cmd.name, raw);
    catch_unwind(AssertUnwindSafe(|| (cmd.handler)(agent, &args))).unwrap_or_else(|panic| {
        let what = panic_message(&*panic);
        tracing::error!(command = cmd.name, panic = %what, "command panicked");
        Err(Error::Internal(format!("{} failed: {what}", cmd.name)))
    })
}

/// Return values longer than this are written in place rather than copied.
const LARGE_REPLY: usize = 64 << 10;

fn respond(sink: &dyn Sink, tag: &Tag<'_>, out: Outcome) {
    let mut buf = Vec::new();
    let value = match out {
        Ok(value) => value,
        Err(e) => {
            tracing::debug!(tag = %tag.as_json(), code = e.code(), error = %e.message(), "error reply");
            encode_error(&e.to_wire(), tag, &mut buf);
            return sink.send(&buf);
        }
    };
    if let Value::Json(raw) = &value {
        if raw.get().len() <= LARGE_REPLY {
            encode_return(raw.get(), tag, &mut buf);
            return sink.send(&buf);
        }
    }
    // `{"return":` VALUE `,"tag":TAG}\n`, exactly what `encode_return` builds, with
    // the value written from where it lies.
    let mut tail = Vec::with_capacity(tag.as_json().len() + 10);
    tail.extend_from_slice(b",\"tag\":");
    tail.extend_from_slice(tag.as_json().as_bytes());
    tail.extend_from_slice(b"}\n");
    let head = Part::Text(b"{\"return\":");
    match &value {
        Value::Json(raw) => {
            sink.send_parts(&[head, Part::Text(raw.get().as_bytes()), Part::Text(&tail)])
        }
        Value::Encoded {
            head: vhead,
            data,
            tail: vtail,
        } => sink.send_parts(&[
            head,
            Part::Text(vhead.as_bytes()),
            Part::Base64(data),
            Part::Text(vtail.as_bytes()),
            Part::Text(&tail),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    fn joined(parts: &[Part<'_>]) -> (Vec<u8>, Vec<usize>) {
        let (mut all, mut sizes) = (Vec::new(), Vec::new());
        write_parts(parts, |piece| {
            all.extend_from_slice(piece);
            sizes.push(piece.len());
            true
        });
        (all, sizes)
    }

    #[test]
    fn parts_are_written_whole_and_in_order() {
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let big_text = vec![b'x'; GATHER + 1];
        for len in [0, 1, 2, 3, PIECE - 1, PIECE, PIECE + 1, 200_000, data.len()] {
            let parts = [
                Part::Text(b"{\"return\":{\"bufb64\":\""),
                Part::Base64(&data[..len]),
                Part::Text(b"\"},\"tag\":1}\n"),
                Part::Text(&big_text),
            ];
            let (all, sizes) = joined(&parts);
            let want = format!(
                "{{\"return\":{{\"bufb64\":\"{}\"}},\"tag\":1}}\n{}",
                STANDARD.encode(&data[..len]),
                "x".repeat(GATHER + 1)
            );
            assert!(all == want.as_bytes(), "length {len}");
            assert!(sizes.iter().all(|&s| s <= GATHER || s == big_text.len()));
        }
        // A short reply is one write.
        let (_, sizes) = joined(&[Part::Text(b"{\"return\":"), Part::Base64(&data[..4096])]);
        assert_eq!(sizes.len(), 1);
    }

    #[test]
    fn writing_stops_when_the_host_is_gone() {
        let data = vec![0u8; 10 * PIECE];
        let mut calls = 0;
        write_parts(&[Part::Base64(&data), Part::Text(b"tail")], |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, 1);
    }
}
