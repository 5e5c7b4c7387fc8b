//! Envelopes, one per dialect: how a request line becomes a command name, its raw
//! arguments and the id to echo, and how a return value or an [`Error`] becomes a reply
//! line. The dispatcher and the commands know nothing of either shape.
//!
//! Framing and resynchronisation (lines, 0xFF drops a partial line) are the framer's,
//! shared by every dialect (`phoenix_proto::LineFramer`).

use std::borrow::Cow;

use phoenix_proto::Dialect;
use serde_json::value::RawValue;

use crate::error::Error;
use crate::reply::{Sink, Value};

pub mod phoenix;
pub mod qga;

/// A request as the dispatcher sees it.
#[derive(Debug)]
pub struct Request<'a> {
    /// The command name.
    pub name: String,
    /// The raw `arguments`; `None` when absent or `null`.
    pub args: Option<&'a RawValue>,
    /// What the reply echoes.
    pub id: Id<'a>,
}

/// The request's id (Phoenix: its tag), kept as the JSON text the host sent, so it is
/// echoed byte for byte; `None` when the request had none or could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Id<'a>(pub Option<Cow<'a, str>>);

impl Id<'_> {
    /// No id.
    pub const NONE: Id<'static> = Id(None);

    /// Detaches the id from the input buffer.
    pub fn into_owned(self) -> Id<'static> {
        Id(self.0.map(|t| Cow::Owned(t.into_owned())))
    }

    /// The id's JSON text, for logs (`-` when there is none).
    pub fn as_json(&self) -> &str {
        self.0.as_deref().unwrap_or("-")
    }
}

/// A line that is not a valid request; it is answered with an error carrying `id`.
#[derive(Debug)]
pub struct Rejected<'a> {
    /// The request's id where it could be read.
    pub id: Id<'a>,
    /// What is wrong (an [`Error::BadRequest`] as a rule).
    pub error: Error,
}

/// One dialect's request and reply shapes.
pub trait Envelope: Send + Sync + std::fmt::Debug {
    /// The dialect whose commands this envelope carries.
    fn dialect(&self) -> Dialect;

    /// Calls `handle` with each request of a line: the whole line, unless the dialect
    /// allows several requests on one line.
    fn each_request<'a>(&self, line: &'a [u8], handle: &mut dyn FnMut(&'a [u8])) {
        handle(line);
    }

    /// Whether a connection's requests that do not run inline run one after the
    /// other, in the order sent (qemu-ga's hosts expect its serial semantics: a
    /// `guest-file-close` sent right after a `guest-file-write` closes after it). When
    /// false, they run concurrently, except those that declare an order key.
    fn sequential(&self) -> bool {
        false
    }

    /// Parses one request (a line, or a part of one: see [`Envelope::each_request`]).
    fn parse<'a>(&self, line: &'a [u8]) -> Result<Request<'a>, Rejected<'a>>;

    /// Writes the success reply carrying `value`.
    fn reply(&self, id: &Id<'_>, value: &Value, sink: &dyn Sink);

    /// Writes the error reply for `error`; `command` is the command that failed, when
    /// the request got that far.
    fn error(&self, id: &Id<'_>, command: Option<&str>, error: &Error, sink: &dyn Sink);
}

/// The envelope of `dialect`.
pub fn of(dialect: Dialect) -> &'static dyn Envelope {
    match dialect {
        Dialect::Phoenix => &phoenix::Phoenix,
        Dialect::Qga => &qga::Qga,
    }
}
