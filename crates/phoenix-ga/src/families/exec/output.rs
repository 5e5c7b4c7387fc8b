//! What the agent holds of one output stream of a child, in one of two ways:
//!
//! - captured (qemu-ga's contract): everything up to [`CAPTURE_LIMIT`], kept until the
//!   status that reports the exit takes it; past the limit, or past the agent-wide
//!   [`Budget`], bytes are read and dropped and the stream is marked truncated, so the
//!   child never blocks on its pipe;
//! - streamed: a window of at most [`WINDOW`] bytes from an offset; the host takes
//!   bytes with `guest-exec-read` and the next read's offset drops them. When the
//!   window is full the agent stops reading the pipe and the child waits on it:
//!   nothing is ever dropped, and the memory per stream stays bounded.
//!
//! Offsets count every byte the stream ever carried, so a host that lost a reply reads
//! again from the same offset and gets the same bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use nix::errno::Errno;

use crate::error::Error;

/// Bytes captured per stream: qemu-ga's `GUEST_EXEC_MAX_OUTPUT` (16 MiB).
pub const CAPTURE_LIMIT: usize = 16 << 20;

/// Bytes captured by all processes together, past which captured streams are
/// truncated: the agent's memory for qemu-ga-style output stays bounded however many
/// processes run.
pub const CAPTURE_TOTAL: usize = 64 << 20;

/// Bytes a streamed stream holds while the host has not taken them.
pub const WINDOW: usize = 256 << 10;

