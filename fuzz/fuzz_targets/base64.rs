//! The `file-write` chunk decoder on arbitrary text: never panics, and what it accepts
//! is the canonical padded encoding of its output once line breaks are removed, except
//! for the bits after the last byte in the last symbol before the padding, which Go's
//! `StdEncoding` ignores too (`aGVsbG9=` is `hello`).
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
        let canonical = STANDARD.encode(&bytes);
        assert_eq!(canonical.len(), joined.len(), "{joined:?}");
        if let Some(last) = canonical.trim_end_matches('=').len().checked_sub(1) {
            let (c, j) = (canonical.as_bytes(), joined.as_bytes());
            assert_eq!(c[..last], j[..last], "{joined:?}");
            assert_eq!(c[last + 1..], j[last + 1..], "{joined:?}");
            // The differing symbol decodes to the same bytes: its low bits are unused.
            assert_eq!(decode_base64(&canonical).as_deref(), Ok(&bytes[..]));
        }
    }
});
