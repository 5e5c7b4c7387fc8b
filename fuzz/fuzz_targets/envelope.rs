//! Request parsing on arbitrary bytes: never panics; whatever tag it accepts comes back
//! unchanged through a success and an error reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_proto::{encode_error, encode_return, parse_reply, parse_request, WireError};

fuzz_target!(|data: &[u8]| {
    let (tag, ok) = match parse_request(data) {
        Ok(req) => (req.tag, true),
        Err(bad) => (bad.tag, false),
    };
    let want = tag.value();
    let mut out = Vec::new();
    encode_return("true", &tag, &mut out);
    let reply = parse_reply(&out[..out.len() - 1]).expect("own reply parses");
    assert_eq!(reply.tag.unwrap_or_default(), want);
    out.clear();
    let msg = String::from_utf8_lossy(data);
    encode_error(&WireError::new(msg.clone(), -1), &tag, &mut out);
    let reply = parse_reply(&out[..out.len() - 1]).expect("own error parses");
    assert_eq!(reply.tag.unwrap_or_default(), want);
    assert_eq!(reply.result.unwrap_err().message, msg);
    let _ = ok;
});
