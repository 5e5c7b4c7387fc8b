//! The `file-write` chunk decoder on arbitrary text: never panics, and what it accepts
//! is exactly the canonical padded encoding of its output once line breaks are removed
//! (no other text decodes to the same bytes).
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use phoenix_ga::parsers::decode_base64;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = decode_base64(text) {
        let joined: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
        assert_eq!(STANDARD.encode(&bytes), joined);
    }
});
