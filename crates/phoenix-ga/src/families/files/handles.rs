//! The table of open file handles.
//!
//! Handles are the agent's own numbers: they start at 1, only grow and are never
//! reused, so a host holding a stale number gets EBADF instead of someone else's file.
//! The table lock is held only to look a handle up, add or remove one; I/O runs under
//! the handle's own lock, so a slow read of one file never delays another handle.
//! Handles belong to the agent, not to a connection: a host may reconnect and go on.
//! The process exit closes whatever is still open.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;

use crate::error::{Context, Error};
use crate::sync::{lock, try_lock};

/// The open handles and their limit.
#[derive(Debug)]
pub struct Handles {
    table: Mutex<Table>,
    max: usize,
}

#[derive(Debug, Default)]
struct Table {
    /// The last number given out.
    last: u64,
    open: HashMap<u64, Arc<Handle>>,
    /// Slots taken by opens in progress (counted against the limit).
    reserved: usize,
}

/// What a read of a handle's file may wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// A pipe, FIFO, socket or device: a writer, for as long as it likes.
    Stream,
    /// A regular file: the disk, for data that is not in the page cache.
    Disk,
    /// A regular file on tmpfs or ramfs: memory only, as swappable as the agent's own.
    Memory,
}

/// One open file.
#[derive(Debug)]
pub struct Handle {
    id: u64,
    path: PathBuf,
    /// A regular file (read to the requested count) rather than a pipe or device, and
    /// where its data lives.
    backing: Backing,
    /// `None` once closed (by `file-close` or end of file) while a request still holds
    /// the handle.
    file: Mutex<Option<File>>,
}

/// A place in the table, taken before the file is opened so that a refused open
/// (EMFILE) never truncates a file. Given back on drop unless filled.
#[derive(Debug)]
pub struct Slot<'a> {
    handles: &'a Handles,
    filled: bool,
}

/// A handle's file, locked for one request.
#[derive(Debug)]
pub struct OpenFile<'a> {
    handle: &'a Handle,
    guard: MutexGuard<'a, Option<File>>,
}

fn bad_handle(id: u64) -> Error {
    Error::errno(Errno::EBADF, format!("handle {id} is not open"))
}

impl Handles {
    /// An empty table allowing `max` open handles.
    pub fn new(max: usize) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// Takes a place for a file about to be opened; EMFILE when all are in use.
    pub fn reserve(&self) -> Result<Slot<'_>, Error> {
        let mut t = self.lock();
        if t.open.len() + t.reserved >= self.max {
            return Err(Error::errno(
                Errno::EMFILE,
                format!("too many open handles (limit {})", self.max),
            ));
        }
        t.reserved += 1;
        Ok(Slot {
            handles: self,
            filled: false,
        })
    }

    /// The handle numbered `id`; EBADF when it is unknown or closed.
    pub fn get(&self, id: u64) -> Result<Arc<Handle>, Error> {
        self.lock()
            .open
            .get(&id)
            .cloned()
            .ok_or_else(|| bad_handle(id))
    }

    /// Whether handle `id` is open.
    pub fn is_open(&self, id: u64) -> bool {
        self.lock().open.contains_key(&id)
    }

    /// Closes handle `id`. The number is gone at once; when a request is still using
    /// the file (a read blocked on a pipe), the file is closed as that request ends,
    /// without making the host wait for it.
    pub fn close(&self, id: u64) -> Result<(), Error> {
        let handle = self.lock().open.remove(&id).ok_or_else(|| bad_handle(id))?;
        let Some(mut guard) = try_lock(&handle.file) else {
            return Ok(());
        };
        match guard.take() {
            Some(file) => close_file(file, &handle.path),
            // Closed meanwhile by the read that reached end of file.
            None => Ok(()),
        }
    }

    /// Number of open handles.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }
}

