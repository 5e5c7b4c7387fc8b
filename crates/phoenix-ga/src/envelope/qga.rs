//! The qemu-ga envelope: `{"execute", "arguments", "id"}` in; `{"return": VALUE,
//! "id": ID}` or `{"error": {"class", "desc"}, "id": ID}` out, the id echoed verbatim
//! and left out when the request had none. Several requests may share a line
//! (`{...}{...}`, as qemu-ga's streaming parser allows). The shapes live in
//! `phoenix_proto::qga`, which the client shares.
//!
//! Errors are worded as qemu-ga words them where a host may show or match the text:
//! `CommandNotFound` for unknown and disabled commands, QAPI's sentences for argument
//! errors ("Parameter 'path' is missing"). Failures of the guest itself keep the
//! agent's own message (`open /etc/x: No such file or directory`), which names the
//! call and the path.

use std::borrow::Cow;

use phoenix_proto::qga::{self, class};
use phoenix_proto::Dialect;

use super::{Envelope, Id, Rejected, Request};
use crate::error::{ArgKind, Error};
use crate::memory::LARGE;
use crate::reply::{Part, Sink, Value};

/// See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Qga;

impl Envelope for Qga {
    fn dialect(&self) -> Dialect {
        Dialect::Qga
    }

    fn each_request<'a>(&self, line: &'a [u8], handle: &mut dyn FnMut(&'a [u8])) {
        for request in qga::split(line) {
            handle(request);
        }
    }

    fn sequential(&self) -> bool {
        true
    }

    fn parse<'a>(&self, line: &'a [u8]) -> Result<Request<'a>, Rejected<'a>> {
        match qga::parse_request(line) {
            Ok(req) => Ok(Request {
                name: req.execute,
                args: req.arguments,
                id: Id(req.id.map(|id| Cow::Borrowed(id.get()))),
            }),
            Err(bad) => Err(Rejected {
                id: Id(bad.id.map(|id| Cow::Borrowed(id.get()))),
                error: Error::BadRequest(bad.desc),
            }),
        }
    }

    fn reply(&self, id: &Id<'_>, value: &Value, sink: &dyn Sink) {
        let id = id.0.as_deref();
        let sentinel: &[u8] = match value {
            Value::Delimited(_) => &[qga::SENTINEL],
            _ => b"",
        };
        if let Value::Json(raw) | Value::Delimited(raw) = value {
            if raw.get().len() <= LARGE {
                let mut buf = sentinel.to_vec();
                qga::encode_return(raw.get(), id, &mut buf);
                return sink.send(&buf);
            }
        }
        let mut tail = Vec::with_capacity(id.map_or(0, str::len) + 10);
        qga::encode_id_and_end(id, &mut tail);
        let [a, b, c] = value.parts();
        sink.send_parts(&[
            Part::Text(sentinel),
            Part::Text(b"{\"return\":"),
            a,
            b,
            c,
            Part::Text(&tail),
        ]);
    }

    fn error(&self, id: &Id<'_>, _command: Option<&str>, error: &Error, sink: &dyn Sink) {
        let (class, desc) = word(error);
        let mut buf = Vec::new();
        qga::encode_error(class, &desc, id.0.as_deref(), &mut buf);
        sink.send(&buf);
    }
}

