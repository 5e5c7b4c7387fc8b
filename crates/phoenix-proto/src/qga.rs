//! The QEMU guest agent's envelope (QMP framing, as qemu-ga speaks it), for the second
//! dialect.
//!
//! Request: `{"execute": NAME, "arguments": {...}, "id": ANY}`; `arguments` and `id`
//! optional, any other member an error. Success: `{"return": VALUE, "id": ID}`, the id
//! echoed verbatim and left out when the request had none. Error: `{"error": {"class":
//! CLASS, "desc": TEXT}, "id": ID}`. One reply per line, ending with LF;
//! `guest-sync-delimited` puts the byte 0xFF ([`SENTINEL`]) before its reply.
//!
//! The checks and their wording are qemu-ga's (QAPI's `qmp_dispatch`), so a host that
//! shows them to a user sees the same text.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// The byte `guest-sync-delimited` writes before its reply, and that a host sends to
/// make the agent drop a partial request.
pub const SENTINEL: u8 = crate::RESYNC_BYTE;

/// Error classes qemu-ga uses.
pub mod class {
    /// Almost every failure.
    pub const GENERIC: &str = "GenericError";
    /// An unknown command, or one disabled by the operator or by a freeze.
    pub const COMMAND_NOT_FOUND: &str = "CommandNotFound";
}

/// The arguments of a command that takes none, and the return value `{}` of a
/// command that returns nothing. Unlike the Phoenix dialect's
/// [`NoArgs`](crate::NoArgs), arguments it does not know are refused, as qemu-ga
/// refuses them ("Parameter 'x' is unexpected").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A parsed request. `arguments` and `id` stay raw JSON.
#[derive(Debug)]
pub struct Request<'a> {
    /// The command name.
    pub execute: String,
    /// The `arguments` object; `None` when absent.
    pub arguments: Option<&'a RawValue>,
    /// The id to echo; `None` when absent.
    pub id: Option<&'a RawValue>,
}

/// A line that is not a valid request: answered with a `GenericError` carrying `id`.
#[derive(Debug)]
pub struct Rejected<'a> {
    /// The request's id where it could be read.
    pub id: Option<&'a RawValue>,
    /// qemu-ga's description of the problem.
    pub desc: String,
}

/// The members of a request object, each kept raw so that its type can be checked and
/// worded as qemu-ga does.
type Members<'a> = BTreeMap<Cow<'a, str>, &'a RawValue>;

/// Splits a line that holds several requests one after the other (`{...}{...}`, which
/// qemu-ga's streaming parser accepts) into one slice per JSON value. Text that is not
/// JSON ends the split: it is one last slice, whose parse reports the error.
pub fn split(line: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(line).into_iter::<IgnoredAny>();
    let mut start = 0;
    loop {
        match stream.next() {
            Some(Ok(_)) => {
                let end = stream.byte_offset();
                out.push(&line[start..end]);
                start = end;
            }
            Some(Err(_)) => {
                out.push(&line[start..]);
                break;
            }
            None => break,
        }
    }
    if out.is_empty() {
        out.push(line);
    }
    out
}

/// Parses one request (one JSON value, see [`split`]).
pub fn parse_request(text: &[u8]) -> Result<Request<'_>, Rejected<'_>> {
    let first = text.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        let desc = match serde_json::from_slice::<IgnoredAny>(text) {
            Ok(_) => "QMP input must be a JSON object".to_string(),
            Err(e) => json_error(&e),
        };
        return Err(Rejected { id: None, desc });
    }
    let mut m: Members = serde_json::from_slice(text).map_err(|e| Rejected {
        id: None,
        desc: json_error(&e),
    })?;
    let id = m.remove("id");
    let (execute, arguments) = (m.remove("execute"), m.remove("arguments"));
    let reject = |desc: String| Rejected { id, desc };
    if let Some(name) = m.keys().next() {
        return Err(reject(format!("QMP input member '{name}' is unexpected")));
    }
    let Some(execute) = execute else {
        return Err(reject("QMP input lacks member 'execute'".into()));
    };
    let Ok(execute) = serde_json::from_str::<String>(execute.get()) else {
        return Err(reject("QMP input member 'execute' must be a string".into()));
    };
    if let Some(args) = arguments {
        if !args.get().starts_with('{') {
            return Err(reject(
                "QMP input member 'arguments' must be an object".into(),
            ));
        }
    }
    Ok(Request {
        execute,
        arguments,
        id,
    })
}

/// qemu-ga's wording for text that is not JSON.
fn json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => &msg,
    };
    format!("JSON parse error, {msg}")
}