impl Slot<'_> {
    /// Registers the opened file; its handle number.
    pub fn fill(mut self, path: PathBuf, file: File, backing: Backing) -> u64 {
        let mut t = self.handles.lock();
        t.reserved -= 1;
        self.filled = true;
        t.last += 1;
        let id = t.last;
        let handle = Handle {
            id,
            path,
            backing,
            file: Mutex::new(Some(file)),
        };
        t.open.insert(id, Arc::new(handle));
        id
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.filled {
            self.handles.lock().reserved -= 1;
        }
    }
}

impl Handle {
    /// The path the file was opened as (for error messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Locks the file for one request; EBADF when it was closed meanwhile.
    pub fn lock(&self) -> Result<OpenFile<'_>, Error> {
        let guard = lock(&self.file);
        if guard.is_none() {
            return Err(bad_handle(self.id));
        }
        Ok(OpenFile {
            handle: self,
            guard,
        })
    }
}

impl Handle {
    /// Locks the file for one request if no other request holds it and it is open.
    pub fn try_lock(&self) -> Option<OpenFile<'_>> {
        let guard = try_lock(&self.file)?;
        guard.as_ref()?;
        Some(OpenFile {
            handle: self,
            guard,
        })
    }
}

impl OpenFile<'_> {
    /// The open file.
    pub fn file(&mut self) -> &mut File {
        self.guard.as_mut().expect("checked open in Handle::lock")
    }

    /// Whether the file is a regular file.
    pub fn regular(&self) -> bool {
        self.handle.backing != Backing::Stream
    }

    /// Where the file's data lives.
    pub fn backing(&self) -> Backing {
        self.handle.backing
    }

    /// Closes the file and removes its handle from `handles`.
    pub fn close(mut self, handles: &Handles) -> Result<(), Error> {
        let file = self.guard.take().expect("checked open in Handle::lock");
        handles.lock().open.remove(&self.handle.id);
        close_file(file, &self.handle.path)
    }
}

/// Closes explicitly so that a failing close(2) (a delayed write error on a network
/// filesystem) is reported instead of ignored as `File`'s drop would.
fn close_file(file: File, path: &Path) -> Result<(), Error> {
    match nix::unistd::close(file.into_raw_fd()) {
        // Linux has closed the descriptor even when close is interrupted.
        Ok(()) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e).context(|| format!("close {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_dev_null(h: &Handles) -> Result<u64, Error> {
        let slot = h.reserve()?;
        Ok(slot.fill("/dev/null".into(), File::open("/dev/null").unwrap(), Backing::Stream))
    }

    #[test]
    fn numbers_grow_and_are_never_reused() {
        let h = Handles::new(4);
        assert_eq!(open_dev_null(&h).unwrap(), 1);
        assert_eq!(open_dev_null(&h).unwrap(), 2);
        h.close(1).unwrap();
        assert_eq!(open_dev_null(&h).unwrap(), 3);
        assert_eq!(h.close(1).unwrap_err().code(), 9);
        assert_eq!(h.get(1).err().unwrap().message(), "handle 1 is not open");
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn limit_counts_opens_in_progress() {
        let h = Handles::new(2);
        let slot = h.reserve().unwrap();
        open_dev_null(&h).unwrap();
        assert_eq!(h.reserve().err().unwrap().code(), 24);
        drop(slot);
        open_dev_null(&h).unwrap();
        assert_eq!(h.reserve().err().unwrap().code(), 24);
        h.close(2).unwrap();
        h.reserve().unwrap();
    }

    #[test]
    fn closing_through_the_file_removes_the_handle() {
        let h = Handles::new(2);
        let id = open_dev_null(&h).unwrap();
        let handle = h.get(id).unwrap();
        let open = handle.lock().unwrap();
        open.close(&h).unwrap();
        assert_eq!(handle.lock().err().unwrap().code(), 9);
        assert_eq!(h.get(id).err().unwrap().code(), 9);
        assert_eq!(h.len(), 0);
    }
}
