//! Commands: the adapters between a wire command and the operations it runs.
//!
//! A command is a [`phoenix_proto::Command`] marker (its name, dialect, argument and
//! reply types, shared with the client) on which its family implements [`Command`]:
//! where it runs, whether it may run while the filesystems are frozen, and what it
//! does with its typed arguments. The family lists its commands with [`entry`]; the
//! dispatcher sees only the type-erased [`Entry`] and the [`Job`] its arguments were
//! parsed into, once, on the thread that read the request.

use std::any::TypeId;
use std::time::Instant;

use phoenix_proto::{Dialect, NoArgs};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::agent::Agent;
use crate::error::{ArgError, ArgKind, Error};
pub use crate::reply::Value;

/// What a command returns: the `return` value, or an error.
pub type Outcome = Result<Value, Error>;

/// Where a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// On the reader thread, before the next request is read. For commands that
    /// finish in microseconds and never block.
    Inline,
    /// On the worker pool, concurrently with other requests.
    Pool,
    /// On the worker pool, after the connection's earlier requests with the same
    /// [`Command::order_key`] have finished: a host may send a handle's reads or
    /// writes without waiting for each reply, and they still happen in the order it
    /// sent them. When nothing of that order is pending, [`Command::try_now`] may
    /// answer on the reader thread first, which saves the hand-off to a worker.
    Ordered,
}

/// A wire command the agent answers. Implemented by a family on the command's
/// [`phoenix_proto::Command`] marker.
pub trait Command: phoenix_proto::Command {
    /// Where it runs.
    const RUN: Run;
    /// Whether it may run while the filesystems are frozen (only commands that cannot
    /// touch a disk, or that must be able to end a freeze).
    const WHILE_FROZEN: bool;
    /// Whether a success is answered (QAPI's `success-response`): a shutdown is not,
    /// the host sees it happen. The dispatcher then answers only errors.
    const SUCCESS_RESPONSE: bool = true;
    /// A `guest-sync`: in a sequential dialect the host discards every reply that comes
    /// before this one's, so the connection's replies still pending are dropped rather
    /// than sent after it, where the host would take one for its next command's.
    const RESYNCS: bool = false;

    /// Runs the command.
    fn run(agent: &Agent, args: Self::Args) -> Outcome;

    /// Runs the command, knowing when its request was read (`asked_at`, on the reader
    /// thread): for a command whose meaning depends on what was asked after it, a
    /// freeze that a later thaw cancels while it waited for a worker.
    fn run_asked_at(agent: &Agent, args: Self::Args, asked_at: Instant) -> Outcome {
        let _ = asked_at;
        Self::run(agent, args)
    }

    /// [`Run::Ordered`]: the key whose requests run in order (a handle). `None` runs
    /// this request without waiting for any other (a handle that is not open: it
    /// fails at once, even while an earlier request on that number is stuck).
    fn order_key(_agent: &Agent, _args: &Self::Args) -> Option<u64> {
        None
    }

    /// [`Run::Ordered`]: an attempt to finish on the reader thread without blocking;
    /// `None` when it would have to wait (for a disk, a lock), and the request then
    /// goes to the pool. It must leave no trace when it gives up.
    fn try_now(_agent: &Agent, _args: &Self::Args) -> Option<Outcome> {
        None
    }
}

/// A request whose arguments have been parsed, ready to run.
pub trait Job: Send {
    /// See [`Command::order_key`].
    fn order_key(&self, agent: &Agent) -> Option<u64>;
    /// See [`Command::try_now`].
    fn try_now(&self, agent: &Agent) -> Option<Outcome>;
    /// See [`Command::run`].
    fn run(self: Box<Self>, agent: &Agent) -> Outcome;
}

/// The typed arguments of a command `C`, and when its request was read.
struct Parsed<C: Command>(C::Args, Instant);

impl<C: Command> Job for Parsed<C> {
    fn order_key(&self, agent: &Agent) -> Option<u64> {
        C::order_key(agent, &self.0)
    }

    fn try_now(&self, agent: &Agent) -> Option<Outcome> {
        C::try_now(agent, &self.0)
    }

    fn run(self: Box<Self>, agent: &Agent) -> Outcome {
        C::run_asked_at(agent, self.0, self.1)
    }
}

/// Parses a request's raw `arguments` into the job of one command.
type Parse = fn(Option<&RawValue>) -> Result<Box<dyn Job>, Error>;