/// The class and description qemu-ga would give `error`.
pub fn word(error: &Error) -> (&'static str, String) {
    match error {
        Error::UnknownCommand(name) => (
            class::COMMAND_NOT_FOUND,
            format!("The command {name} has not been found"),
        ),
        Error::Disabled(name) => (
            class::COMMAND_NOT_FOUND,
            format!("Command {name} has been disabled: the command is not allowed"),
        ),
        // qemu-ga 10 gives the frozen refusal the operator's wording too.
        Error::Frozen(name) => (
            class::COMMAND_NOT_FOUND,
            format!("Command {name} has been disabled: the command is not allowed"),
        ),
        Error::BadRequest(desc) => (class::GENERIC, desc.clone()),
        Error::InvalidArguments(arg) => {
            let desc = match &arg.kind {
                ArgKind::Missing(p) => format!("Parameter '{p}' is missing"),
                ArgKind::Unexpected(p) => format!("Parameter '{p}' is unexpected"),
                // QAPI's uint64 visitor words its refusal apart.
                ArgKind::WrongType {
                    param,
                    expected: "uint64",
                } => format!("Parameter '{param}' expects uint64"),
                ArgKind::WrongType { param, expected } => {
                    format!("Invalid parameter type for '{param}', expected: {expected}")
                }
                ArgKind::BadValue { param, value } => {
                    format!("Parameter '{param}' does not accept value '{value}'")
                }
                ArgKind::Other => arg.text.clone(),
            };
            (class::GENERIC, desc)
        }
        other => (class::GENERIC, other.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ArgError;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Capture(Mutex<Vec<u8>>);

    impl Sink for Capture {
        fn send(&self, reply: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(reply);
        }
    }

    fn take(c: &Capture) -> Vec<u8> {
        std::mem::take(&mut *c.0.lock().unwrap())
    }

    fn json(v: &str) -> Box<serde_json::value::RawValue> {
        serde_json::value::RawValue::from_string(v.into()).unwrap()
    }

    #[test]
    fn ids_are_echoed_verbatim_or_left_out() {
        let out = Capture::default();
        let req = Qga
            .parse(br#"{"execute":"guest-ping","id":{"x":[1, 2]}}"#)
            .unwrap();
        Qga.reply(&req.id, &Value::Json(json("{}")), &out);
        assert_eq!(take(&out), b"{\"return\":{},\"id\":{\"x\":[1, 2]}}\n");
        Qga.reply(&Id::NONE, &Value::Json(json("7")), &out);
        assert_eq!(take(&out), b"{\"return\":7}\n");
        Qga.reply(&Id::NONE, &Value::Delimited(json("123")), &out);
        assert_eq!(take(&out), b"\xff{\"return\":123}\n");
    }

    #[test]
    fn errors_are_worded_as_qemu_ga_words_them() {
        let out = Capture::default();
        let id = Id(Some("1".into()));
        Qga.error(&id, None, &Error::UnknownCommand("guest-nope".into()), &out);
        assert_eq!(
            String::from_utf8(take(&out)).unwrap(),
            "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command guest-nope has not been found\"},\"id\":1}\n"
        );
        let arg = |kind| {
            Error::InvalidArguments(ArgError {
                text: "serde".into(),
                kind,
            })
        };
        let cases = [
            (
                arg(ArgKind::Missing("path".into())),
                "Parameter 'path' is missing",
            ),
            (
                arg(ArgKind::Unexpected("foo".into())),
                "Parameter 'foo' is unexpected",
            ),
            (
                arg(ArgKind::WrongType {
                    param: "handle".into(),
                    expected: "integer",
                }),
                "Invalid parameter type for 'handle', expected: integer",
            ),
            (
                arg(ArgKind::BadValue {
                    param: "whence".into(),
                    value: "nope".into(),
                }),
                "Parameter 'whence' does not accept value 'nope'",
            ),
            (
                arg(ArgKind::WrongType {
                    param: "mem-blks[0].phys-index".into(),
                    expected: "uint64",
                }),
                "Parameter 'mem-blks[0].phys-index' expects uint64",
            ),
            (
                Error::Disabled("guest-file-open".into()),
                "Command guest-file-open has been disabled: the command is not allowed",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(word(&e).1, want);
        }
        let bad = Qga.parse(br#"{"execute":"x","id":2,"foo":1}"#).unwrap_err();
        Qga.error(&bad.id, None, &bad.error, &out);
        assert_eq!(
            String::from_utf8(take(&out)).unwrap(),
            "{\"error\":{\"class\":\"GenericError\",\"desc\":\"QMP input member 'foo' is unexpected\"},\"id\":2}\n"
        );
    }
}
