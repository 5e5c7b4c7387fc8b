//! From a request line to its reply: the envelope parses it, the registry finds the
//! command, the frozen gate is applied, the arguments are parsed (once), the command
//! runs where its policy says (inline, on the pool, or on the pool in a connection's
//! order) and the envelope writes the reply.
//!
//! Every failure on the way becomes an error reply; nothing a host sends can stop the
//! agent. A panicking command is caught and answered with an internal error.
//!
//! In a sequential dialect (qemu-ga's) a `guest-sync` is answered at once, even while
//! earlier requests of its connection still run (a host recovering from a stuck
//! freeze gets its answer), and the replies of those earlier requests are dropped: the
//! host discards whatever comes before the sync's reply, and one sent after it would
//! be taken for the reply of the host's next command.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use phoenix_proto::Frame;

use crate::agent::Agent;
use crate::command::{Entry, Job, Outcome, Run};
use crate::envelope::{Envelope, Id};
use crate::error::Error;
use crate::memory;
use crate::reply::Sink;
use crate::sync::lock;

/// Where one connection's requests come from and its replies go.
#[derive(Clone)]
pub struct Conn {
    /// The connection's dialect.
    pub envelope: &'static dyn Envelope,
    /// Its replies.
    pub sink: Arc<dyn Sink>,
    /// The syncs answered so far ([`Command::RESYNCS`](crate::command::Command::RESYNCS)):
    /// a reply is sent only if none came since its request was read. Held while a
    /// queued reply is written, so a sync's reply cannot pass one already checked.
    syncs: Arc<Mutex<u64>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection of `envelope` whose replies go to `sink`.
    pub fn new(envelope: &'static dyn Envelope, sink: Arc<dyn Sink>) -> Self {
        Self {
            envelope,
            sink,
            syncs: Arc::new(Mutex::new(0)),
        }
    }

    /// Identifies the connection while any of its requests is pending (each holds the
    /// sink, so its address is not reused meanwhile).
    fn key(&self) -> usize {
        Arc::as_ptr(&self.sink).cast::<()>() as usize
    }

    /// Sends the reply of a request read when [`Conn::syncs`] was `seen`, unless a sync
    /// was answered since.
    fn respond_unless_resynced(&self, seen: u64, id: &Id<'_>, entry: &Entry, out: Outcome) {
        let syncs = lock(&self.syncs);
        if *syncs != seen {
            tracing::debug!(id = %id.as_json(), command = entry.name,
                "reply dropped: the host synced since its request");
            return;
        }
        self.respond(id, Some(entry), out);
    }

    /// Answers a sync: the replies still pending will be dropped.
    fn resync(&self, id: &Id<'_>, entry: &Entry, out: Outcome) {
        let mut syncs = lock(&self.syncs);
        *syncs += 1;
        self.respond(id, Some(entry), out);
    }

    fn respond(&self, id: &Id<'_>, entry: Option<&Entry>, out: Outcome) {
        let command = entry.map(|e| e.name);
        match out {
            // QAPI's `success-response: false`: the host sees the shutdown happen.
            Ok(_) if entry.is_some_and(|e| !e.success_response) => {}
            Ok(value) => self.envelope.reply(id, &value, &*self.sink),
            Err(e) => {
                tracing::debug!(id = %id.as_json(), code = e.code(), error = %e.message(), "error reply");
                self.envelope.error(id, command, &e, &*self.sink);
            }
        }
    }
}

/// The lane key of a sequential connection's requests (no handle has this number:
/// handles count up from 1).
const WHOLE_CONNECTION: u64 = 0;

/// Handles one frame from a host connection.
pub fn handle(agent: &Arc<Agent>, conn: &Conn, frame: Frame<'_>) {
    match frame {
        Frame::TooLong { limit } => {
            tracing::warn!(limit, "request line too long, discarded");
            let err = Error::BadRequest(format!("request line longer than {limit} bytes"));
            conn.respond(&Id::NONE, None, Err(err));
        }
        Frame::NoMemory { needed } => {
            tracing::warn!(needed, "request line does not fit in memory, discarded");
            let err = Error::errno(
                nix::errno::Errno::ENOMEM,
                format!("request line of {needed} bytes or more does not fit in memory"),
            );
            conn.respond(&Id::NONE, None, Err(err));
        }
        Frame::Line(line) => conn
            .envelope
            .each_request(line, &mut |request| handle_request(agent, conn, request)),
    }
}