/// One line of the command table: a [`Command`] with its type erased.
#[derive(Debug)]
pub struct Entry {
    /// The name the host sends in `execute`.
    pub name: &'static str,
    /// The dialect that offers it.
    pub dialect: Dialect,
    /// Where it runs.
    pub run: Run,
    /// Whether it may run while the filesystems are frozen.
    pub while_frozen: bool,
    /// Whether a success is answered.
    pub success_response: bool,
    /// See [`Command::RESYNCS`].
    pub resyncs: bool,
    parse: Parse,
}

impl Entry {
    /// Parses a request's `arguments` (absent or `null`: `None`) into a job.
    pub fn parse(&self, raw: Option<&RawValue>) -> Result<Box<dyn Job>, Error> {
        (self.parse)(raw)
    }
}

/// The table line of command `C`.
pub const fn entry<C: Command>() -> Entry {
    Entry {
        name: C::NAME,
        dialect: C::DIALECT,
        run: C::RUN,
        while_frozen: C::WHILE_FROZEN,
        success_response: C::SUCCESS_RESPONSE,
        resyncs: C::RESYNCS,
        parse: parse_job::<C>,
    }
}

/// The table line of command `C` offered in `dialect`, which may be another than its
/// own: a qemu-ga command that the Phoenix envelope offers under the same name and with
/// the same arguments and reply (list both lines: `entry::<C>()` and
/// `entry_in::<C>(Dialect::Phoenix)`).
pub const fn entry_in<C: Command>(dialect: Dialect) -> Entry {
    Entry {
        dialect,
        ..entry::<C>()
    }
}

fn parse_job<C: Command>(raw: Option<&RawValue>) -> Result<Box<dyn Job>, Error> {
    Ok(Box::new(Parsed::<C>(parse_args(raw)?, Instant::now())))
}

/// Arguments longer than this are checked to fit in memory before they are parsed.
const LARGE_ARGUMENTS: usize = 1 << 20;

/// Decodes `arguments` into `T`. Absent arguments decode as `{}`, so fields with a
/// documented default get it and required fields are reported missing; unknown fields
/// are ignored. A command without arguments ([`NoArgs`]) takes whatever it is sent.
pub fn parse_args<T: DeserializeOwned + 'static>(raw: Option<&RawValue>) -> Result<T, Error> {
    let text = raw.map_or("{}", RawValue::get);
    if TypeId::of::<T>() != TypeId::of::<NoArgs>() && !text.trim_start().starts_with('{') {
        return Err(Error::invalid("\"arguments\" must be a JSON object"));
    }
    if text.len() > LARGE_ARGUMENTS {
        // Parsing copies the large strings (a file-write chunk) out of the line: a
        // request that does not fit in memory twice gets ENOMEM instead of aborting
        // the agent.
        let mut probe = Vec::<u8>::new();
        probe.try_reserve_exact(text.len()).map_err(|_| {
            Error::errno(
                nix::errno::Errno::ENOMEM,
                format!("arguments of {} bytes do not fit in memory", text.len()),
            )
        })?;
    }
    serde_json::from_str(text).map_err(|e| arg_error::<T>(text, &e))
}

/// The error of arguments that did not decode: serde's text, and what it was about.
/// Decoding again with the path tracked (only on this rare path) names the parameter
/// as QAPI does, `mountpoints[0]`.
fn arg_error<T: DeserializeOwned>(text: &str, e: &serde_json::Error) -> Error {
    let message = strip_position(&e.to_string()).to_string();
    let path = match serde_path_to_error::deserialize::<_, T>(
        &mut serde_json::Deserializer::from_str(text),
    ) {
        Err(e) => e.path().to_string(),
        Ok(_) => ".".to_string(),
    };
    let kind = classify(&message, &path);
    Error::InvalidArguments(ArgError {
        text: message,
        kind,
    })
}

/// Tells what a serde message is about; `path` is where serde stopped (`.` at the top).
fn classify(message: &str, path: &str) -> ArgKind {
    let quoted = |rest: &str| rest.split('`').next().unwrap_or_default().to_string();
    let under = |name: String| match path {
        "." | "" => name,
        p if p.ends_with(&name) => p.to_string(),
        p => format!("{p}.{name}"),
    };
    let at = || match path {
        "." | "" => "arguments".to_string(),
        p => p.to_string(),
    };
    if let Some(rest) = message.strip_prefix("missing field `") {
        ArgKind::Missing(under(quoted(rest)))
    } else if let Some(rest) = message.strip_prefix("unknown field `") {
        ArgKind::Unexpected(under(quoted(rest)))
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        ArgKind::BadValue {
            param: at(),
            value: quoted(rest),
        }
    } else if message.starts_with("invalid type: ") || message.starts_with("invalid value: ") {
        let expected = message.rsplit(", expected ").next().unwrap_or_default();
        ArgKind::WrongType {
            param: at(),
            expected: qapi_type(expected),
        }
    } else {
        ArgKind::Other
    }
}

