//! The agent's memory policy: a long-lived daemon in every guest must return to its
//! start-up size after a burst of work.
//!
//! * Transfer buffers ([`Buffer`]): the bytes of one `file-read` chunk between the
//!   read and the reply that carries them base64-encoded, or of one decoded
//!   `file-write` chunk. A large buffer lies outside the heap (malloc maps it on its
//!   own above the 1 MiB threshold set at start-up), so a fresh one costs a page
//!   fault per 4 KiB on first touch, about as much as encoding it: one spare is kept
//!   between chunks and reused by the next.
//! * The idle delay ([`IDLE`]): after large work (a transfer chunk, an md5 buffer, a big
//!   listing: [`note_large`]) and [`IDLE`] of quiet, the pool calls [`trim`], which
//!   frees the spare and gives the heap's free memory back to the kernel; a transport
//!   whose host has been quiet for [`IDLE`] gives back the line buffer its framer kept
//!   after a long request.
//!
//! The allocator is process-wide, so this policy is too: it is the one module-level
//! state of the agent.

use std::collections::TryReserveError;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::sync::lock;

/// How long the agent stays quiet before it gives memory back: longer than a host's
/// pause between two chunks of a transfer, whose buffers are reused in the meantime.
pub const IDLE: Duration = Duration::from_millis(250);

/// [`IDLE`] in milliseconds, for poll(2) and epoll_wait(2).
pub const IDLE_MS: u16 = 250;

/// Buffers at least this large are kept as the spare when dropped; smaller ones come
/// from the heap cheaply anyway.
const SPARE_MIN: usize = 256 << 10;

/// Requests and replies longer than this count as large work.
pub const LARGE: usize = 64 << 10;

/// The one spare buffer (zero-filled once, then holding old data).
static SPARE: Mutex<Option<Vec<u8>>> = Mutex::new(None);

/// Large work went through since the last trim.
static LARGE_WORK: AtomicBool = AtomicBool::new(false);

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
            let spare = lock(&SPARE).take_if(|v| v.len() >= len);
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
        let mut spare = lock(&SPARE);
        if spare.as_ref().is_none_or(|s| s.len() < self.vec.len()) {
            *spare = Some(std::mem::take(&mut self.vec));
        }
    }
}

/// Notes large work (a transfer chunk, a large reply), so memory is trimmed once the
/// agent has been idle for [`IDLE`].
pub fn note_large() {
    LARGE_WORK.store(true, Ordering::Relaxed);
}

/// Whether large work went through since the last [`trim`].
pub fn trim_due() -> bool {
    LARGE_WORK.load(Ordering::Relaxed)
}

/// Gives the spare transfer buffer and the heap's free memory back to the kernel, if
/// large work went through since the last trim. The pool calls it once it has been
/// idle for [`IDLE`].
pub fn trim() {
    if !LARGE_WORK.swap(false, Ordering::Relaxed) {
        return;
    }
    release_spare();
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Frees the spare buffer.
fn release_spare() {
    drop(lock(&SPARE).take());
}

/// Sets the allocator up for a long-lived agent with a few threads: two malloc arenas
/// are plenty, and a fixed 1 MiB mmap threshold sends large buffers (file chunks)
/// straight back to the kernel when freed, so one big transfer does not leave the RSS
/// high for the agent's life. (Keeping them in the heap was tried: slightly faster
/// 4 MiB downloads, but the RSS after transfers tripled.) Call before any other
/// thread exists.
pub fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes glibc allocator parameters; called before any other
    // thread exists, with valid parameter constants.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Serialises the unit tests that note large work or trim (the policy is process-wide).
#[cfg(test)]
pub static TEST_LOCK: Mutex<()> = Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    /// The spare is process-wide: one test exercises it from start to end.
    #[test]
    fn large_buffers_are_reused_until_trimmed() {
        let _alone = lock(&TEST_LOCK);
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
        note_large();
        assert!(trim_due());
        trim();
        assert!(!trim_due());
        let d = Buffer::new(SPARE_MIN).unwrap();
        assert_eq!(d[0], 0, "a trimmed spare is not handed out again");
        let small = Buffer::new(100).unwrap();
        assert_eq!(&small[..], &[0; 100][..]);
    }
}
