//! The qemu-ga envelope on arbitrary bytes: splitting a line into requests and parsing
//! each never panics; whatever id a request carries comes back equal through a success
//! and an error reply, each reply is one line, and the error text survives the trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_proto::qga::{class, encode_error, encode_return, parse_request, split};
use phoenix_proto::parse_reply;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let parts = split(data);
    assert!(!parts.is_empty());
    for part in parts {
        let (id, desc) = match parse_request(part) {
            Ok(req) => (req.id, format!("ok {}", req.execute)),
            Err(bad) => (bad.id, bad.desc),
        };
        let id_text = id.map(|i| i.get());
        let want: Option<Value> = id_text.map(|t| serde_json::from_str(t).expect("an id is JSON"));
        let mut out = Vec::new();
        encode_return("{}", id_text, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let back: Value = serde_json::from_slice(&out).expect("own reply is JSON");
        assert_eq!(back.get("id").cloned(), want);
        out.clear();
        encode_error(class::GENERIC, &desc, id_text, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let reply = parse_reply(&out[..out.len() - 1]).expect("own error parses");
        let err = reply.result.unwrap_err();
        assert_eq!(err.message, desc);
        assert_eq!(err.class.as_deref(), Some(class::GENERIC));
    }
});