fn handle_request(agent: &Arc<Agent>, conn: &Conn, line: &[u8]) {
    let req = match conn.envelope.parse(line) {
        Ok(req) => req,
        Err(bad) => {
            tracing::warn!(reason = %bad.error.message(), "bad request");
            return conn.respond(&bad.id, None, Err(bad.error));
        }
    };
    tracing::debug!(command = %req.name, id = %req.id.as_json(), "request");
    let entry = match agent
        .registry
        .find(conn.envelope.dialect(), &req.name)
        .and_then(|entry| frozen_gate(agent, entry).map(|()| entry))
    {
        Ok(entry) => entry,
        Err(e) => return conn.respond(&req.id, None, Err(e)),
    };
    let job = match entry.parse(req.args) {
        Ok(job) => job,
        Err(e) => return conn.respond(&req.id, Some(entry), Err(e)),
    };
    if entry.run == Run::Inline {
        let out = run(agent, entry, job);
        if entry.resyncs && conn.envelope.sequential() {
            conn.resync(&req.id, entry, out);
        } else {
            conn.respond(&req.id, Some(entry), out);
        }
        if agent.shutdown_requested() {
            agent.exit(0);
        }
        return;
    }
    let lane = match entry.run {
        _ if conn.envelope.sequential() => Some((conn.key(), WHOLE_CONNECTION)),
        Run::Ordered => job.order_key(agent).map(|key| (conn.key(), key)),
        _ => None,
    };
    if let Some(lane) = lane.filter(|_| entry.run == Run::Ordered) {
        // Only this thread adds to the lane: idle now means nothing of it is pending,
        // so answering here keeps the order.
        if agent.pool.lane_idle(lane) {
            if let Some(out) = try_now(entry, &*job, agent) {
                return conn.respond(&req.id, Some(entry), out);
            }
        }
    }
    let (agent2, conn2, id) = (Arc::clone(agent), conn.clone(), req.id.into_owned());
    let request_bytes = line.len();
    let seen = *lock(&conn.syncs);
    let work = move || {
        // Checked again: a freeze may have started while this job was queued.
        let out = frozen_gate(&agent2, entry).and_then(|()| run(&agent2, entry, job));
        let large_reply = out.as_ref().is_ok_and(|v| v.text_len() > memory::LARGE);
        conn2.respond_unless_resynced(seen, &id, entry, out);
        if large_reply || request_bytes > memory::LARGE {
            memory::note_large();
        }
    };
    match lane {
        Some(lane) => agent.pool.submit_in(lane, request_bytes, work),
        None => agent.pool.submit(request_bytes, work),
    }
}

/// While the gate is closed, only commands that cannot touch a disk run.
fn frozen_gate(agent: &Agent, entry: &Entry) -> Result<(), Error> {
    if agent.gate.is_closed() && !entry.while_frozen {
        return Err(Error::Frozen(entry.name.to_string()));
    }
    Ok(())
}

/// Runs a job, answering a panic with an internal error.
fn run(agent: &Agent, entry: &Entry, job: Box<dyn Job>) -> Outcome {
    catch_unwind(AssertUnwindSafe(|| job.run(agent))).unwrap_or_else(|p| panicked(entry, &*p))
}

/// Runs a command's non-blocking attempt. A panic is answered as an internal error,
/// like a panicking command: the attempt may have done part of its work (moved a
/// file offset), so it must not be run again on the pool.
fn try_now(entry: &Entry, job: &dyn Job, agent: &Agent) -> Option<Outcome> {
    catch_unwind(AssertUnwindSafe(|| job.try_now(agent)))
        .unwrap_or_else(|p| Some(panicked(entry, &*p)))
}

fn panicked(entry: &Entry, panic: &(dyn std::any::Any + Send)) -> Outcome {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(command = entry.name, panic = %what, "command panicked");
    Err(Error::Internal(format!("{} failed: {what}", entry.name)))
}