/// The agent-wide count of captured bytes, against [`CAPTURE_TOTAL`].
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Takes up to `want` bytes; how many were granted.
    fn take(&self, want: usize) -> usize {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let grant = want.min(self.limit.saturating_sub(used));
            if grant == 0 {
                return 0;
            }
            match self.used.compare_exchange_weak(
                used,
                used + grant,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return grant,
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// Bytes in use.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// How a stream's bytes are kept.
#[derive(Debug)]
enum Keep {
    /// Captured for the final status, against a [`Budget`].
    Capture { budget: Arc<Budget>, charged: usize },
    /// Streamed through a window.
    Window,
}

/// One output stream as the agent holds it.
#[derive(Debug)]
pub struct Output {
    keep: Keep,
    /// Bytes held, from offset `base`.
    data: Vec<u8>,
    base: u64,
    /// Captured bytes were dropped (limit or budget).
    truncated: bool,
    /// No more bytes will come: end of file, the drain ended, or never captured.
    pub closed: bool,
}

impl Output {
    /// A captured stream.
    pub fn captured(budget: Arc<Budget>) -> Self {
        Self::new(Keep::Capture { budget, charged: 0 })
    }

    /// A streamed stream.
    pub fn streamed() -> Self {
        Self::new(Keep::Window)
    }

    /// A stream that is not read (it goes to /dev/null, or into the other one).
    pub fn absent() -> Self {
        let mut o = Self::new(Keep::Window);
        o.closed = true;
        o
    }

    fn new(keep: Keep) -> Self {
        Self {
            keep,
            data: Vec::new(),
            base: 0,
            truncated: false,
            closed: false,
        }
    }

    /// Bytes the pipe may be read for now: 0 when a streamed window is full (the
    /// child then waits). A captured stream is always read (what does not fit is
    /// dropped).
    pub fn room(&self) -> usize {
        match self.keep {
            Keep::Capture { .. } => usize::MAX,
            Keep::Window => WINDOW.saturating_sub(self.data.len()),
        }
    }

    /// Adds bytes read from the pipe (no more than [`Output::room`]).
    pub fn push(&mut self, bytes: &[u8]) {
        let keep = match &mut self.keep {
            Keep::Window => bytes.len(),
            Keep::Capture { budget, charged } => {
                let fits = bytes.len().min(CAPTURE_LIMIT.saturating_sub(self.data.len()));
                let granted = budget.take(fits);
                // A failed allocation truncates too, as qemu-ga's g_try_realloc does.
                let granted = match self.data.try_reserve(granted) {
                    Ok(()) => granted,
                    Err(_) => {
                        budget.give_back(granted);
                        0
                    }
                };
                *charged += granted;
                if granted < bytes.len() {
                    self.truncated = true;
                }
                granted
            }
        };
        self.data.extend_from_slice(&bytes[..keep]);
    }

    /// Marks that bytes the pipe still held were left unread when it was closed.
    pub fn mark_truncated(&mut self) {
        self.truncated = true;
    }

    /// Whether captured bytes were dropped.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The offset after the last byte received.
    pub fn end(&self) -> u64 {
        self.base + self.data.len() as u64
    }

    /// Whether `offset` is within the bytes held (or just past them).
    pub fn holds(&self, offset: u64) -> bool {
        (self.base..=self.end()).contains(&offset)
    }

    /// Drops the bytes before `offset` (the host has them). An offset before the
    /// bytes still held, or past the end, is refused.
    pub fn ack(&mut self, offset: u64) -> Result<(), Error> {
        if !self.holds(offset) {
            return Err(Error::errno(
                Errno::EINVAL,
                format!(
                    "offset {offset} is outside the bytes held ({} to {})",
                    self.base,
                    self.end()
                ),
            ));
        }
        let n = usize::try_from(offset - self.base).unwrap_or(usize::MAX);
        self.data.drain(..n);
        self.base = offset;
        if self.data.is_empty() && self.data.capacity() > 0 {
            // An idle stream gives its window back.
            self.data = Vec::new();
        }
        Ok(())
    }

    /// Up to `count` bytes from `offset` (which [`Output::ack`] accepted).
    pub fn peek(&self, offset: u64, count: usize) -> &[u8] {
        let start = usize::try_from(offset.saturating_sub(self.base)).unwrap_or(usize::MAX);
        let start = start.min(self.data.len());
        let end = start.saturating_add(count).min(self.data.len());
        &self.data[start..end]
    }

    /// Takes every byte held (a captured stream's output, for the final status).
    pub fn take(&mut self) -> Vec<u8> {
        self.base = self.end();
        std::mem::take(&mut self.data)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Keep::Capture { budget, charged } = &self.keep {
            budget.give_back(*charged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_holds_what_the_host_has_not_taken() {
        let mut o = Output::streamed();
        assert_eq!(o.room(), WINDOW);
        o.push(b"hello ");
        o.push(b"world");
        assert_eq!((o.end(), o.room()), (11, WINDOW - 11));
        assert_eq!(o.peek(0, 5), b"hello");
        // Reading again from the same offset gives the same bytes.
        o.ack(0).unwrap();
        assert_eq!(o.peek(0, 100), b"hello world");
        o.ack(6).unwrap();
        assert_eq!(o.peek(6, 100), b"world");
        assert_eq!(o.room(), WINDOW - 5);
        // Dropped bytes cannot be read again; nor can bytes not yet received.
        assert_eq!(o.ack(3).unwrap_err().code(), 22);
        assert_eq!(o.ack(12).unwrap_err().code(), 22);
        o.ack(11).unwrap();
        assert_eq!((o.peek(11, 10), o.room()), (&b""[..], WINDOW));
        o.push(&vec![7; WINDOW]);
        assert_eq!(o.room(), 0);
        assert!(!o.truncated());
    }

    #[test]
    fn capture_stops_at_the_limit_and_the_budget() {
        let budget = Arc::new(Budget::new(CAPTURE_LIMIT + 10));
        let mut a = Output::captured(budget.clone());
        a.push(&vec![1; CAPTURE_LIMIT - 1]);
        assert!(!a.truncated());
        a.push(b"xyz");
        assert!(a.truncated());
        assert_eq!(a.end(), CAPTURE_LIMIT as u64);
        assert_eq!(a.room(), usize::MAX, "a captured stream is always read");
        let mut b = Output::captured(budget.clone());
        b.push(&[2; 20]);
        assert!(b.truncated(), "only 10 bytes of budget were left");
        assert_eq!(b.take(), vec![2; 10]);
        assert_eq!(budget.used(), CAPTURE_LIMIT + 10);
        drop((a, b));
        assert_eq!(budget.used(), 0, "a dropped stream gives its bytes back");
    }

    #[test]
    fn an_absent_stream_is_closed_and_empty() {
        let o = Output::absent();
        assert!(o.closed);
        assert_eq!((o.end(), o.peek(0, 9)), (0, &b""[..]));
    }
}
