//! The freezer: FIFREEZE/FITHAW, what is frozen, and every way out of a freeze.
//!
//! Kernel facts that shape it:
//! - FIFREEZE on a directory descriptor syncs that filesystem and blocks every later
//!   write to it until FITHAW; a writer blocked there is in uninterruptible sleep (not
//!   even SIGKILL ends it). A second FIFREEZE gets EBUSY; FITHAW of a filesystem that
//!   is not frozen gets EINVAL; tmpfs and the like get EOPNOTSUPP.
//! - Path lookup and open(O_RDONLY) of a directory on a frozen filesystem do not block
//!   (atime updates are skipped while frozen), but anything that writes does. So the
//!   agent keeps the descriptor it froze through and thaws through it: the thaw path
//!   opens and writes nothing on a frozen filesystem. The freezer closes the agent's
//!   frozen [`Gate`] before the first FIFREEZE, which keeps disk-bound commands out
//!   and holds log lines in memory, and opens it once everything is thawed.
//!
//! - A filesystem may write through another (an image on a loop device): freezing the
//!   lower one first can leave the upper one's FIFREEZE or FITHAW blocked for good.
//!   Targets therefore come last-mounted first (see `mounts`), and thaw in reverse.
//!
//! The fsfreeze hook ([`Hook`], `-F`) runs before the first FIFREEZE, still under the
//! operation lock and with the gate open, and its thaw counterpart after the gate
//! opens again, whichever way out the freeze took.
//!
//! Ways out, so a guest is never left frozen: `fs-unfreeze`; the auto-thaw timer
//! (`--freeze-timeout`); the exit path (SIGTERM, SIGINT, agent-shutdown: the family's
//! exit hook thaws before anything else); the panic hook; a failed freeze rolls itself back
//! (also when it panics); and the marker file lets a restarted agent thaw what a
//! killed one froze.
//!
//! Two locks: `op` serialises freeze and thaw operations (held across the ioctls);
//! `state` guards the bookkeeping and is only ever held for a few instructions, so
//! `get-freeze-status` never waits behind a slow sync, and a thaw that cannot get
//! `op` soon (a FIFREEZE stuck in the kernel) thaws through the recorded descriptors.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::hook::Hook;
use super::ioctl::{fifreeze, open_dir, thaw_list, Frozen, Thawed};
use super::marker;
use crate::error::{Context, Error};
use crate::gate::Gate;
use crate::sync::{lock, lock_within, wait, wait_timeout};

/// How long a thaw waits for a freeze in progress before thawing under it.
const THAW_WAIT: Duration = Duration::from_millis(500);

/// How long the exit and panic paths wait for a freeze or thaw in progress.
const EMERGENCY_WAIT: Duration = Duration::from_secs(2);

/// How long the exit waits for a cancelled freeze still inside FIFREEZE to end.
const EXIT_FREEZE_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct State {
    /// In freeze order; thawed in reverse.
    frozen: Vec<Frozen>,
    /// What `get-freeze-status` reports: a freeze completed (or was recovered) and
    /// has not been thawed.
    status: bool,
    /// A freeze is in progress.
    freezing: bool,
    /// The freeze in progress must stop and roll back (fs-unfreeze or exit came).
    cancel: bool,
    /// The agent is exiting: no new freeze.
    exiting: bool,
    /// Counts freezes, so the timer never thaws a later freeze than the one it timed.
    generation: u64,
    /// When the auto-thaw fires.
    deadline: Option<Instant>,
    /// When a host last asked for a thaw: a freeze asked for before it, still waiting
    /// for a worker when the thaw ran, must not freeze afterwards.
    thaw_asked: Option<Instant>,
}

/// The freeze state of the agent: what is frozen, through which descriptors, until when.
#[derive(Debug)]
pub struct Freezer {
    op: Mutex<()>,
    state: Mutex<State>,
    /// Wakes the auto-thaw timer when a deadline is set.
    wake: Condvar,
    marker: PathBuf,
    timeout: Option<Duration>,
    gate: Arc<Gate>,
    hook: Option<Arc<Hook>>,
}

/// Rolls a freeze back unless it was committed: on an error return and on a panic.
struct Txn<'a> {
    freezer: &'a Freezer,
    committed: bool,
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let list = {
            let mut st = lock(&self.freezer.state);
            st.freezing = false;
            std::mem::take(&mut st.frozen)
        };
        let n = list.len();
        let done = thaw_list(list);
        if let Some(e) = &done.error {
            tracing::error!(error = %e.message(), "fs-freeze rollback could not thaw everything");
        } else if n > 0 {
            tracing::info!(filesystems = n, "fs-freeze rolled back");
        }
        self.freezer.settle(done.left);
    }
}