/// QAPI's name for the type serde expected.
fn qapi_type(expected: &str) -> &'static str {
    let e = expected.trim_start_matches("a ").trim_start_matches("an ");
    if e == "u64" {
        // QAPI's `uint64`, worded apart (see the qga envelope).
        "uint64"
    } else if e.starts_with('i') || e.starts_with('u') || e.contains("integer") {
        "integer"
    } else if e.starts_with('f') || e.contains("number") {
        "number"
    } else if e.contains("bool") {
        "boolean"
    } else if e.contains("string") || e.contains("char") || e.contains("path") {
        "string"
    } else if e.contains("sequence") || e.contains("array") || e.contains("tuple") {
        "array"
    } else {
        "object"
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

/// The return value of command `C`, serialised from the reply type its identity
/// declares.
pub fn reply<C: phoenix_proto::Command>(value: &C::Reply) -> Outcome {
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
        let a: A = parse_args(Some(&r)).unwrap();
        assert_eq!((a.path.as_str(), a.perm), ("/x", 420));
    }

    #[test]
    fn names_the_problem() {
        let e = parse_args::<A>(None).unwrap_err();
        assert_eq!(e.message(), "invalid arguments: missing field `path`");
        let r = raw(r#"{"path":"/x","perm":"420"}"#);
        let e = parse_args::<A>(Some(&r)).unwrap_err();
        assert!(
            e.message().contains("invalid type: string \"420\""),
            "{}",
            e.message()
        );
        let r = raw("[1]");
        let e = parse_args::<A>(Some(&r)).unwrap_err();
        assert!(e.message().ends_with("\"arguments\" must be a JSON object"));
        assert_eq!(e.code(), -1);
    }

    #[test]
    fn tells_what_an_error_is_about() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Q {
            count: i64,
            #[serde(default)]
            list: Vec<String>,
            #[serde(default)]
            whence: Option<W>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(rename_all = "lowercase")]
        enum W {
            Set,
        }
        let kind = |text: &str| match parse_args::<Q>(Some(&raw(text))).unwrap_err() {
            Error::InvalidArguments(a) => a.kind,
            other => panic!("{other:?}"),
        };
        assert_eq!(kind("{}"), ArgKind::Missing("count".into()));
        assert_eq!(
            kind(r#"{"count":1,"x":2}"#),
            ArgKind::Unexpected("x".into())
        );
        let wrong = |param: &str, expected| ArgKind::WrongType {
            param: param.into(),
            expected,
        };
        assert_eq!(kind(r#"{"count":"1"}"#), wrong("count", "integer"));
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct U {
            size: u64,
        }
        match parse_args::<U>(Some(&raw(r#"{"size":-1}"#))).unwrap_err() {
            Error::InvalidArguments(a) => assert_eq!(a.kind, wrong("size", "uint64")),
            other => panic!("{other:?}"),
        }
        assert_eq!(kind(r#"{"count":1.5}"#), wrong("count", "integer"));
        assert_eq!(
            kind(r#"{"count":1,"list":[1]}"#),
            wrong("list[0]", "string")
        );
        assert_eq!(kind(r#"{"count":1,"list":"x"}"#), wrong("list", "array"));
        assert_eq!(
            kind(r#"{"count":1,"whence":"nope"}"#),
            ArgKind::BadValue {
                param: "whence".into(),
                value: "nope".into()
            }
        );
        // The text is serde's, as the Phoenix dialect has always said it.
        let e = parse_args::<Q>(Some(&raw("{}"))).unwrap_err();
        assert_eq!(e.message(), "invalid arguments: missing field `count`");
    }

    #[test]
    fn no_args_takes_anything() {
        for text in ["[1]", "7", "{\"x\":1}"] {
            parse_args::<NoArgs>(Some(&raw(text))).unwrap();
        }
        parse_args::<NoArgs>(None).unwrap();
    }
}