/// Appends a success reply, `{"return":VALUE,"id":ID}\n` (no `id` when `None`), to
/// `out`. `value` and `id` must be valid JSON text.
pub fn encode_return(value: &str, id: Option<&str>, out: &mut Vec<u8>) {
    out.reserve(value.len() + id.map_or(0, str::len) + 20);
    out.extend_from_slice(b"{\"return\":");
    out.extend_from_slice(value.as_bytes());
    encode_id_and_end(id, out);
}

/// Appends `,"id":ID}\n`, or `}\n` without an id: the end of every reply. The id is
/// echoed as the host wrote it, but on one line: a CR or LF in valid JSON text can only
/// be whitespace between tokens (inside a string it must be escaped), so each becomes
/// a space, and the reply stays one line.
pub fn encode_id_and_end(id: Option<&str>, out: &mut Vec<u8>) {
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        let at = out.len();
        out.extend_from_slice(id.as_bytes());
        for b in &mut out[at..] {
            if matches!(*b, b'\n' | b'\r') {
                *b = b' ';
            }
        }
    }
    out.extend_from_slice(b"}\n");
}

/// Appends an error reply, `{"error":{"class":CLASS,"desc":DESC},"id":ID}\n`, to `out`.
pub fn encode_error(class: &str, desc: &str, id: Option<&str>, out: &mut Vec<u8>) {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        class: &'a str,
        desc: &'a str,
    }
    out.extend_from_slice(b"{\"error\":");
    serde_json::to_writer(&mut *out, &Body { class, desc }).expect("an error body serialises");
    encode_id_and_end(id, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_written_over_several_lines_comes_back_on_one() {
        let r = parse_request(b"{\"execute\":\"guest-sync\",\"id\":{\n\r\n\"a\":[0,\"x\"]\n}}")
            .unwrap();
        let id = r.id.map(|i| i.get());
        let mut out = Vec::new();
        encode_return("{}", id, &mut out);
        encode_error(class::GENERIC, "d", id, &mut out);
        let lines: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 2, "{}", String::from_utf8_lossy(&out));
        for line in lines {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert_eq!(v["id"], serde_json::json!({"a": [0, "x"]}));
        }
    }

    fn desc(line: &str) -> String {
        parse_request(line.as_bytes()).unwrap_err().desc
    }

    #[test]
    fn requests_and_qemu_ga_wording() {
        let r = parse_request(br#"{"execute":"guest-ping","id":{"a":[1]}}"#).unwrap();
        assert_eq!(r.execute, "guest-ping");
        assert_eq!(r.id.unwrap().get(), r#"{"a":[1]}"#);
        assert!(r.arguments.is_none());
        assert_eq!(desc("[1]"), "QMP input must be a JSON object");
        assert_eq!(desc(r#"{"foo":1}"#), "QMP input member 'foo' is unexpected");
        assert_eq!(desc(r#"{"id":8}"#), "QMP input lacks member 'execute'");
        assert_eq!(
            desc(r#"{"execute":5}"#),
            "QMP input member 'execute' must be a string"
        );
        assert_eq!(
            desc(r#"{"execute":"guest-ping","arguments":[1]}"#),
            "QMP input member 'arguments' must be an object"
        );
        assert!(desc("{bad").starts_with("JSON parse error, "));
        let bad = parse_request(br#"{"execute":"x","id":3,"extra":1}"#).unwrap_err();
        assert_eq!(bad.id.unwrap().get(), "3");
    }

    #[test]
    fn several_requests_on_one_line() {
        let parts = split(br#"{"execute":"a"}{"execute":"b"} {"execute":"c"}"#);
        assert_eq!(parts.len(), 3);
        assert_eq!(parse_request(parts[1]).unwrap().execute, "b");
        assert_eq!(parse_request(parts[2]).unwrap().execute, "c");
        let parts = split(br#"{"execute":"a"}{bad"#);
        assert_eq!(parts.len(), 2);
        parse_request(parts[1]).unwrap_err();
        assert_eq!(split(b"  ").len(), 1);
    }

    #[test]
    fn replies() {
        let mut out = Vec::new();
        encode_return("{}", Some("\"a\""), &mut out);
        assert_eq!(out, b"{\"return\":{},\"id\":\"a\"}\n");
        out.clear();
        encode_return("7", None, &mut out);
        assert_eq!(out, b"{\"return\":7}\n");
        out.clear();
        encode_error(class::GENERIC, "it's \"bad\"", Some("1"), &mut out);
        assert_eq!(
            out,
            b"{\"error\":{\"class\":\"GenericError\",\"desc\":\"it's \\\"bad\\\"\"},\"id\":1}\n"
        );
    }
}
