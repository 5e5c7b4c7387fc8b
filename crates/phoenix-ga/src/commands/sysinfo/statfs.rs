//! Filesystem sizes with a deadline.
//!
//! statvfs(2) on a network filesystem whose server is gone blocks in the kernel, for
//! minutes or for ever, and no signal or timeout of ours can cut it short. So each
//! call runs on a short-lived thread of its own and the reply waits for all of them
//! until one shared deadline; a filesystem that has not answered by then is reported
//! without sizes. Its thread stays blocked in the kernel; while it does, later calls
//! skip that mountpoint instead of starting another thread, so hung threads never
//! number more than the hung mountpoints.

use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;

/// How long a reply waits for statvfs.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// A statvfs thread only makes one system call.
const STACK: usize = 64 * 1024;

/// Sizes of one filesystem in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    /// All data blocks.
    pub total: u64,
    /// Total minus free (blocks reserved for root count as used, as in df).
    pub used: u64,
    /// Free to unprivileged users.
    pub avail: u64,
}

impl Sizes {
    /// From statvfs counts, which are in units of the fragment size `frsize`.
    pub fn from_blocks(frsize: u64, blocks: u64, bfree: u64, bavail: u64) -> Self {
        let kib =
            |n: u64| u64::try_from(u128::from(n) * u128::from(frsize) / 1024).unwrap_or(u64::MAX);
        let total = kib(blocks);
        Sizes {
            total,
            used: total.saturating_sub(kib(bfree)),
            avail: kib(bavail),
        }
    }
}

/// statvfs(2) of `path`, in KiB.
pub fn statvfs(path: &str) -> nix::Result<Sizes> {
    let st = nix::sys::statvfs::statvfs(path)?;
    // Linux reports sizes in fragments; f_frsize is 0 only on ancient kernels.
    let frsize = match st.fragment_size() {
        0 => st.block_size(),
        n => n,
    };
    Ok(Sizes::from_blocks(
        frsize,
        st.blocks(),
        st.blocks_free(),
        st.blocks_available(),
    ))
}

/// The mountpoints whose statvfs has not returned yet, shared with their threads.
#[derive(Debug, Default)]
pub struct Prober {
    in_flight: Arc<Mutex<HashSet<String>>>,
}

/// Why a filesystem has no sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// It did not answer before the deadline.
    TimedOut,
    /// An earlier call on it is still blocked; no new one was started.
    StillHung,
    /// statvfs failed (the mount went away meanwhile, ...).
    Failed(Errno),
    /// No thread could be started.
    NoThread,
}

impl Prober {
    /// statvfs of every mountpoint, concurrently, waiting at most `timeout` in all.
    pub fn sizes(&self, mountpoints: &[&str], timeout: Duration) -> Vec<Result<Sizes, Missing>> {
        self.sizes_with(mountpoints, timeout, statvfs)
    }

    /// [`Prober::sizes`] with the probe as a parameter, so that tests can hang one.
    pub fn sizes_with<F>(
        &self,
        mountpoints: &[&str],
        timeout: Duration,
        probe: F,
    ) -> Vec<Result<Sizes, Missing>>
    where
        F: Fn(&str) -> nix::Result<Sizes> + Clone + Send + 'static,
    {
        let deadline = Instant::now() + timeout;
        let mut results: Vec<Result<Sizes, Missing>> =
            vec![Err(Missing::TimedOut); mountpoints.len()];
        let (tx, rx) = mpsc::channel();
        let mut waiting = 0;
        for (i, &mp) in mountpoints.iter().enumerate() {
            if !self.lock().insert(mp.to_string()) {
                results[i] = Err(Missing::StillHung);
                continue;
            }
            let (tx, probe, in_flight) = (tx.clone(), probe.clone(), self.in_flight.clone());
            let key = mp.to_string();
            let spawned = std::thread::Builder::new()
                .name("statvfs".into())
                .stack_size(STACK)
                .spawn(move || {
                    let r = probe(&key);
                    in_flight
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&key);
                    // The reply may have gone out without us: nobody to tell.
                    let _ = tx.send((i, r));
                });
            match spawned {
                Ok(_) => waiting += 1,
                Err(_) => {
                    self.lock().remove(mp);
                    results[i] = Err(Missing::NoThread);
                }
            }
        }
        while waiting > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((i, r)) => {
                    results[i] = r.map_err(Missing::Failed);
                    waiting -= 1;
                }
                Err(_) => break,
            }
        }
        results
    }

    /// How many statvfs calls have not returned.
    pub fn hung(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn sizes_as_the_reference_example() {
        // 4 KiB blocks; 5 % reserved for root makes used + avail < total.
        let s = Sizes::from_blocks(4096, 1_282_752, 1_127_277, 1_057_648);
        assert_eq!(
            s,
            Sizes {
                total: 5_131_008,
                used: 621_900,
                avail: 4_230_592
            }
        );
        // 512-byte fragments round down to whole KiB; huge counts do not overflow.
        assert_eq!(Sizes::from_blocks(512, 3, 1, 1).total, 1);
        assert_eq!(Sizes::from_blocks(1 << 20, u64::MAX, 0, 0).total, u64::MAX);
    }

    #[test]
    fn live_root() {
        let s = statvfs("/").unwrap();
        assert!(s.total > 0 && s.used <= s.total && s.avail <= s.total);
        assert_eq!(statvfs("/nonexistent/x"), Err(Errno::ENOENT));
    }

    #[test]
    fn a_hung_filesystem_costs_one_thread_and_a_timeout() {
        let prober = Prober::default();
        let calls = Arc::new(AtomicUsize::new(0));
        // "/dead" blocks until the test lets it go, like a dead NFS server.
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let probe = {
            let calls = calls.clone();
            move |mp: &str| {
                calls.fetch_add(1, Ordering::SeqCst);
                match mp {
                    "/dead" => {
                        let _ = gate.lock().unwrap().recv();
                        Ok(Sizes::default())
                    }
                    "/gone" => Err(Errno::ENOENT),
                    _ => Ok(Sizes::from_blocks(1024, 10, 4, 3)),
                }
            }
        };
        let ok = Ok(Sizes {
            total: 10,
            used: 6,
            avail: 3,
        });
        let short = Duration::from_millis(100);
        let r = prober.sizes_with(&["/", "/dead", "/gone"], short, probe.clone());
        assert_eq!(
            r,
            [
                ok,
                Err(Missing::TimedOut),
                Err(Missing::Failed(Errno::ENOENT))
            ]
        );
        assert_eq!(prober.hung(), 1);
        // While it hangs, no second thread is started for it.
        let r = prober.sizes_with(&["/dead", "/"], short, probe.clone());
        assert_eq!(r, [Err(Missing::StillHung), ok]);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Once it returns, it is probed again.
        release.send(()).unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while prober.hung() > 0 {
            assert!(Instant::now() < until, "the released probe did not finish");
            std::thread::sleep(Duration::from_millis(5));
        }
        release.send(()).unwrap();
        let r = prober.sizes_with(&["/dead"], Duration::from_secs(30), probe);
        assert_eq!(r, [Ok(Sizes::default())]);
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }
}
