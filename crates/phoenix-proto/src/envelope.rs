//! Request and reply envelopes.
//!
//! Request: `{"execute": NAME, "arguments": {...}, "tag": STRING}` (arguments and tag
//! optional, unknown keys ignored). Success: `{"return": VALUE, "tag": STRING}`.
//! Error: `{"error": {"bufb64": ..., "code": N}, "tag": STRING}`. Replies end with LF.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{ErrorBody, WireError};

/// A request tag, kept as the JSON string literal the host sent (quotes included), so
/// it is echoed byte for byte and is already correctly escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag<'a>(Cow<'a, str>);

impl Tag<'static> {
    /// The tag of a request that had none, or could not be parsed: `""`.
    pub const fn none() -> Self {
        Tag(Cow::Borrowed("\"\""))
    }
}

impl<'a> Tag<'a> {
    /// A tag from its JSON text: a JSON string literal, quotes included, as
    /// [`Tag::as_json`] gives it.
    pub fn from_json(text: Cow<'a, str>) -> Self {
        Tag(text)
    }

    /// The JSON text of the tag, quotes included, detached from the tag.
    pub fn into_json(self) -> Cow<'a, str> {
        self.0
    }

    /// The JSON text of the tag, quotes included.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The decoded tag string.
    pub fn value(&self) -> String {
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// Detaches the tag from the input buffer.
    pub fn into_owned(self) -> Tag<'static> {
        Tag(Cow::Owned(self.0.into_owned()))
    }
}

/// A parsed request. `arguments` stays raw JSON: each command decodes it into its
/// own typed struct.
#[derive(Debug)]
pub struct Request<'a> {
    /// The command name.
    pub execute: String,
    /// The `arguments` member, absent or `null` giving `None`.
    pub arguments: Option<&'a RawValue>,
    /// The tag to echo.
    pub tag: Tag<'a>,
}

/// A line that is not a valid request; it is answered with an error carrying `tag`.
#[derive(Debug)]
pub struct BadRequest<'a> {
    /// The request's tag where it could be read, else `""`.
    pub tag: Tag<'a>,
    /// What is wrong, for the error message.
    pub reason: String,
}

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow)]
    execute: Option<&'a RawValue>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
    #[serde(borrow)]
    tag: Option<&'a RawValue>,
}

fn bad(reason: impl Into<String>) -> BadRequest<'static> {
    BadRequest {
        tag: Tag::none(),
        reason: reason.into(),
    }
}

/// Parses one request line (without its line ending).
pub fn parse_request(line: &[u8]) -> Result<Request<'_>, BadRequest<'_>> {
    let first = line.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // serde would happily read a struct from an array; reject non-objects first.
        return Err(match serde_json::from_slice::<IgnoredAny>(line) {
            Ok(_) => bad("request is not a JSON object"),
            Err(e) => bad(format!("malformed JSON: {e}")),
        });
    }
    let raw: RawRequest = serde_json::from_slice(line).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => bad(format!("invalid request: {e}")),
        _ => bad(format!("malformed JSON: {e}")),
    })?;
    let tag = match raw.tag {
        None => Tag::none(),
        Some(t) if t.get() == "null" => Tag::none(),
        Some(t) if t.get().starts_with('"') => Tag(Cow::Borrowed(t.get())),
        Some(_) => return Err(bad("\"tag\" must be a string")),
    };
    let execute = match raw.execute {
        None => {
            return Err(BadRequest {
                tag,
                reason: "missing \"execute\"".into(),
            })
        }
        Some(e) => match serde_json::from_str::<String>(e.get()) {
            Ok(name) => name,
            Err(_) => {
                return Err(BadRequest {
                    tag,
                    reason: "\"execute\" must be a string".into(),
                })
            }
        },
    };
    let arguments = raw.arguments.filter(|a| a.get() != "null");
    Ok(Request {
        execute,
        arguments,
        tag,
    })
}

/// Appends a success reply, `{"return":VALUE,"tag":TAG}\n`, to `out`.
/// `value` must be valid JSON text.
pub fn encode_return(value: &str, tag: &Tag<'_>, out: &mut Vec<u8>) {
    out.reserve(value.len() + tag.as_json().len() + 20);
    out.extend_from_slice(b"{\"return\":");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b",\"tag\":");
    out.extend_from_slice(tag.as_json().as_bytes());
    out.extend_from_slice(b"}\n");
}

/// Appends an error reply, `{"error":{"bufb64":...,"code":N},"tag":TAG}\n`, to `out`.
pub fn encode_error(err: &WireError, tag: &Tag<'_>, out: &mut Vec<u8>) {
    let body = serde_json::to_string(&err.to_body()).expect("error body serialises");
    out.extend_from_slice(b"{\"error\":");
    out.extend_from_slice(body.as_bytes());
    out.extend_from_slice(b",\"tag\":");
    out.extend_from_slice(tag.as_json().as_bytes());
    out.extend_from_slice(b"}\n");
}

/// A decoded reply, as the host side sees it.
#[derive(Debug)]
pub struct Reply {
    /// The echoed tag (`tag`, or `id` for QMP-style agents); `None` when absent.
    pub tag: Option<String>,
    /// The return value, or the decoded error.
    pub result: Result<Box<RawValue>, WireError>,
}

#[derive(Deserialize)]
struct RawReply {
    #[serde(rename = "return")]
    ret: Option<Box<RawValue>>,
    error: Option<Box<RawValue>>,
    #[serde(alias = "id")]
    tag: Option<serde_json::Value>,
}

