//! Standard input of a child: bytes the host gave (`input-data`, then
//! `guest-exec-write`) that the pipe has not taken yet, at most [`QUEUE`] of them past
//! the first `input-data`, and whether the input is to be closed once they are
//! written.

use std::collections::VecDeque;

/// Bytes `guest-exec-write` queues before it waits for the child to read.
pub const QUEUE: usize = 256 << 10;

/// A terminal's end-of-file character (VEOF, ^D): what closing a pty's input sends.
pub const PTY_EOF: u8 = 4;

/// What is still to be written to a child's standard input.
#[derive(Debug, Default)]
pub struct Input {
    queue: VecDeque<u8>,
    /// The host may still write (`stdin` or `pty` was asked for and `close` not yet
    /// sent).
    pub open: bool,
    /// `stdin` or `pty` was asked for.
    pub kept: bool,
    /// Close the pipe once the queue is written.
    pub close_after: bool,
    /// The child closed its end (EPIPE): what is queued is dropped, writes fail.
    pub broken: bool,
}

impl Input {
    /// An input holding `first` (`input-data`), left open for writes when `open`.
    pub fn new(first: Vec<u8>, open: bool) -> Self {
        Self {
            queue: first.into(),
            open,
            kept: open,
            close_after: !open,
            broken: false,
        }
    }

    /// Bytes the queue takes now.
    pub fn room(&self) -> usize {
        QUEUE.saturating_sub(self.queue.len())
    }

    /// Queues what fits of `bytes`; how many were taken.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.room());
        self.queue.extend(&bytes[..n]);
        n
    }

    /// Queues a terminal's end-of-file character, whatever the room.
    pub fn push_eof(&mut self, eof: u8) {
        self.queue.push_back(eof);
    }

    /// Whether nothing is waiting to be written.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The next bytes to write.
    pub fn front(&self) -> &[u8] {
        self.queue.as_slices().0
    }

    /// Drops `n` written bytes.
    pub fn consume(&mut self, n: usize) {
        self.queue.drain(..n.min(self.queue.len()));
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
    }

    /// The child will read no more: drop what is queued.
    pub fn break_off(&mut self) {
        self.broken = true;
        self.open = false;
        self.queue = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_past_the_first_data() {
        let big = vec![1u8; QUEUE + 10];
        let mut i = Input::new(big, true);
        assert_eq!(i.room(), 0, "input-data is kept whole");
        assert_eq!(i.push(b"more"), 0);
        let n = i.front().len();
        i.consume(n);
        assert!(i.is_empty() || i.front().len() + n == QUEUE + 10);
        i.consume(QUEUE + 10);
        assert!(i.is_empty());
        assert_eq!(i.push(b"abc"), 3);
        assert_eq!(i.front(), b"abc");
        i.break_off();
        assert!(i.broken && !i.open && i.is_empty());
    }

    #[test]
    fn input_data_alone_closes_after_it_is_written() {
        let i = Input::new(b"x".to_vec(), false);
        assert!(i.close_after && !i.open);
        let i = Input::new(Vec::new(), true);
        assert!(!i.close_after && i.open);
    }
}
