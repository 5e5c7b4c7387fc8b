//! Filesystem sizes with a deadline.
//!
//! statvfs(2) on a network filesystem whose server is gone blocks in the kernel, for
//! minutes or for ever, and no signal or timeout of ours can cut it short (NFS and FUSE
//! wait killably, not interruptibly). So the calls run on a prober thread and the reply
//! waits for them until one deadline; a filesystem that has not answered by then is
//! reported without sizes.
//!
//! The prober thread is kept between replies (starting a thread per reply cost more
//! than the rest of `sysinfo`). When it misses a deadline it is stuck in the kernel on
//! one mountpoint: it is abandoned (it exits if that call ever returns) and the next
//! reply starts a fresh one. A mountpoint whose call is still blocked is skipped, not
//! probed again, so stuck threads never number more than the hung mountpoints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::lock;
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

/// What the prober calls for one mountpoint (statvfs, or a stand-in in tests).
type Probe<T> = Arc<dyn Fn(&str) -> nix::Result<T> + Send + Sync>;

/// One reply's batch for the prober thread.
struct Job<T> {
    /// (index in the reply's list, mountpoint).
    mountpoints: Vec<(usize, String)>,
    /// Where each result goes as soon as it is known.
    results: mpsc::Sender<(usize, nix::Result<T>)>,
    /// Set when the reply went out without the rest: skip what is left.
    cancelled: Arc<AtomicBool>,
}

/// The current prober thread: its queue and a number that tells it from the threads
/// abandoned before it.
struct Worker<T> {
    generation: u64,
    jobs: mpsc::Sender<Job<T>>,
}

/// Runs statvfs with a deadline, on a prober thread it keeps (see the module docs).
/// What a probe returns is [`Sizes`] unless the user wants other figures of statvfs
/// (the storage family: exact bytes).
pub struct Prober<T = Sizes> {
    probe: Probe<T>,
    /// Mountpoints whose call is in the kernel right now; `true` once a reply gave
    /// up waiting for it (it is hung). Locked after `worker` when both are held.
    in_flight: Arc<Mutex<HashMap<String, bool>>>,
    worker: Mutex<Option<Worker<T>>>,
    generations: AtomicU64,
}

impl Default for Prober {
    fn default() -> Self {
        Self::with_probe(statvfs)
    }
}

impl<T> std::fmt::Debug for Prober<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("in_flight", &*lock(&self.in_flight))
            .finish_non_exhaustive()
    }
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
    /// No prober thread could be started.
    NoThread,
}

impl<T: Clone + Send + 'static> Prober<T> {
    /// A prober that calls `probe` instead of statvfs (tests hang it at will).
    pub fn with_probe(probe: impl Fn(&str) -> nix::Result<T> + Send + Sync + 'static) -> Self {
        Prober {
            probe: Arc::new(probe),
            in_flight: Arc::default(),
            worker: Mutex::new(None),
            generations: AtomicU64::new(0),
        }
    }

    /// The sizes of every mountpoint, waiting at most `timeout` in all.
    pub fn sizes(&self, mountpoints: &[&str], timeout: Duration) -> Vec<Result<T, Missing>> {
        let deadline = Instant::now() + timeout;
        let mut results = vec![Err(Missing::TimedOut); mountpoints.len()];
        // The worker lock is held from the check to the hand-over, so that no reply
        // starts a thread for a mountpoint another reply is just giving up on.
        let mut worker = lock(&self.worker);
        let mut todo = Vec::new();
        {
            let in_flight = lock(&self.in_flight);
            for (i, &mp) in mountpoints.iter().enumerate() {
                // A call that another reply started a moment ago is merely running.
                if in_flight.get(mp) == Some(&true) {
                    results[i] = Err(Missing::StillHung);
                } else {
                    todo.push((i, mp.to_string()));
                }
            }
        }
        if todo.is_empty() {
            return results;
        }
        let (tx, rx) = mpsc::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let asked: Vec<String> = todo.iter().map(|(_, mp)| mp.clone()).collect();
        let mut waiting = todo.len();
        let job = Job {
            mountpoints: todo,
            results: tx,
            cancelled: cancelled.clone(),
        };
        let Some(generation) = self.submit(&mut worker, job) else {
            for r in results
                .iter_mut()
                .filter(|r| matches!(r, Err(Missing::TimedOut)))
            {
                *r = Err(Missing::NoThread);
            }
            return results;
        };
        drop(worker);
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
        if waiting > 0 {
            // The prober is stuck in the kernel: mark its call hung, leave the thread
            // and start afresh next time.
            cancelled.store(true, Ordering::SeqCst);
            let mut worker = lock(&self.worker);
            let mut in_flight = lock(&self.in_flight);
            for mp in &asked {
                if let Some(hung) = in_flight.get_mut(mp) {
                    *hung = true;
                }
            }
            drop(in_flight);
            if worker.as_ref().is_some_and(|w| w.generation == generation) {
                *worker = None;
            }
        }
        results
    }

    /// Queues `job` on the prober thread, starting one if there is none (or it is
    /// gone); the thread's generation, or `None` when no thread could be started.
    fn submit(&self, worker: &mut Option<Worker<T>>, mut job: Job<T>) -> Option<u64> {
        if let Some(w) = worker.as_ref() {
            match w.jobs.send(job) {
                Ok(()) => return Some(w.generation),
                Err(mpsc::SendError(j)) => job = j,
            }
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let (jobs, queue) = mpsc::channel::<Job<T>>();
        let (probe, in_flight) = (self.probe.clone(), self.in_flight.clone());
        let spawned = std::thread::Builder::new()
            .name("statvfs".into())
            .stack_size(STACK)
            .spawn(move || run(&queue, &*probe, &in_flight));
        match spawned {
            Ok(_) => {
                jobs.send(job).ok()?;
                *worker = Some(Worker { generation, jobs });
                Some(generation)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a statvfs thread");
                *worker = None;
                None
            }
        }
    }

    /// How many statvfs calls have not returned.
    pub fn hung(&self) -> usize {
        lock(&self.in_flight).len()
    }
}

