//! The line framer on arbitrary bytes cut at arbitrary points: it never panics, never
//! buffers past its limit, and yields the same frames however the input is cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_proto::{Frame, LineFramer};

const LIMIT: usize = 256;

fn frames(chunks: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
    let mut f = LineFramer::new(LIMIT);
    let mut out = Vec::new();
    for c in chunks {
        f.push(c, |fr| match fr {
            Frame::Line(l) => {
                assert!(l.len() <= LIMIT);
                assert!(!l.contains(&b'\n') && !l.contains(&0xFF));
                out.push(Some(l.to_vec()))
            }
            Frame::TooLong { limit } => {
                assert_eq!(limit, LIMIT);
                out.push(None)
            }
            Frame::NoMemory { .. } => unreachable!("256-byte lines always fit"),
        });
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte chooses how to cut the rest.
    let cut = usize::from(data[0]) % 64 + 1;
    let rest = &data[1..];
    let whole = frames(&[rest]);
    let pieces: Vec<&[u8]> = rest.chunks(cut).collect();
    assert_eq!(whole, frames(&pieces));
    for line in whole.into_iter().flatten() {
        let _ = phoenix_proto::parse_request(&line);
    }
});
