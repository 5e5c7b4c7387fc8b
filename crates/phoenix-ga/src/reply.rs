//! Reply writing: where a connection's replies go ([`Sink`]), a reply given in parts
//! ([`Part`]) and how its base64 is encoded on the way out ([`write_parts`]), and the
//! return value of a command ([`Value`]). Transports implement [`Sink`]; envelopes
//! turn a [`Value`] into parts.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::memory::Buffer;

/// A command's return value, before an envelope wraps it.
#[derive(Debug)]
pub enum Value {
    /// JSON text.
    Json(Box<RawValue>),
    /// JSON text around bytes that go out base64-encoded: `head`, the base64 of
    /// `data`, `tail`. The transport encodes a transfer chunk while writing it, so
    /// its encoded form never exists whole in memory.
    Encoded {
        /// The text before the base64 (ends inside a JSON string).
        head: Cow<'static, str>,
        /// The bytes to encode.
        data: Buffer,
        /// The text after the base64 (closes the string and the value).
        tail: Cow<'static, str>,
    },
    /// JSON text whose reply line is preceded by the byte 0xFF, which tells a host to
    /// reset its parser (`guest-sync-delimited`).
    Delimited(Box<RawValue>),
}

impl Value {
    /// Bytes of the JSON text.
    pub fn text_len(&self) -> usize {
        match self {
            Value::Json(raw) | Value::Delimited(raw) => raw.get().len(),
            Value::Encoded { head, data, tail } => {
                head.len() + data.len().div_ceil(3) * 4 + tail.len()
            }
        }
    }

    /// The value's parts, to be written between an envelope's head and tail.
    pub fn parts(&self) -> [Part<'_>; 3] {
        match self {
            Value::Json(raw) | Value::Delimited(raw) => [
                Part::Text(raw.get().as_bytes()),
                Part::Text(b""),
                Part::Text(b""),
            ],
            Value::Encoded { head, data, tail } => [
                Part::Text(head.as_bytes()),
                Part::Base64(data),
                Part::Text(tail.as_bytes()),
            ],
        }
    }

    /// The whole JSON text (tests; replies are written in parts).
    #[cfg(test)]
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        write_parts(&self.parts(), |piece| {
            out.extend_from_slice(piece);
            true
        });
        String::from_utf8(out).expect("JSON is UTF-8")
    }
}

impl From<Box<RawValue>> for Value {
    fn from(raw: Box<RawValue>) -> Self {
        Value::Json(raw)
    }
}

/// Where the replies of one host connection go. Each call writes one whole reply;
/// replies are never interleaved. A sink whose host is gone drops replies.
pub trait Sink: Send + Sync {
    /// Writes one reply line.
    fn send(&self, reply: &[u8]);

    /// Writes one reply line given in parts, without gathering them first: a large
    /// return value is written from where it lies, and a transfer chunk is encoded
    /// piece by piece on its way out (see [`write_parts`]). Sinks that can write the
    /// pieces one after the other under their lock override this.
    fn send_parts(&self, parts: &[Part<'_>]) {
        let mut reply = Vec::new();
        write_parts(parts, |piece| {
            reply.extend_from_slice(piece);
            true
        });
        self.send(&reply);
    }
}

/// A part of a reply line.
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// Text written as it is.
    Text(&'a [u8]),
    /// Bytes written as standard padded base64.
    Base64(&'a [u8]),
}

/// Bytes of base64 input encoded at a time: a multiple of 3, so pieces encode
/// independently, and small enough that a piece stays in the CPU cache from its
/// encoding to its write.
const PIECE: usize = 3 << 14;

/// Replies up to this long are gathered and written with one call.
const GATHER: usize = 64 << 10;

/// Gives the bytes of `parts` to `out` in order: a short reply in one piece, a long
/// one in pieces of at most [`GATHER`] bytes (large text parts whole). Stops when
/// `out` returns false (the host is gone).
pub fn write_parts(parts: &[Part<'_>], mut out: impl FnMut(&[u8]) -> bool) {
    let encoded_len = |n: usize| n.div_ceil(3) * 4;
    let total: usize = parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.len(),
            Part::Base64(b) => encoded_len(b.len()),
        })
        .sum();
    let mut piece = Vec::with_capacity(total.min(GATHER));
    for part in parts {
        match *part {
            Part::Text(t) if piece.len() + t.len() <= GATHER => piece.extend_from_slice(t),
            Part::Text(t) => {
                if !piece.is_empty() && !out(&piece) {
                    return;
                }
                piece.clear();
                if !out(t) {
                    return;
                }
            }
            Part::Base64(bytes) => {
                for input in bytes.chunks(PIECE) {
                    let n = encoded_len(input.len());
                    if piece.len() + n > GATHER {
                        if !out(&piece) {
                            return;
                        }
                        piece.clear();
                    }
                    let at = piece.len();
                    piece.resize(at + n, 0);
                    let written = base64_simd::STANDARD
                        .encode(input, base64_simd::Out::from_slice(&mut piece[at..]))
                        .len();
                    debug_assert_eq!(written, n);
                }
            }
        }
    }
    if !piece.is_empty() {
        out(&piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    fn joined(parts: &[Part<'_>]) -> (Vec<u8>, Vec<usize>) {
        let (mut all, mut sizes) = (Vec::new(), Vec::new());
        write_parts(parts, |piece| {
            all.extend_from_slice(piece);
            sizes.push(piece.len());
            true
        });
        (all, sizes)
    }

    #[test]
    fn parts_are_written_whole_and_in_order() {
        let data: Vec<u8> = (0..1_000_003u32)
            .map(|i| (i * 31 + i / 7).to_le_bytes()[0])
            .collect();
        let big_text = vec![b'x'; GATHER + 1];
        for len in [0, 1, 2, 3, PIECE - 1, PIECE, PIECE + 1, 200_000, data.len()] {
            let parts = [
                Part::Text(b"{\"return\":{\"bufb64\":\""),
                Part::Base64(&data[..len]),
                Part::Text(b"\"},\"tag\":1}\n"),
                Part::Text(&big_text),
            ];
            let (all, sizes) = joined(&parts);
            let want = format!(
                "{{\"return\":{{\"bufb64\":\"{}\"}},\"tag\":1}}\n{}",
                STANDARD.encode(&data[..len]),
                "x".repeat(GATHER + 1)
            );
            assert!(all == want.as_bytes(), "length {len}");
            assert!(sizes.iter().all(|&s| s <= GATHER || s == big_text.len()));
        }
        // A short reply is one write.
        let (_, sizes) = joined(&[Part::Text(b"{\"return\":"), Part::Base64(&data[..4096])]);
        assert_eq!(sizes.len(), 1);
    }

    #[test]
    fn writing_stops_when_the_host_is_gone() {
        let data = vec![0u8; 10 * PIECE];
        let mut calls = 0;
        write_parts(&[Part::Base64(&data), Part::Text(b"tail")], |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, 1);
    }
}
