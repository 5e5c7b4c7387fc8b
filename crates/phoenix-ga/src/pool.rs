//! The worker pool that runs commands concurrently, so a slow command (a big md5, a
//! freeze) never delays `ping`.
//!
//! Work in flight is bounded twice: by request count and by request bytes. When either
//! budget is spent, `submit` blocks the reader thread, which stops reading the port;
//! the host then sees back-pressure instead of the agent running out of memory or
//! threads. Workers are started on demand up to a maximum and then kept: an idle worker
//! sleeps on a condition variable and costs no CPU.
//!
//! Jobs may be given a lane: the jobs of one lane run one at a time, in the order they
//! were submitted (a connection's `file-read`s and `file-write`s, which a host may send
//! without waiting for each reply), while other jobs and other lanes run beside them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::memory;
use crate::sync::{lock, wait, wait_timeout};

type Job = Box<dyn FnOnce() + Send>;

/// Bytes of requests in flight past which the reader waits (a single request larger
/// than this still runs, alone).
pub const MAX_IN_FLIGHT_BYTES: usize = 256 << 20;

/// Stack of a worker thread: commands are shallow; serde_json limits recursion.
const WORKER_STACK: usize = 256 << 10;

/// A bounded, lazily grown pool of worker threads.
#[derive(Debug)]
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
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("max_workers", &self.max_workers)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// Names a lane: jobs of the same lane run one at a time, in submission order. The
/// dispatcher uses (connection, handle).
pub type Lane = (usize, u64);

/// What a worker takes from the queue.
enum Task {
    /// One job and its request bytes.
    Job(Job, usize),
    /// The jobs of a lane, one after the other, until it is empty.
    Lane(Lane),
}

#[derive(Default)]
struct State {
    queue: VecDeque<Task>,
    /// Lanes with a [`Task::Lane`] queued or running, and their waiting jobs.
    lanes: HashMap<Lane, VecDeque<(Job, usize)>>,
    workers: usize,
    idle: usize,
    in_flight: usize,
    bytes: usize,
    /// An idle worker is waiting out [`memory::IDLE`] to trim.
    trimming: bool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
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
            }),
        }
    }

    /// Queues `job`, which holds `bytes` of request data, blocking while the pool is
    /// at its limits.
    pub fn submit(&self, bytes: usize, job: impl FnOnce() + Send + 'static) {
        let mut st = self.reserve(bytes);
        st.queue.push_back(Task::Job(Box::new(job), bytes));
        self.start_task(st);
    }

    /// Queues `job` on `lane`: it runs after every job submitted to that lane before
    /// it has finished. Blocks like [`Pool::submit`].
    pub fn submit_in(&self, lane: Lane, bytes: usize, job: impl FnOnce() + Send + 'static) {
        let mut st = self.reserve(bytes);
        let job: Job = Box::new(job);
        if let Some(waiting) = st.lanes.get_mut(&lane) {
            waiting.push_back((job, bytes));
            return;
        }
        st.lanes.insert(lane, VecDeque::from([(job, bytes)]));
        st.queue.push_back(Task::Lane(lane));
        self.start_task(st);
    }

    /// Whether `lane` has no job queued or running.
    pub fn lane_idle(&self, lane: Lane) -> bool {
        !self.inner.lock().lanes.contains_key(&lane)
    }

    /// Waits for room in the budgets and takes a place for a job of `bytes`.
    fn reserve(&self, bytes: usize) -> MutexGuard<'_, State> {
        let inner = &self.inner;
        let mut st = inner.lock();
        while st.in_flight >= inner.max_in_flight
            || (st.bytes > 0 && st.bytes + bytes > MAX_IN_FLIGHT_BYTES)
        {
            st = wait(&inner.room, st);
        }
        st.in_flight += 1;
        st.bytes += bytes;
        st
    }

    /// Gets the task just queued running: wakes an idle worker, or starts one.
    fn start_task(&self, mut st: MutexGuard<'_, State>) {
        let inner = &self.inner;
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
                    let task = st.queue.pop_back().expect("just queued");
                    drop(st);
                    run_task(inner, task);
                }
            }
        } else {
            inner.work.notify_one();
        }
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
            st = wait_timeout(&self.inner.room, st, left).0;
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
        let task = {
            let mut st = inner.lock();
            loop {
                if let Some(task) = st.queue.pop_front() {
                    break task;
                }
                st.idle += 1;
                if st.in_flight == 0 && !st.trimming && memory::trim_due() {
                    // After large work, one idle worker trims the memory once the pool
                    // has stayed idle for memory::IDLE.
                    st.trimming = true;
                    let (guard, timed_out) = wait_timeout(&inner.work, st, memory::IDLE);
                    st = guard;
                    st.trimming = false;
                    if timed_out && st.in_flight == 0 {
                        drop(st);
                        memory::trim();
                        st = inner.lock();
                    }
                } else {
                    st = wait(&inner.work, st);
                }
                st.idle -= 1;
            }
        };
        run_task(inner, task);
    }
}

