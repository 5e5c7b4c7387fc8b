//! The frozen gate: whether commands that may write to a disk are held off.
//!
//! It has one meaning and one writer. It is closed from just before a freeze's first
//! FIFREEZE until the last filesystem is thawed again (or while a previous agent's
//! freeze may still be in force), and only the freeze family closes and opens it. The
//! dispatcher reads it before every command that is not allowed while frozen; the log
//! holds file-bound lines in memory while it is closed. (Whether a freeze is *in
//! force*, which `get-freeze-status` reports, is the freeze family's own fact: the
//! gate also closes while a freeze is still in progress.)

use std::sync::atomic::{AtomicBool, Ordering};

use crate::logging;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Gate {
    closed: AtomicBool,
}

impl Gate {
    /// Whether disk-bound commands are held off.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Holds disk-bound commands and file-bound log lines off (the freeze family,
    /// before its first FIFREEZE).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        logging::set_frozen(true);
    }

    /// Lets them through again (the freeze family, once everything is thawed).
    pub fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        logging::set_frozen(false);
    }
}
