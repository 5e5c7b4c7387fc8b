//! The command table: every command the agent answers, one module per family.
//!
//! A command is a name, a handler, and two facts the dispatcher needs: whether it runs
//! inline on the reader thread (only instant, memory-only commands do) and whether it
//! may run while the filesystems are frozen (only commands that cannot touch a disk).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::agent::Agent;
use crate::buffer::Buffer;
use crate::error::Error;

pub mod core;
pub mod files;
pub mod freeze;
pub mod net;
pub mod sysinfo;

/// What a handler returns: the `return` value, or an error.
pub type Outcome = Result<Value, Error>;

/// A command's return value.
#[derive(Debug)]
pub enum Value {
    /// JSON text.
    Json(Box<RawValue>),
    /// JSON text around bytes that go out base64-encoded: `head`, the base64 of
    /// `data`, `tail`. The transport encodes a transfer chunk while writing it, so
    /// its encoded form never exists whole in memory.
    Encoded {
        /// The text before the base64 (ends inside a JSON string).
        head: &'static str,
        /// The bytes to encode.
        data: Buffer,
        /// The text after the base64 (closes the string and the value).
        tail: &'static str,
    },
}

impl Value {
    /// Bytes of the JSON text.
    pub fn text_len(&self) -> usize {
        match self {
            Value::Json(raw) => raw.get().len(),
            Value::Encoded { head, data, tail } => {
                head.len() + data.len().div_ceil(3) * 4 + tail.len()
            }
        }
    }

    /// The whole JSON text (for tests; replies are written in parts).
    #[cfg(test)]
    pub fn to_json(&self) -> String {
        use base64::Engine as _;
        match self {
            Value::Json(raw) => raw.get().to_string(),
            Value::Encoded { head, data, tail } => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&data[..]);
                format!("{head}{b64}{tail}")
            }
        }
    }
}

impl From<Box<RawValue>> for Value {
    fn from(raw: Box<RawValue>) -> Self {
        Value::Json(raw)
    }
}

/// A command implementation.
pub type Handler = fn(&Agent, &Args<'_>) -> Outcome;

/// A command's attempt to finish on the reader thread without blocking: `None` when
/// it would have to wait (for a disk, a lock), and the request then goes to the pool.
pub type NoWait = fn(&Agent, &Args<'_>) -> Option<Outcome>;

/// Where a command runs.
#[derive(Debug, Clone, Copy)]
pub enum Run {
    /// On the reader thread, before the next request is read. For commands that
    /// finish in microseconds and never block.
    Inline,
    /// On the worker pool, concurrently with other requests.
    Worker,
    /// On the worker pool, after the connection's earlier `Ordered` requests on the
    /// same `handle_id` have finished: a host may send a handle's reads or writes
    /// without waiting for each reply, and they still happen in the order it sent
    /// them. When nothing of the lane is pending, the [`NoWait`] attempt, if any, runs
    /// first on the reader thread, which saves the hand-off to a worker.
    Ordered(Option<NoWait>),
}

/// One entry of the command table.
#[derive(Debug)]
pub struct Command {
    /// The name the host sends in `execute`.
    pub name: &'static str,
    /// Where it runs.
    pub run: Run,
    /// Whether it may run while filesystems are frozen.
    pub while_frozen: bool,
    /// The implementation.
    pub handler: Handler,
}

/// Every command family's table, in the order `get-commands` lists them.
pub fn all() -> impl Iterator<Item = &'static Command> {
    [
        core::COMMANDS,
        files::COMMANDS,
        sysinfo::COMMANDS,
        net::COMMANDS,
        freeze::COMMANDS,
    ]
    .into_iter()
    .flatten()
}

/// The raw `arguments` of a request, decoded on demand into a command's own struct.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    command: &'static str,
    raw: Option<&'a RawValue>,
}

impl<'a> Args<'a> {
    /// Arguments of `command`; `None` when the request had none (or `null`).
    pub fn new(command: &'static str, raw: Option<&'a RawValue>) -> Self {
        Self { command, raw }
    }

    /// Decodes the arguments. Absent arguments decode as `{}`, so fields with a
    /// documented default get it and required fields are reported missing. Unknown
    /// fields are ignored. `T` may borrow from the request (a large `file-write` chunk).
    pub fn parse<T: Deserialize<'a>>(&self) -> Result<T, Error> {
        let text = self.raw.map_or("{}", RawValue::get);
        if !text.trim_start().starts_with('{') {
            return Err(self.invalid("\"arguments\" must be a JSON object"));
        }
        serde_json::from_str(text).map_err(|e| self.invalid(strip_position(&e.to_string())))
    }

    /// An invalid-arguments error for this command.
    pub fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::InvalidArguments {
            command: self.command,
            reason: reason.into(),
        }
    }
}

/// serde_json ends messages with " at line 1 column 57"; on a one-line request that
/// says nothing to the host.
fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// Serialises a return value.
pub fn reply<T: Serialize + ?Sized>(value: &T) -> Outcome {
    serde_json::value::to_raw_value(value)
        .map(Value::Json)
        .map_err(|e| Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct A {
        path: String,
        #[serde(default = "default_perm")]
        perm: u32,
    }

    fn default_perm() -> u32 {
        420
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn decodes_with_defaults_and_ignores_unknown_fields() {
        let r = raw(r#"{"path":"/x","extra":[1]}"#);
        let a: A = Args::new("t", Some(&r)).parse().unwrap();
        assert_eq!((a.path.as_str(), a.perm), ("/x", 420));
    }

    #[test]
    fn names_the_problem() {
        let e = Args::new("file-open", None).parse::<A>().unwrap_err();
        assert_eq!(
            e.message(),
            "file-open: invalid arguments: missing field `path`"
        );
        let r = raw(r#"{"path":"/x","perm":"420"}"#);
        let e = Args::new("t", Some(&r)).parse::<A>().unwrap_err();
        assert!(
            e.message().contains("invalid type: string \"420\""),
            "{}",
            e.message()
        );
        let r = raw("[1]");
        let e = Args::new("t", Some(&r)).parse::<A>().unwrap_err();
        assert!(e.message().ends_with("\"arguments\" must be a JSON object"));
        assert_eq!(e.code(), -1);
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = all().map(|c| c.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(n, names.len());
    }
}
