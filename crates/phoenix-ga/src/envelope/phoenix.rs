//! The Phoenix envelope: `{"execute", "arguments", "tag"}` in; `{"return": VALUE,
//! "tag": TAG}` or `{"error": {"bufb64": BASE64(message), "code": errno or -1}, "tag":
//! TAG}` out, the tag echoed byte for byte (`""` when the request had none). The
//! shapes themselves live in `phoenix_proto`, which the client shares.

use std::borrow::Cow;

use phoenix_proto::{
    encode_error, encode_return, parse_request, Dialect, Tag, WireError, RESYNC_BYTE,
};

use super::{Envelope, Id, Rejected, Request};
use crate::error::Error;
use crate::memory::LARGE;
use crate::reply::{Part, Sink, Value};

/// See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Phoenix;

fn tag<'a>(id: &'a Id<'_>) -> Tag<'a> {
    match &id.0 {
        Some(text) => Tag::from_json(Cow::Borrowed(text)),
        None => Tag::none(),
    }
}

fn id(tag: Tag<'_>) -> Id<'_> {
    match tag == Tag::none() {
        true => Id::NONE,
        false => Id(Some(tag.into_json())),
    }
}

impl Envelope for Phoenix {
    fn dialect(&self) -> Dialect {
        Dialect::Phoenix
    }

    fn parse<'a>(&self, line: &'a [u8]) -> Result<Request<'a>, Rejected<'a>> {
        match parse_request(line) {
            Ok(req) => Ok(Request {
                name: req.execute,
                args: req.arguments,
                id: id(req.tag),
            }),
            Err(bad) => Err(Rejected {
                id: id(bad.tag),
                error: Error::BadRequest(bad.reason),
            }),
        }
    }

    fn reply(&self, id: &Id<'_>, value: &Value, sink: &dyn Sink) {
        let tag = tag(id);
        let sentinel: &[u8] = match value {
            Value::Delimited(_) => &[RESYNC_BYTE],
            _ => b"",
        };
        if let Value::Json(raw) | Value::Delimited(raw) = value {
            if raw.get().len() <= LARGE {
                let mut buf = sentinel.to_vec();
                encode_return(raw.get(), &tag, &mut buf);
                return sink.send(&buf);
            }
        }
        // `{"return":` VALUE `,"tag":TAG}\n`, exactly what `encode_return` builds, with
        // the value written from where it lies (a transfer chunk encoded on the way).
        let mut tail = Vec::with_capacity(tag.as_json().len() + 10);
        tail.extend_from_slice(b",\"tag\":");
        tail.extend_from_slice(tag.as_json().as_bytes());
        tail.extend_from_slice(b"}\n");
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

    fn error(&self, id: &Id<'_>, command: Option<&str>, error: &Error, sink: &dyn Sink) {
        let message = match (error, command) {
            (Error::InvalidArguments(_), Some(name)) => format!("{name}: {}", error.message()),
            _ => error.message(),
        };
        let mut buf = Vec::new();
        encode_error(&WireError::new(message, error.code()), &tag(id), &mut buf);
        sink.send(&buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Buffer;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Capture(Mutex<Vec<u8>>);

    impl Sink for Capture {
        fn send(&self, reply: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(reply);
        }
    }

    fn text(c: &Capture) -> String {
        String::from_utf8(std::mem::take(&mut *c.0.lock().unwrap())).unwrap()
    }

    #[test]
    fn tags_are_echoed_and_errors_name_the_command() {
        let req = Phoenix
            .parse(br#"{"execute":"file-open","arguments":{"path":"/x"},"tag":"a\"b"}"#)
            .unwrap();
        assert_eq!(req.name, "file-open");
        assert_eq!(req.args.unwrap().get(), r#"{"path":"/x"}"#);
        let out = Capture::default();
        let value = Value::Json(serde_json::value::to_raw_value(&7).unwrap());
        Phoenix.reply(&req.id, &value, &out);
        assert_eq!(text(&out), "{\"return\":7,\"tag\":\"a\\\"b\"}\n");
        let e = Error::invalid("missing field `path`");
        Phoenix.error(&req.id, Some("file-open"), &e, &out);
        let reply = phoenix_proto::parse_reply(text(&out).trim_end().as_bytes()).unwrap();
        let err = reply.result.unwrap_err();
        assert_eq!(
            (err.message.as_str(), err.code),
            ("file-open: invalid arguments: missing field `path`", -1)
        );
        // No tag: "" is echoed.
        Phoenix.reply(&Id::NONE, &value, &out);
        assert_eq!(text(&out), "{\"return\":7,\"tag\":\"\"}\n");
    }

    #[test]
    fn bad_lines_keep_the_tag_they_have() {
        let bad = Phoenix.parse(br#"{"tag":"t"}"#).unwrap_err();
        assert_eq!(bad.id.0.as_deref(), Some("\"t\""));
        assert_eq!(bad.error.message(), "invalid request: missing \"execute\"");
    }

    #[test]
    fn encoded_values_are_written_in_parts() {
        let out = Capture::default();
        let value = Value::Encoded {
            head: "{\"bufb64\":\"".into(),
            data: Buffer::from(vec![b'x'; 100_000]),
            tail: "\",\"eof\":false}".into(),
        };
        Phoenix.reply(&Id(Some("\"t\"".into())), &value, &out);
        let line = text(&out);
        let reply = phoenix_proto::parse_reply(line.trim_end().as_bytes()).unwrap();
        let body: phoenix_proto::types::files::FileReadResult =
            serde_json::from_str(reply.result.unwrap().get()).unwrap();
        assert_eq!(body.bufb64.len(), 133_336);
        assert_eq!(reply.tag.as_deref(), Some("t"));
    }
}
