//! Adaptive busy-polling of the input before sleeping.
//!
//! A host that sends requests back to back (a transfer, a script) sends the next one
//! microseconds after our reply. Sleeping in the kernel and being woken costs two
//! scheduler round trips per request, more than the request itself; reading without
//! sleeping for a few tens of microseconds avoids them. The spin is adaptive so it
//! costs nothing when the host is slower than that (a virtio port under TCG answers in
//! ~150 us): once a spin finds nothing, the reader stops spinning until a request again
//! arrives quickly after it went to sleep. When the host stops, at most one spin is
//! wasted and the agent then sleeps with no CPU use at all.

use std::time::{Duration, Instant};

/// Longest busy-poll after a request was handled.
const SPIN: Duration = Duration::from_micros(50);

/// A sleep shorter than this means requests come back to back: spin again.
const REHEAT: Duration = Duration::from_micros(200);

/// Tracks whether spinning pays off for the current host.
#[derive(Debug)]
pub struct Spinner {
    hot: bool,
}

impl Spinner {
    /// Starts hot: a new host usually sends its first requests back to back.
    pub fn new() -> Self {
        Self { hot: true }
    }

    /// Calls `try_read` until it yields something or the spin budget runs out;
    /// `None` means: go to sleep.
    pub fn spin<T>(&mut self, mut try_read: impl FnMut() -> Option<T>) -> Option<T> {
        if !self.hot {
            return None;
        }
        let start = Instant::now();
        loop {
            if let Some(x) = try_read() {
                return Some(x);
            }
            if start.elapsed() >= SPIN {
                self.hot = false;
                return None;
            }
            std::hint::spin_loop();
        }
    }

    /// Records how long the reader slept before input arrived.
    pub fn slept(&mut self, for_: Duration) {
        self.hot = for_ < REHEAT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cools_after_a_fruitless_spin_and_reheats_on_a_short_sleep() {
        let mut s = Spinner::new();
        assert_eq!(s.spin(|| Some(1)), Some(1));
        assert_eq!(s.spin(|| None::<u8>), None);
        let mut calls = 0;
        assert_eq!(
            s.spin(|| {
                calls += 1;
                None::<u8>
            }),
            None
        );
        assert_eq!(calls, 0, "a cold spinner must not poll");
        s.slept(Duration::from_micros(10));
        assert_eq!(s.spin(|| Some(2)), Some(2));
        s.slept(Duration::from_secs(1));
        assert_eq!(s.spin(|| Some(3)), None);
    }
}
