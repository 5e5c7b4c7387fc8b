//! Splits the agent's input byte stream into request lines.
//!
//! Rules (docs/commands/core.md, and QEMU's guest-agent convention):
//! * a line ends with LF; a CR before it is dropped, so CRLF and LF both work;
//! * the byte 0xFF drops whatever partial line came before it, so a host that lost
//!   track of the stream can resynchronise;
//! * a line longer than the limit is reported once, and everything up to the next LF
//!   is discarded without being buffered;
//! * blank lines are ignored.

use crate::RESYNC_BYTE;

/// One unit of input handed to the dispatcher.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete request line, without its line ending.
    Line(&'a [u8]),
    /// A line exceeded the limit; it is being (or has been) discarded.
    TooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A line within the limit did not fit in memory; it is being discarded.
    NoMemory {
        /// Bytes the partial line would have needed.
        needed: usize,
    },
}

/// Incremental line splitter. Feed it whatever `read()` returned.
#[derive(Debug)]
pub struct LineFramer {
    partial: Vec<u8>,
    max: usize,
    discarding: bool,
}

/// Capacity kept for the partial-line buffer after a large line has been handled,
/// so one big request does not pin its buffer for the agent's whole life.
const KEEP_CAPACITY: usize = 64 << 10;

/// Lines longer than this (transfer chunks) leave their buffer in place for the next.
const LONG_LINE: usize = 4 * KEEP_CAPACITY;

impl LineFramer {
    /// A framer that accepts lines of at most `max` bytes (line ending excluded).
    pub fn new(max: usize) -> Self {
        Self {
            partial: Vec::new(),
            max,
            discarding: false,
        }
    }

    /// Forgets any partial line (the peer went away; the next one starts afresh).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.partial.shrink_to(KEEP_CAPACITY);
        self.discarding = false;
    }

    /// Whether the framer keeps a large buffer between lines (after a long line) that
    /// [`LineFramer::release`] would give back.
    pub fn holds_memory(&self) -> bool {
        self.partial.is_empty() && self.partial.capacity() > LONG_LINE
    }

    /// Gives back the buffer kept after a long line, unless a line is in progress. A
    /// transport calls this when its host has been quiet for a moment.
    pub fn release(&mut self) {
        if self.partial.is_empty() {
            self.partial.shrink_to(KEEP_CAPACITY);
        }
    }

    /// Whether a partial line is pending.
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Consumes `data`, calling `on_frame` for every complete line or overflow.
    pub fn push(&mut self, mut data: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        while !data.is_empty() {
            let Some(i) = memchr::memchr2(b'\n', RESYNC_BYTE, data) else {
                // No delimiter: keep the bytes, unless they overflow the limit.
                if self.discarding {
                    return;
                }
                if self.partial.len() + data.len() > self.max {
                    self.overflow(&mut on_frame);
                    self.discarding = true;
                } else if self.partial.try_reserve(data.len()).is_err() {
                    let needed = self.partial.len() + data.len();
                    self.reset();
                    self.discarding = true;
                    on_frame(Frame::NoMemory { needed });
                } else {
                    self.partial.extend_from_slice(data);
                }
                return;
            };
            let (chunk, delim) = (&data[..i], data[i]);
            data = &data[i + 1..];
            if delim == RESYNC_BYTE {
                // An over-long line is reported whether it ends in LF or is cut by
                // 0xFF, and whatever the read sizes were.
                if !self.discarding && self.partial.len() + chunk.len() > self.max {
                    self.overflow(&mut on_frame);
                }
                self.partial.clear();
                self.discarding = false;
                continue;
            }
            if self.discarding {
                // The rest of an over-long line: its overflow was already reported.
                self.discarding = false;
                continue;
            }
            if self.partial.len() + chunk.len() > self.max {
                self.overflow(&mut on_frame);
                continue;
            }
            if self.partial.is_empty() {
                emit_line(chunk, &mut on_frame);
            } else {
                if self.partial.try_reserve(chunk.len()).is_err() {
                    let needed = self.partial.len() + chunk.len();
                    self.reset();
                    on_frame(Frame::NoMemory { needed });
                    continue;
                }
                self.partial.extend_from_slice(chunk);
                emit_line(&self.partial, &mut on_frame);
                // After a long line the buffer stays for the next one (a transfer sends
                // many; faulting megabytes in again for each costs more than parsing
                // them). A short line, or [`LineFramer::release`], gives it back.
                let long = self.partial.len() > LONG_LINE;
                self.partial.clear();
                if !long && self.partial.capacity() > LONG_LINE {
                    self.partial.shrink_to(KEEP_CAPACITY);
                }
            }
        }
    }

    fn overflow(&mut self, on_frame: &mut impl FnMut(Frame<'_>)) {
        self.partial.clear();
        self.partial.shrink_to(KEEP_CAPACITY);
        on_frame(Frame::TooLong { limit: self.max });
    }
}

