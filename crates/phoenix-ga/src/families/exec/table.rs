//! The table of started processes, by the agent's own number and by pid.
//!
//! Its lock is held only to look an entry up, add or drop one, and count. A process's
//! own lock may be held while the table's is taken, never the reverse, so the two
//! cannot deadlock. Bounds: [`MAX_RUNNING`] children not yet reaped (a further
//! `guest-exec` gets EAGAIN), and [`MAX_KEPT`] ended ones waiting for a host to collect
//! them (the oldest is forgotten past it; the reactor also forgets one nobody asked
//! about for [`FORGET_AFTER`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::errno::Errno;

use super::proc::{Mode, Proc, State};
use crate::error::Error;
use crate::sync::lock;

/// Children running at once.
pub const MAX_RUNNING: usize = 64;

/// Ended processes kept for a host to collect.
pub const MAX_KEPT: usize = 256;

/// How long an ended process nobody asks about is kept.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Table {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_id: u64,
    by_id: BTreeMap<u64, Arc<Proc>>,
    by_pid: HashMap<i32, u64>,
    /// Ended (reaped) entries, oldest first.
    ended: BTreeSet<u64>,
    /// Children not yet reaped, and spawns in progress.
    running: usize,
    /// Whether the reactor thread is running.
    reactor: bool,
}

/// A place among the running children, taken before the spawn; given back on drop
/// unless the child was added.
#[derive(Debug)]
pub struct Slot<'a> {
    table: &'a Table,
    used: bool,
}

impl Table {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Takes a place for a child about to be started; EAGAIN when [`MAX_RUNNING`]
    /// run already.
    pub fn reserve(&self) -> Result<Slot<'_>, Error> {
        let mut t = self.lock();
        if t.running >= MAX_RUNNING {
            return Err(Error::errno(
                Errno::EAGAIN,
                format!("too many processes running (limit {MAX_RUNNING})"),
            ));
        }
        t.running += 1;
        Ok(Slot {
            table: self,
            used: false,
        })
    }

    /// The entry of pid `pid`, if a host may still ask about it.
    pub fn by_pid(&self, pid: i64) -> Option<Arc<Proc>> {
        let t = self.lock();
        let id = t.by_pid.get(&i32::try_from(pid).ok()?)?;
        t.by_id.get(id).cloned()
    }

    /// The entry numbered `id`.
    pub fn by_id(&self, id: u64) -> Option<Arc<Proc>> {
        self.lock().by_id.get(&id).cloned()
    }

    /// Every entry, oldest first.
    pub fn all(&self) -> Vec<Arc<Proc>> {
        self.lock().by_id.values().cloned().collect()
    }

    /// Drops entry `id` (its descriptors close, its memory goes, when the last
    /// request holding it is done). Dropping it twice does nothing.
    pub fn remove(&self, id: u64) {
        self.lock().forget(id);
    }

    /// Notes that the child of entry `id` was reaped: its place among the running
    /// is free, and the oldest ended entries past [`MAX_KEPT`] are forgotten.
    pub fn reaped(&self, id: u64) {
        let mut t = self.lock();
        if t.by_id.contains_key(&id) && t.ended.insert(id) {
            t.running = t.running.saturating_sub(1);
        }
        while t.ended.len() > MAX_KEPT {
            let Some(oldest) = t.ended.first().copied() else {
                break;
            };
            t.forget(oldest);
        }
    }

    /// Marks the reactor as running; false if it already was.
    pub fn claim_reactor(&self) -> bool {
        !std::mem::replace(&mut self.lock().reactor, true)
    }

    /// Lets the reactor go when there is nothing left to watch: true (and marked
    /// stopped) when the table is empty and no child is being started.
    pub fn release_reactor(&self) -> bool {
        let mut t = self.lock();
        if t.by_id.is_empty() && t.running == 0 {
            t.reactor = false;
            return true;
        }
        false
    }

    /// Marks the reactor stopped (its thread could not start).
    pub fn release_reactor_now(&self) {
        self.lock().reactor = false;
    }

    /// Entries, and children running.
    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize) {
        let t = self.lock();
        (t.by_id.len(), t.running)
    }
}

impl Inner {
    fn forget(&mut self, id: u64) {
        let ended = self.ended.remove(&id);
        if let Some(p) = self.by_id.remove(&id) {
            if self.by_pid.get(&p.pid) == Some(&id) {
                self.by_pid.remove(&p.pid);
            }
            if !ended {
                // Only ended entries are forgotten; kept right if one ever is not.
                self.running = self.running.saturating_sub(1);
            }
        }
    }
}

impl Slot<'_> {
    /// Adds the started child; its entry. An ended entry with the same pid (the
    /// kernel reused it) is forgotten.
    pub fn add(mut self, pid: i32, mode: Mode, state: State) -> Arc<Proc> {
        self.used = true;
        let mut t = self.table.lock();
        t.last_id += 1;
        let id = t.last_id;
        let proc = Arc::new(Proc::new(id, pid, mode, state));
        t.by_id.insert(id, Arc::clone(&proc));
        if let Some(old) = t.by_pid.insert(pid, id) {
            t.forget(old);
        }
        proc
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.used {
            let mut t = self.table.lock();
            t.running = t.running.saturating_sub(1);
        }
    }
}
