//! Transfer buffers: the bytes of one `file-read` chunk, between the read and the
//! reply that carries them base64-encoded.
//!
//! A large buffer lies outside the heap (malloc maps it on its own above the 1 MiB
//! threshold), so a fresh one costs a page fault per 4 KiB on first touch: about as
//! much as encoding it. One spare is therefore kept between chunks and reused by the
//! next; the pool hands it back to the kernel once it has been idle for a moment
//! ([`release_spare`]), so the agent's RSS returns to its start-up size.

use std::collections::TryReserveError;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Buffers at least this large are kept as the spare when dropped; smaller ones come
/// from the heap cheaply anyway.
const SPARE_MIN: usize = 256 << 10;

/// The one spare buffer (zero-filled once, then holding old data).
static SPARE: Mutex<Option<Vec<u8>>> = Mutex::new(None);

/// A byte buffer of a given length, initialised (to zeros or to an earlier chunk's
/// bytes), that becomes the spare when dropped.
#[derive(Debug)]
pub struct Buffer {
    vec: Vec<u8>,
    len: usize,
}

impl Buffer {
    /// A buffer of `len` bytes: the spare if it is large enough, else a new one.
    /// Allocation failure is reported, not fatal.
    pub fn new(len: usize) -> Result<Self, TryReserveError> {
        if len >= SPARE_MIN {
            let spare = lock().take_if(|v| v.len() >= len);
            if let Some(vec) = spare {
                return Ok(Self { vec, len });
            }
        }
        let mut vec = Vec::new();
        vec.try_reserve_exact(len)?;
        vec.resize(len, 0);
        Ok(Self { vec, len })
    }

    /// Shortens the buffer to `len` bytes (no effect if it is not longer).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl From<Vec<u8>> for Buffer {
    fn from(vec: Vec<u8>) -> Self {
        let len = vec.len();
        Self { vec, len }
    }
}

impl Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.vec[..self.len]
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.vec[..self.len]
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.vec.len() < SPARE_MIN {
            return;
        }
        let mut spare = lock();
        if spare.as_ref().is_none_or(|s| s.len() < self.vec.len()) {
            *spare = Some(std::mem::take(&mut self.vec));
        }
    }
}

/// Frees the spare buffer (the pool calls this once it has been idle a while).
pub fn release_spare() {
    drop(lock().take());
}

fn lock() -> std::sync::MutexGuard<'static, Option<Vec<u8>>> {
    SPARE.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spare is process-wide: one test exercises it from start to end.
    #[test]
    fn large_buffers_are_reused_until_released() {
        release_spare();
        let mut a = Buffer::new(SPARE_MIN * 2).unwrap();
        a[0] = 7;
        let addr = a.as_ptr();
        a.truncate(10);
        assert_eq!(a.len(), 10);
        drop(a);
        let b = Buffer::new(SPARE_MIN).unwrap();
        assert_eq!((b.as_ptr(), b.len(), b[0]), (addr, SPARE_MIN, 7));
        // While the spare is out, another large buffer is a new one.
        let c = Buffer::new(SPARE_MIN).unwrap();
        assert_ne!(c.as_ptr(), addr);
        drop(b);
        drop(c); // smaller than the spare already kept: freed
        release_spare();
        let d = Buffer::new(SPARE_MIN).unwrap();
        assert_eq!(d[0], 0, "a released spare is not handed out again");
        let small = Buffer::new(100).unwrap();
        assert_eq!(&small[..], &[0; 100][..]);
    }
}
