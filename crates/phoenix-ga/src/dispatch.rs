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
use crate::commands::{Args, Command, Outcome, Run};
use crate::error::Error;

/// Where the replies of one host connection go. Each call writes one whole reply;
/// replies are never interleaved. A sink whose host is gone drops replies.
pub trait Sink: Send + Sync {
    /// Writes one reply line.
    fn send(&self, reply: &[u8]);

    /// Writes one reply line given in parts, without gathering them first: a large
    /// return value (a 4 MiB `file-read` chunk) is written from where it lies. Sinks
    /// that can write the parts one after the other under their lock override this.
    fn send_parts(&self, parts: &[&[u8]]) {
        self.send(&parts.concat());
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
        Run::Worker => {
            let tag = req.tag.into_owned();
            let args = match req.arguments.map(copy_arguments).transpose() {
                Ok(args) => args,
                Err(e) => return respond(&**sink, &tag, Err(e)),
            };
            let (agent2, sink) = (Arc::clone(agent), Arc::clone(sink));
            agent.pool.submit(line.len(), move || {
                // Checked again: a freeze may have started while this job was queued.
                let out =
                    frozen_gate(&agent2, cmd).and_then(|()| execute(&agent2, cmd, args.as_deref()));
                respond(&*sink, &tag, out);
            });
        }
    }
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

fn execute(agent: &Agent, cmd: &'static Command, raw: Option<&RawValue>) -> Outcome {
    let args = Args::new(cmd.name, raw);
    catch_unwind(AssertUnwindSafe(|| (cmd.handler)(agent, &args))).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(command = cmd.name, panic = %what, "command panicked");
        Err(Error::Internal(format!("{} failed: {what}", cmd.name)))
    })
}

/// Return values longer than this are written in place rather than copied.
const LARGE_REPLY: usize = 64 << 10;

fn respond(sink: &dyn Sink, tag: &Tag<'_>, out: Outcome) {
    let mut buf = Vec::new();
    match out {
        // Large values are not copied into a reply buffer: `{"return":` VALUE
        // `,"tag":TAG}\n`, exactly what `encode_return` builds, in three parts.
        Ok(value) if value.get().len() > LARGE_REPLY => {
            let mut tail = Vec::with_capacity(tag.as_json().len() + 10);
            tail.extend_from_slice(b",\"tag\":");
            tail.extend_from_slice(tag.as_json().as_bytes());
            tail.extend_from_slice(b"}\n");
            return sink.send_parts(&[b"{\"return\":", value.get().as_bytes(), &tail]);
        }
        Ok(value) => encode_return(value.get(), tag, &mut buf),
        Err(e) => {
            tracing::debug!(tag = %tag.as_json(), code = e.code(), error = %e.message(), "error reply");
            encode_error(&e.to_wire(), tag, &mut buf);
        }
    }
    sink.send(&buf);
}