impl Freezer {
    /// A freezer keeping its marker in `state_dir`, thawing by itself after
    /// `timeout_secs` (0: never), closing `gate` while anything is (being) frozen, and
    /// running `hook` around each freeze.
    pub fn new(state_dir: &Path, timeout_secs: u64, gate: Arc<Gate>, hook: Option<Hook>) -> Self {
        Self {
            op: Mutex::new(()),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            marker: state_dir.join(marker::NAME),
            timeout: (timeout_secs > 0).then(|| Duration::from_secs(timeout_secs)),
            gate,
            hook: hook.map(Arc::new),
        }
    }

    /// The fsfreeze hook, if one is configured.
    pub fn hook(&self) -> Option<&Arc<Hook>> {
        self.hook.as_ref()
    }

    /// When a freeze starting now thaws by itself (`None`: never, also for a timeout
    /// too large to represent).
    fn deadline(&self) -> Option<Instant> {
        self.timeout.and_then(|t| Instant::now().checked_add(t))
    }

    /// Notes that a host asked for a thaw now (see [`Freezer::freeze`]).
    pub fn note_thaw_asked(&self) {
        lock(&self.state).thaw_asked = Some(Instant::now());
    }

    /// Whether a freeze is in force: one completed (or a previous agent's was
    /// recovered) and has not been thawed. (The gate closes earlier, while a freeze is
    /// still in progress.)
    pub fn in_force(&self) -> bool {
        lock(&self.state).status
    }