/// The prober thread: runs jobs until its queue is dropped.
fn run<T>(
    queue: &mpsc::Receiver<Job<T>>,
    probe: &(dyn Fn(&str) -> nix::Result<T> + Send + Sync),
    in_flight: &Mutex<HashMap<String, bool>>,
) {
    for job in queue {
        for (i, mp) in job.mountpoints {
            if job.cancelled.load(Ordering::SeqCst) {
                break;
            }
            lock(in_flight).insert(mp.clone(), false);
            let r = probe(&mp);
            lock(in_flight).remove(&mp);
            // The reply may have gone out without us: nobody to tell.
            let _ = job.results.send((i, r));
        }
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

    /// A probe whose `mp` blocks until the test sends on the returned channel, like a
    /// dead NFS server; other mountpoints answer at once. Counts its calls.
    fn gated(hang: &'static str) -> (Prober, mpsc::Sender<()>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let counter = calls.clone();
        let prober = Prober::with_probe(move |mp: &str| {
            counter.fetch_add(1, Ordering::SeqCst);
            match mp {
                _ if mp == hang => {
                    let _ = gate.lock().unwrap().recv();
                    Ok(Sizes::default())
                }
                "/gone" => Err(Errno::ENOENT),
                _ => Ok(Sizes::from_blocks(1024, 10, 4, 3)),
            }
        });
        (prober, release, calls)
    }

    const OK: Result<Sizes, Missing> = Ok(Sizes {
        total: 10,
        used: 6,
        avail: 3,
    });

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(Instant::now() < until, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_hung_filesystem_costs_one_thread_and_a_timeout() {
        let (prober, release, calls) = gated("/dead");
        let short = Duration::from_millis(100);
        let r = prober.sizes(&["/", "/gone", "/dead"], short);
        assert_eq!(
            r,
            [
                OK,
                Err(Missing::Failed(Errno::ENOENT)),
                Err(Missing::TimedOut)
            ]
        );
        assert_eq!(prober.hung(), 1);
        // While it hangs, it is not probed again; the others get a fresh thread.
        let r = prober.sizes(&["/dead", "/"], short);
        assert_eq!(r, [Err(Missing::StillHung), OK]);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Once it returns, it is probed again.
        release.send(()).unwrap();
        wait_until("the released probe did not finish", || prober.hung() == 0);
        release.send(()).unwrap();
        let r = prober.sizes(&["/dead"], Duration::from_secs(30));
        assert_eq!(r, [Ok(Sizes::default())]);
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_call_in_progress_is_not_taken_for_hung() {
        let (prober, release, _) = gated("/slow");
        let prober = Arc::new(prober);
        let long = Duration::from_secs(30);
        let first = {
            let prober = prober.clone();
            std::thread::spawn(move || prober.sizes(&["/slow"], long))
        };
        wait_until("the first probe did not start", || prober.hung() == 1);
        // A concurrent reply queues behind it instead of reporting it hung.
        let second = {
            let prober = prober.clone();
            std::thread::spawn(move || prober.sizes(&["/slow", "/"], long))
        };
        release.send(()).unwrap();
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap(), [Ok(Sizes::default())]);
        assert_eq!(second.join().unwrap(), [Ok(Sizes::default()), OK]);
    }
}