/// A QMP error body (`{"class", "desc"}`), as QEMU's guest agent sends.
#[derive(Deserialize)]
struct QmpErrorBody {
    class: String,
    desc: String,
}

/// Parses one reply line, of either dialect: Phoenix (`tag`, `{"bufb64","code"}`
/// errors) or qemu-ga (`id`, `{"class","desc"}` errors).
pub fn parse_reply(line: &[u8]) -> Result<Reply, String> {
    let raw: RawReply = serde_json::from_slice(line).map_err(|e| format!("bad reply: {e}"))?;
    let tag = match raw.tag {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    let result = match (raw.ret, raw.error) {
        (Some(v), None) => Ok(v),
        (None, Some(e)) => {
            if let Ok(body) = serde_json::from_str::<ErrorBody>(e.get()) {
                Err(WireError::from_body(&body))
            } else if let Ok(q) = serde_json::from_str::<QmpErrorBody>(e.get()) {
                Err(WireError {
                    message: q.desc,
                    code: -1,
                    class: Some(q.class),
                })
            } else {
                return Err(format!("bad error body: {}", e.get()));
            }
        }
        _ => return Err("reply has neither or both of \"return\" and \"error\"".into()),
    };
    Ok(Reply { tag, result })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Request<'_> {
        parse_request(line.as_bytes()).expect("valid request")
    }

    fn err(line: &str) -> (String, String) {
        let e = parse_request(line.as_bytes()).expect_err("invalid request");
        (e.tag.as_json().to_string(), e.reason)
    }

    #[test]
    fn full_request() {
        let r = ok(r#"{"execute":"file-open","arguments":{"path":"/x"},"tag":"t1","extra":1}"#);
        assert_eq!(r.execute, "file-open");
        assert_eq!(r.arguments.unwrap().get(), r#"{"path":"/x"}"#);
        assert_eq!(r.tag.as_json(), "\"t1\"");
        assert_eq!(r.tag.value(), "t1");
    }

    #[test]
    fn defaults() {
        let r = ok(r#" {"execute": "ping", "arguments": null} "#);
        assert!(r.arguments.is_none());
        assert_eq!(r.tag, Tag::none());
    }

    #[test]
    fn escaped_tag_is_echoed_verbatim() {
        let r = ok(r#"{"execute":"ping","tag":"a\"b\\c\u00e9"}"#);
        assert_eq!(r.tag.as_json(), r#""a\"b\\c\u00e9""#);
        assert_eq!(r.tag.value(), "a\"b\\cé");
    }

    #[test]
    fn bad_requests() {
        assert!(err("{not json").1.starts_with("malformed JSON"));
        assert_eq!(err("[1,2]").1, "request is not a JSON object");
        assert_eq!(err("null").1, "request is not a JSON object");
        assert_eq!(err("\"ping\"").1, "request is not a JSON object");
        assert_eq!(
            err(r#"{"tag":"x"}"#),
            ("\"x\"".into(), "missing \"execute\"".into())
        );
        assert_eq!(
            err(r#"{"execute":5,"tag":"y"}"#),
            ("\"y\"".into(), "\"execute\" must be a string".into())
        );
        assert_eq!(
            err(r#"{"execute":"ping","tag":7}"#).1,
            "\"tag\" must be a string"
        );
        assert!(err(r#"{"execute":"ping","execute":"x"}"#)
            .1
            .contains("duplicate"));
    }

    #[test]
    fn encodes_replies() {
        let mut out = Vec::new();
        encode_return("\"0.8.0\"", &Tag(Cow::Borrowed("\"t\"")), &mut out);
        assert_eq!(out, b"{\"return\":\"0.8.0\",\"tag\":\"t\"}\n");
        out.clear();
        encode_error(&WireError::new("x", 2), &Tag::none(), &mut out);
        assert_eq!(
            out,
            b"{\"error\":{\"bufb64\":\"eA==\",\"code\":2},\"tag\":\"\"}\n"
        );
    }

    #[test]
    fn parses_replies() {
        let r = parse_reply(br#"{"return":true,"tag":"a"}"#).unwrap();
        assert_eq!(r.tag.as_deref(), Some("a"));
        assert_eq!(r.result.unwrap().get(), "true");
        let r = parse_reply(br#"{"error":{"bufb64":"eA==","code":2},"tag":""}"#).unwrap();
        assert_eq!(r.result.unwrap_err(), WireError::new("x", 2));
        let r = parse_reply(br#"{"error":{"class":"GenericError","desc":"no"},"id":"q"}"#).unwrap();
        assert_eq!(r.tag.as_deref(), Some("q"));
        let e = r.result.unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.class.as_deref()),
            ("no", Some("GenericError"))
        );
        parse_reply(br#"{"tag":"a"}"#).unwrap_err();
    }

    proptest::proptest! {
        /// Any tag string survives the trip through a request and a reply unchanged.
        #[test]
        fn any_tag_round_trips(tag in "\\PC*") {
            let req = serde_json::json!({"execute": "ping", "tag": tag}).to_string();
            let parsed = parse_request(req.as_bytes()).unwrap();
            let mut out = Vec::new();
            encode_return("true", &parsed.tag, &mut out);
            let reply = parse_reply(&out[..out.len() - 1]).unwrap();
            proptest::prop_assert_eq!(reply.tag.unwrap(), tag.clone());
            let mut out = Vec::new();
            encode_error(&WireError::new("m", -1), &parsed.tag, &mut out);
            let reply = parse_reply(&out[..out.len() - 1]).unwrap();
            proptest::prop_assert_eq!(reply.tag.unwrap(), tag);
        }
    }
}