    /// The current freeze's number (tests: the timer's view).
    #[cfg(test)]
    pub fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    /// Holds the operation lock, as a freeze stuck in FIFREEZE would (tests).
    #[cfg(test)]
    pub fn hold_op(&self) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.op)
    }

    /// Whether the auto-thaw is enabled.
    pub fn has_timeout(&self) -> bool {
        self.timeout.is_some()
    }

    /// Freezes `targets` (mount points) in order. With `strict` (an explicit list)
    /// every failure is an error; otherwise EOPNOTSUPP and EBUSY from one filesystem
    /// are skipped (docs/commands/freeze.md). On an error everything frozen by this call is
    /// thawed again before the reply. Returns how many filesystems were frozen.
    ///
    /// The fsfreeze hook, when there is one and something to freeze, runs first: if it
    /// fails, nothing is frozen. Its thaw counterpart runs once this freeze is undone
    /// (by a thaw, or by the rollback of an error).
    ///
    /// `asked_at` is when the host's request was read: a freeze a thaw was asked for
    /// after (it waited for a worker, or behind other requests of its qemu-ga
    /// connection) is refused with ECANCELED, since the host that thawed means nothing
    /// to stay frozen; qemu-ga, serial, would have frozen and then thawed.
    pub fn freeze(&self, targets: &[PathBuf], strict: bool, asked_at: Instant) -> Result<usize, Error> {
        let _op = lock(&self.op);
        {
            let mut st = lock(&self.state);
            if st.exiting {
                return Err(Error::errno(
                    Errno::ESHUTDOWN,
                    "fs-freeze: the agent is exiting",
                ));
            }
            if st.thaw_asked.is_some_and(|t| t > asked_at) {
                return Err(Error::errno(
                    Errno::ECANCELED,
                    "fs-freeze: a thaw was asked for after this freeze; not freezing",
                ));
            }
            if st.status {
                return Err(already_frozen());
            }
            st.freezing = true;
            st.cancel = false;
            // The auto-thaw covers the freeze in progress too: a FIFREEZE that never
            // returns (a filesystem whose writes depend on one already frozen) is
            // undone by the timer's forced thaw.
            st.generation += 1;
            st.deadline = self.deadline();
        }
        self.wake.notify_all();
        // From here on, any return but the commit undoes the freeze (and runs the thaw
        // hook if the freeze hook ran).
        let mut txn = Txn {
            freezer: self,
            committed: false,
        };
        if let Some(hook) = self.hook.as_ref().filter(|_| !targets.is_empty()) {
            hook.freeze()?;
            self.check_cancel()?;
        }
        marker::write(&self.marker, targets).map_err(|e| {
            Error::os(
                format!("fs-freeze: write marker {}", self.marker.display()),
                e,
            )
        })?;
        // Close the gate and hold the log before the first filesystem stops.
        self.gate.close();
        let mut devices = HashSet::new();
        for mp in targets {
            self.check_cancel()?;
            let dir = open_dir(mp).context(|| format!("freeze {}", mp.display()))?;
            let dev = dir
                .metadata()
                .context(|| format!("freeze {}", mp.display()))?
                .dev();
            if !devices.insert(dev) {
                continue;
            }
            match fifreeze(&dir) {
                Ok(()) => lock(&self.state).frozen.push(Frozen {
                    mountpoint: mp.clone(),
                    dir: Some(dir),
                }),
                Err(e @ (Errno::EOPNOTSUPP | Errno::EBUSY)) if !strict => {
                    tracing::debug!(mountpoint = %mp.display(), error = %e.desc(), "not frozen, skipped");
                }
                Err(e) => return Err(e).context(|| format!("freeze {}", mp.display())),
            }
        }
        let n = {
            let mut st = lock(&self.state);
            // Checked under the same lock as the commit: an exit or fs-unfreeze that
            // came during the last FIFREEZE rolls this freeze back.
            if st.cancel {
                drop(st);
                return Err(cancelled());
            }
            st.status = true;
            st.freezing = false;
            st.frozen.len()
        };
        txn.committed = true;
        self.wake.notify_all();
        tracing::info!(filesystems = n, "frozen");
        Ok(n)
    }

    fn check_cancel(&self) -> Result<(), Error> {
        match lock(&self.state).cancel {
            true => Err(cancelled()),
            false => Ok(()),
        }
    }

    /// Thaws everything frozen, in reverse order of freezing; a freeze in progress is
    /// cancelled (and rolls itself back). With `generation`, thaws only if that freeze
    /// is still the current one (the timer's call). Returns how many filesystems this
    /// call thawed (those thawed meanwhile by someone else are not counted). What fails
    /// to thaw stays recorded (and frozen: the gate stays closed), and the auto-thaw
    /// tries again later.
    ///
    /// Never waits long: if a freeze in progress does not give way within
    /// [`THAW_WAIT`] (its FIFREEZE is stuck), what it froze so far is thawed through
    /// the recorded descriptors, which unblocks it; it then sees the cancel and rolls
    /// back the rest.
    pub fn thaw(&self, reason: &str, generation: Option<u64>) -> Result<usize, Error> {
        {
            let mut st = lock(&self.state);
            if generation.is_some_and(|g| g != st.generation) {
                return Ok(0);
            }
            if st.freezing {
                st.cancel = true;
            }
        }
        match lock_within(&self.op, THAW_WAIT) {
            Some(_op) => self.thaw_locked(reason, generation),
            None => Ok(self.force_thaw(reason)),
        }
    }

    /// Thaws what is recorded without the `op` lock, which a stuck freeze (or its
    /// fsfreeze hook) holds; that freeze, cancelled, settles the state when it
    /// unblocks. What does not thaw stays recorded. Returns how many were thawed.
    fn force_thaw(&self, reason: &str) -> usize {
        let Some(mut st) = lock_within(&self.state, EMERGENCY_WAIT) else {
            return 0;
        };
        let list = std::mem::take(&mut st.frozen);
        drop(st);
        tracing::warn!(
            filesystems = list.len(),
            reason,
            "a freeze is in progress: thawing under it"
        );
        let Thawed {
            count,
            mut left,
            error,
        } = thaw_list(list);
        if let Some(e) = error {
            tracing::error!(error = %e.message(), still_frozen = left.len(), "forced thaw incomplete");
        }
        if let Some(mut st) = lock_within(&self.state, EMERGENCY_WAIT) {
            left.append(&mut st.frozen);
            st.frozen = left;
        }
        count
    }

    /// [`Freezer::thaw`] with `op` held.
    fn thaw_locked(&self, reason: &str, generation: Option<u64>) -> Result<usize, Error> {
        let list = {
            let mut st = lock(&self.state);
            if !st.status || generation.is_some_and(|g| g != st.generation) {
                return Ok(0);
            }
            std::mem::take(&mut st.frozen)
        };
        let done = thaw_list(list);
        self.settle(done.left);
        match done.error {
            Some(e) => Err(e),
            None => {
                tracing::info!(filesystems = done.count, reason, "thawed");
                Ok(done.count)
            }
        }
    }

    /// Records the outcome of a thaw: all done (not frozen, marker gone, gate open,
    /// then the thaw hook), or `left` still frozen (reported frozen, auto-thaw
    /// re-armed; the thaw hook waits: it could hang on what is still frozen).
    fn settle(&self, left: Vec<Frozen>) {
        let mut st = lock(&self.state);
        if left.is_empty() {
            st.status = false;
            st.deadline = None;
            let exiting = st.exiting;
            drop(st);
            marker::remove(&self.marker);
            self.gate.open();
            if let Some(hook) = &self.hook {
                // On the way out, in place: the process is about to end.
                hook.thaw(exiting);
            }
        } else {
            st.frozen = left;
            st.status = true;
            st.deadline = self.deadline();
            drop(st);
            self.wake.notify_all();
        }
    }

    /// The exit and panic paths: thaw whatever is frozen, without hanging. Waits a
    /// little for a freeze or thaw in progress (a cancelled freeze rolls itself back);
    /// if it does not finish, thaws through the recorded descriptors anyway and leaves
    /// the marker for the next agent. With `exiting`, no freeze starts afterwards.
    pub fn emergency_thaw(&self, why: &str, exiting: bool) {
        // If this very thread holds the state lock (a panic inside the freezer), there
        // is nothing safe to do here; the freeze's own rollback still runs on unwind.
        let Some(mut st) = lock_within(&self.state, EMERGENCY_WAIT) else {
            return;
        };
        st.exiting |= exiting;
        if st.freezing {
            st.cancel = true;
        }
        if !st.status && !st.freezing && st.frozen.is_empty() {
            return;
        }
        drop(st);
        tracing::warn!(why, "thawing before the agent goes");
        match lock_within(&self.op, EMERGENCY_WAIT) {
            Some(_op) => {
                if let Err(e) = self.thaw_locked(why, None) {
                    tracing::error!(error = %e.message(), "emergency thaw incomplete");
                }
            }
            None => {
                self.force_thaw(why);
                if exiting {
                    self.await_freeze_end(why);
                }
            }
        }
    }

    /// Before the process goes: waits (at most [`EXIT_FREEZE_WAIT`]) for a freeze whose
    /// FIFREEZE is still in the kernel (syncing much dirty data) to end. It was
    /// cancelled, so it thaws what it froze as soon as the call returns; gone earlier,
    /// the agent would leave that filesystem frozen with nobody to thaw it.
    fn await_freeze_end(&self, why: &str) {
        let until = Instant::now() + EXIT_FREEZE_WAIT;
        while Instant::now() < until {
            match lock_within(&self.state, EMERGENCY_WAIT) {
                Some(st) if !st.freezing => return,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        // Still in the kernel: thaw what it recorded meanwhile, at least.
        self.force_thaw(why);
    }

    /// At startup: if a previous agent left a marker, the guest may still be frozen.
    /// Report it frozen (gate closed), accept fs-unfreeze for those mount points, and
    /// arm the auto-thaw.
    pub fn recover(&self) {
        let list = match marker::read(&self.marker) {
            Ok(Some(list)) => list,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(path = %self.marker.display(), error = %e, "cannot read the freeze marker");
                return;
            }
        };
        // Closed first: it holds the log's file-bound lines, and a write to a log on
        // a filesystem still frozen would block this start for good.
        self.gate.close();
        tracing::warn!(
            filesystems = list.len(),
            marker = %self.marker.display(),
            "a previous agent left filesystems frozen; reporting frozen until fs-unfreeze"
        );
        if let Some(hook) = &self.hook {
            // Its freeze hook most likely ran: the thaw that ends this freeze runs the
            // thaw hook.
            hook.owe_thaw();
        }
        {
            let mut st = lock(&self.state);
            st.frozen = list
                .into_iter()
                .map(|mountpoint| Frozen {
                    mountpoint,
                    dir: None,
                })
                .collect();
            st.status = true;
            st.generation += 1;
            st.deadline = self.deadline();
        }
        self.wake.notify_all();
    }

    /// The auto-thaw timer thread's body: sleeps until a deadline is set (no wake-up
    /// at all while not frozen), then until it passes, then thaws that freeze.
    pub fn run_timer(&self) -> ! {
        let secs = self.timeout.map_or(0, |t| t.as_secs());
        loop {
            let generation = {
                let mut st = lock(&self.state);
                loop {
                    match st.deadline {
                        None => st = wait(&self.wake, st),
                        Some(d) => {
                            let now = Instant::now();
                            if now >= d {
                                st.deadline = None;
                                break st.generation;
                            }
                            st = wait_timeout(&self.wake, st, d - now).0;
                        }
                    }
                }
            };
            tracing::warn!(timeout_secs = secs, "frozen too long: thawing by itself");
            if let Err(e) = self.thaw("freeze timeout", Some(generation)) {
                tracing::error!(error = %e.message(), "auto-thaw incomplete; retrying later");
            }
        }
    }
}

/// The error of a freeze stopped by fs-unfreeze or the agent's exit.
fn cancelled() -> Error {
    Error::errno(
        Errno::ECANCELED,
        "fs-freeze: cancelled by fs-unfreeze or agent exit",
    )
}

/// The error of a second fs-freeze.
pub fn already_frozen() -> Error {
    Error::errno(
        Errno::EBUSY,
        "fs-freeze: the filesystems are already frozen (fs-unfreeze first)",
    )
}
