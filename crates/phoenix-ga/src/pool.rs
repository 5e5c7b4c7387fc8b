//! The worker pool that runs commands concurrently, so a slow command (a big md5, a
//! freeze) never delays `ping`.
//!
//! Work in flight is bounded twice: by request count and by request bytes. When either
//! budget is spent, `submit` blocks the reader thread, which stops reading the port;
//! the host then sees back-pressure instead of the agent running out of memory or
//! threads. Workers are started on demand up to a maximum and then kept: an idle worker
//! sleeps on a condition variable and costs no CPU.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

/// Bytes of requests in flight past which the reader waits (a single request larger
/// than this still runs, alone).
pub const MAX_IN_FLIGHT_BYTES: usize = 256 << 20;

/// Stack of a worker thread: commands are shallow; serde_json limits recursion.
const WORKER_STACK: usize = 256 << 10;

/// A bounded, lazily grown pool of worker threads.
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when a job is queued.
    work: Condvar,
    /// Signalled when a job finishes (room for more, or idle).
    room: Condvar,
    max_workers: usize,
    max_in_flight: usize,
    /// A large request or reply went through since the heap was last trimmed.
    large: AtomicBool,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(Job, usize)>,
    workers: usize,
    idle: usize,
    in_flight: usize,
    bytes: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Pool {
    /// A pool of at most `max_workers` threads and `max_in_flight` unfinished jobs.
    pub fn new(max_workers: usize, max_in_flight: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                room: Condvar::new(),
                max_workers,
                max_in_flight: max_in_flight.max(1),
                large: AtomicBool::new(false),
            }),
        }
    }

    /// Queues `job`, which holds `bytes` of request data, blocking while the pool is
    /// at its limits.
    pub fn submit(&self, bytes: usize, job: impl FnOnce() + Send + 'static) {
        let inner = &self.inner;
        let mut st = inner.lock();
        while st.in_flight >= inner.max_in_flight
            || (st.bytes > 0 && st.bytes + bytes > MAX_IN_FLIGHT_BYTES)
        {
            st = inner.room.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.in_flight += 1;
        st.bytes += bytes;
        st.queue.push_back((Box::new(job), bytes));
        if st.queue.len() > st.idle && st.workers < inner.max_workers {
            st.workers += 1;
            let worker = Arc::clone(inner);
            let spawned = thread::Builder::new()
                .name("worker".into())
                .stack_size(WORKER_STACK)
                .spawn(move || run_worker(&worker));
            if let Err(e) = spawned {
                st.workers -= 1;
                tracing::error!(error = %e, "cannot start a worker thread");
                if st.workers == 0 {
                    // No thread at all: run it here rather than never.
                    let (job, bytes) = st.queue.pop_back().expect("just queued");
                    drop(st);
                    run_job(inner, job, bytes);
                }
            }
        } else {
            inner.work.notify_one();
        }
    }

    /// Notes that a large request or reply (a transfer chunk) was handled, so the heap
    /// is trimmed when the pool next goes idle.
    pub fn note_large(&self) {
        self.inner.large.store(true, Ordering::Relaxed);
    }

    /// Waits until no job is queued or running, at most `timeout`; true if idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        while st.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .inner
                .room
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Number of worker threads started so far.
    #[cfg(test)]
    pub fn workers(&self) -> usize {
        self.inner.lock().workers
    }
}

fn run_worker(inner: &Inner) {
    loop {
        let (job, bytes) = {
            let mut st = inner.lock();
            loop {
                if let Some(job) = st.queue.pop_front() {
                    break job;
                }
                st.idle += 1;
                st = inner.work.wait(st).unwrap_or_else(|p| p.into_inner());
                st.idle -= 1;
            }
        };
        run_job(inner, job, bytes);
    }
}

/// Runs a job, then gives its place and its bytes back to the budget.
fn run_job(inner: &Inner, job: Job, bytes: usize) {
    job();
    let mut st = inner.lock();
    st.in_flight -= 1;
    st.bytes -= bytes;
    let idle = st.in_flight == 0;
    inner.room.notify_all();
    drop(st);
    if idle && inner.large.swap(false, Ordering::Relaxed) {
        trim();
    }
}

/// Gives the heap's free memory back to the kernel once a burst of large work (md5
/// buffers, big listings, transfer lines kept by the framer) is over, so the agent's
/// RSS returns near its start-up size.
fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_jobs_concurrently_up_to_max_workers() {
        let pool = Pool::new(4, 100);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        for _ in 0..20 {
            let (r, p) = (running.clone(), peak.clone());
            pool.submit(1, move || {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(20));
                r.fetch_sub(1, Ordering::SeqCst);
            });
        }
        assert!(pool.wait_idle(Duration::from_secs(10)));
        assert!(pool.workers() <= 4);
        assert!(peak.load(Ordering::SeqCst) >= 2, "jobs ran one at a time");
    }

    #[test]
    fn submit_blocks_at_the_in_flight_limit() {
        let pool = Arc::new(Pool::new(1, 2));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..2 {
            let rx = rx.clone();
            pool.submit(0, move || {
                let _ = rx.lock().unwrap().recv();
            });
        }
        let submitted = Arc::new(AtomicUsize::new(0));
        let (p, s) = (pool.clone(), submitted.clone());
        let t = thread::spawn(move || {
            p.submit(0, || {});
            s.store(1, Ordering::SeqCst);
        });
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            submitted.load(Ordering::SeqCst),
            0,
            "third job was not held back"
        );
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        t.join().unwrap();
        assert!(pool.wait_idle(Duration::from_secs(5)));
    }

    #[test]
    fn wait_idle_times_out_on_a_stuck_job() {
        let pool = Pool::new(1, 4);
        pool.submit(0, || thread::sleep(Duration::from_millis(300)));
        assert!(!pool.wait_idle(Duration::from_millis(20)));
        assert!(pool.wait_idle(Duration::from_secs(5)));
    }
}