fn emit_line(line: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    on_frame(Frame::Line(line));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Out {
        L(String),
        Long,
    }

    fn feed(f: &mut LineFramer, chunks: &[&[u8]]) -> Vec<Out> {
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, |fr| {
                out.push(match fr {
                    Frame::Line(l) => Out::L(String::from_utf8_lossy(l).into_owned()),
                    Frame::TooLong { .. } | Frame::NoMemory { .. } => Out::Long,
                })
            });
        }
        out
    }

    fn l(s: &str) -> Out {
        Out::L(s.to_string())
    }

    #[test]
    fn a_long_lines_buffer_stays_until_a_short_line_or_release() {
        let mut f = LineFramer::new(64 << 20);
        let long = vec![b'x'; 4 * LONG_LINE];
        let mut line = long.clone();
        line.push(b'\n');
        for _ in 0..2 {
            let got = feed(&mut f, &[&line[..1000], &line[1000..]]);
            assert_eq!(got, vec![Out::L(String::from_utf8(long.clone()).unwrap())]);
            assert!(f.holds_memory());
        }
        assert_eq!(feed(&mut f, &[b"sh", b"ort\n"]), vec![l("short")]);
        assert!(!f.holds_memory());
        feed(&mut f, &[&line[..1000], &line[1000..]]);
        assert!(f.holds_memory());
        // Nothing is released in the middle of a line.
        feed(&mut f, &[b"partial"]);
        f.release();
        assert!(f.has_partial());
        assert_eq!(feed(&mut f, &[b"\n"]), vec![l("partial")]);
        f.release();
        assert!(!f.holds_memory());
    }

    #[test]
    fn lf_and_crlf() {
        let mut f = LineFramer::new(100);
        assert_eq!(feed(&mut f, &[b"a\r\nb\nc"]), vec![l("a"), l("b")]);
        assert_eq!(feed(&mut f, &[b"d\r", b"\n"]), vec![l("cd")]);
    }

    #[test]
    fn two_requests_one_chunk_and_split_lines() {
        let mut f = LineFramer::new(100);
        assert_eq!(
            feed(&mut f, &[b"{\"a\":1}\n{\"b\"", b":2}\n"]),
            vec![l("{\"a\":1}"), l("{\"b\":2}")]
        );
    }

    #[test]
    fn blank_lines_ignored() {
        let mut f = LineFramer::new(100);
        assert_eq!(feed(&mut f, &[b"\n\r\n  \nx\n"]), vec![l("x")]);
    }

    #[test]
    fn resync_byte_drops_partial() {
        let mut f = LineFramer::new(100);
        assert_eq!(feed(&mut f, &[b"garbage", b"more\xffok\n"]), vec![l("ok")]);
        assert_eq!(feed(&mut f, &[b"x\xff\xff\xffy\n"]), vec![l("y")]);
    }

    #[test]
    fn over_long_line_reported_once_then_resync() {
        let mut f = LineFramer::new(10);
        let out = feed(&mut f, &[b"0123456789abc", b"defgh", b"ij\nok\n"]);
        assert_eq!(out, vec![Out::Long, l("ok")]);
        assert!(!f.has_partial());
        // Exactly at the limit is fine; one past is not.
        assert_eq!(feed(&mut f, &[b"0123456789\n"]), vec![l("0123456789")]);
        assert_eq!(
            feed(&mut f, &[b"0123456789a\nz\n"]),
            vec![Out::Long, l("z")]
        );
    }

    #[test]
    fn over_long_line_never_buffers_past_limit() {
        let mut f = LineFramer::new(1000);
        let junk = vec![b'x'; 4096];
        let mut out = Vec::new();
        for _ in 0..100 {
            out.extend(feed(&mut f, &[&junk]));
            assert!(f.partial.len() <= 1000);
        }
        out.extend(feed(&mut f, &[b"\nok\n"]));
        assert_eq!(out, vec![Out::Long, l("ok")]);
    }

    #[test]
    fn over_long_partial_cut_by_resync_is_reported_however_it_was_read() {
        // Found by the framer fuzz target: one read saw no overflow, many did.
        let input = b"0123456789\xffok\n";
        let mut f = LineFramer::new(4);
        assert_eq!(feed(&mut f, &[input]), vec![Out::Long, l("ok")]);
        let mut f = LineFramer::new(4);
        let pieces: Vec<&[u8]> = input.chunks(3).collect();
        assert_eq!(feed(&mut f, &pieces), vec![Out::Long, l("ok")]);
    }

    #[test]
    fn resync_byte_ends_discarding() {
        let mut f = LineFramer::new(4);
        assert_eq!(
            feed(&mut f, &[b"0123456", b"\xffok\n"]),
            vec![Out::Long, l("ok")]
        );
    }

    #[test]
    fn reset_drops_partial() {
        let mut f = LineFramer::new(100);
        feed(&mut f, &[b"half"]);
        f.reset();
        assert_eq!(feed(&mut f, &[b"new\n"]), vec![l("new")]);
    }

    proptest::proptest! {
        /// However the stream is cut into reads, the same lines come out.
        #[test]
        fn chunking_does_not_matter(lines in proptest::collection::vec("[a-z{}\":, ]{0,40}", 0..20),
                                    cut in 1usize..17) {
            let stream: Vec<u8> = lines.iter().flat_map(|s| format!("{s}\r\n").into_bytes()).collect();
            let mut whole = LineFramer::new(1 << 20);
            let a = feed(&mut whole, &[&stream]);
            let mut pieces = LineFramer::new(1 << 20);
            let chunks: Vec<&[u8]> = stream.chunks(cut).collect();
            let b = feed(&mut pieces, &chunks);
            proptest::prop_assert_eq!(a, b);
        }
    }
}
