//! Logging that never touches a frozen disk.
//!
//! Logs go to stderr (journald under systemd) and optionally to a file. While the
//! filesystems are frozen, a write to a file there would block the agent until thaw,
//! so lines meant for a file (the log file, or stderr when it is redirected to a
//! regular file) are held in memory, up to a limit, and written after thaw. Stderr
//! that is a pipe, socket or tty is written at once.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::filter::LevelFilter;

use crate::sync::lock;

/// Most bytes of log held in memory while frozen; later lines are counted, not kept.
const HOLD_MAX: usize = 1 << 20;

struct Logger {
    file: Option<(PathBuf, Mutex<File>)>,
    stderr_on_disk: bool,
    frozen: AtomicBool,
    held: Mutex<Held>,
    /// Held while a line goes to the disk, and by [`set_frozen`]: a line is written
    /// before the gate closes (the disk still takes it, and the freeze waits for the
    /// write) or held, never written once the gate is closed. Nothing logs under it.
    disk: Mutex<()>,
}

#[derive(Default)]
struct Held {
    bytes: Vec<u8>,
    dropped: usize,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the global subscriber: INFO, or DEBUG with `--debug`.
pub fn init(debug: bool, log_file: Option<&Path>) -> io::Result<()> {
    let file = match log_file {
        Some(p) => Some((p.to_path_buf(), Mutex::new(open_log(p)?))),
        None => None,
    };
    let stderr_on_disk = std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.is_file());
    let _ = LOGGER.set(Logger {
        file,
        stderr_on_disk,
        frozen: AtomicBool::new(false),
        held: Mutex::new(Held::default()),
        disk: Mutex::new(()),
    });
    let level = if debug {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(|| LogWriter)
        .with_target(false)
        .try_init()
        .map_err(|e| io::Error::other(e.to_string()))
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("open log file {}: {e}", path.display())))
}

/// Holds disk-bound log lines while `frozen`; on thaw writes what was held.
pub fn set_frozen(frozen: bool) {
    if let Some(l) = LOGGER.get() {
        let _disk = lock(&l.disk);
        l.frozen.store(frozen, Ordering::SeqCst);
        if !frozen {
            l.release_held();
        }
    }
}

/// Writes out anything held (called on exit).
pub fn flush() {
    if let Some(l) = LOGGER.get() {
        let _disk = lock(&l.disk);
        if !l.frozen.load(Ordering::SeqCst) {
            l.release_held();
        }
        if let Some((_, f)) = &l.file {
            let _ = lock(f).flush();
        }
    }
}

/// Reopens the log file (after rotation; on SIGHUP). Not while frozen.
pub fn reopen() {
    let Some(l) = LOGGER.get() else { return };
    let Some((path, file)) = &l.file else { return };
    let reopened = {
        let _disk = lock(&l.disk);
        if l.frozen.load(Ordering::SeqCst) {
            return;
        }
        open_log(path).map(|f| *lock(file) = f)
    };
    if let Err(e) = reopened {
        tracing::warn!(error = %e, "cannot reopen log file");
    }
}

impl Logger {
    fn write(&self, buf: &[u8]) {
        if !self.stderr_on_disk {
            // A pipe, socket or tty: written at once, and outside the disk lock (a
            // journald that stopped reading must not keep a thaw from taking it).
            let _ = io::stderr().write_all(buf);
        }
        if self.file.is_none() && !self.stderr_on_disk {
            return;
        }
        let _disk = lock(&self.disk);
        if self.frozen.load(Ordering::SeqCst) {
            let mut held = lock(&self.held);
            if held.bytes.len() + buf.len() <= HOLD_MAX {
                held.bytes.extend_from_slice(buf);
            } else {
                held.dropped += 1;
            }
            return;
        }
        if self.stderr_on_disk {
            let _ = io::stderr().write_all(buf);
        }
        if let Some((_, f)) = &self.file {
            let _ = lock(f).write_all(buf);
        }
    }

    fn release_held(&self) {
        let held = std::mem::take(&mut *lock(&self.held));
        if held.bytes.is_empty() && held.dropped == 0 {
            return;
        }
        let mut out = held.bytes;
        if held.dropped > 0 {
            out.extend_from_slice(
                format!("({} log lines dropped while frozen)\n", held.dropped).as_bytes(),
            );
        }
        if self.stderr_on_disk {
            let _ = io::stderr().write_all(&out);
        }
        if let Some((_, f)) = &self.file {
            let _ = lock(f).write_all(&out);
        }
    }
}

/// The writer handed to tracing: one call per formatted event.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match LOGGER.get() {
            Some(l) => l.write(buf),
            None => {
                let _ = io::stderr().write_all(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