fn run_task(inner: &Inner, task: Task) {
    match task {
        Task::Job(job, bytes) => {
            job();
            finished(inner, &mut inner.lock(), bytes);
        }
        Task::Lane(lane) => {
            let mut st = inner.lock();
            loop {
                let waiting = st.lanes.get_mut(&lane).expect("a queued lane is known");
                let Some((job, bytes)) = waiting.pop_front() else {
                    // In the same critical section as the last job's accounting: an
                    // idle pool has no lane left.
                    st.lanes.remove(&lane);
                    break;
                };
                drop(st);
                job();
                st = inner.lock();
                finished(inner, &mut st, bytes);
            }
        }
    }
}

/// Gives a finished job's place and bytes back to the budget.
fn finished(inner: &Inner, st: &mut State, bytes: usize) {
    st.in_flight -= 1;
    st.bytes -= bytes;
    inner.room.notify_all();
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
    fn a_lane_runs_its_jobs_in_order_beside_other_work() {
        let pool = Pool::new(4, 1000);
        let order = Arc::new(Mutex::new(Vec::new()));
        // Lane (1, 1) starts with a job that waits for lane (1, 2)'s first job: it
        // only finishes if the two lanes run side by side.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let got = Arc::new(AtomicUsize::new(0));
        let g = got.clone();
        pool.submit_in((1, 1), 1, move || {
            if rx.recv_timeout(Duration::from_secs(10)).is_ok() {
                g.store(1, Ordering::SeqCst);
            }
        });
        pool.submit_in((1, 2), 1, move || tx.send(()).unwrap());
        for i in 0..200 {
            for lane in [(1, 1), (1, 2)] {
                let o = order.clone();
                pool.submit_in(lane, 1, move || {
                    if i % 7 == 0 {
                        thread::yield_now();
                    }
                    o.lock().unwrap().push((lane, i));
                });
            }
        }
        assert!(pool.wait_idle(Duration::from_secs(30)));
        assert_eq!(
            got.load(Ordering::SeqCst),
            1,
            "the lanes ran one after the other"
        );
        let order = order.lock().unwrap();
        for lane in [(1, 1), (1, 2)] {
            let seen: Vec<_> = order
                .iter()
                .filter(|(l, _)| *l == lane)
                .map(|x| x.1)
                .collect();
            assert_eq!(
                seen,
                (0..200).collect::<Vec<_>>(),
                "lane {lane:?} out of order"
            );
        }
        assert!(pool.inner.lock().lanes.is_empty());
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
    fn memory_is_trimmed_once_idle_after_large_work() {
        let _alone = lock(&memory::TEST_LOCK);
        let pool = Arc::new(Pool::new(2, 8));
        pool.submit(0, memory::note_large);
        assert!(pool.wait_idle(Duration::from_secs(5)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while memory::trim_due() {
            assert!(Instant::now() < deadline, "never trimmed");
            thread::sleep(Duration::from_millis(10));
        }
        assert!(!pool.inner.lock().trimming);
    }

    #[test]
    fn wait_idle_times_out_on_a_stuck_job() {
        let pool = Pool::new(1, 4);
        pool.submit(0, || thread::sleep(Duration::from_millis(300)));
        assert!(!pool.wait_idle(Duration::from_millis(20)));
        assert!(pool.wait_idle(Duration::from_secs(5)));
    }
}
