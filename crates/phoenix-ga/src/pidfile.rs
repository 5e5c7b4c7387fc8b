//! The pid file of `-f`: the agent's process id, written once and removed on a clean
//! exit, and a lock, so that a second agent started with the same file refuses to run
//! (as qemu-ga's pid file does).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// A claimed pid file: locked for the agent's life.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    _lock: Flock<File>,
}

/// Writes this process's id to `path`, which must not be locked by another agent.
pub fn claim(path: &Path) -> Result<PidFile, String> {
    let shown = path.display();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|e| format!("pidfile {shown}: {e}"))?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| format!("pidfile {shown}: another agent holds it ({})", e.desc()))?;
    lock.set_len(0)
        .and_then(|()| writeln!(&mut *lock, "{}", std::process::id()))
        .map_err(|e| format!("pidfile {shown}: {e}"))?;
    Ok(PidFile {
        path: path.to_path_buf(),
        _lock: lock,
    })
}

impl PidFile {
    /// Removes the file (a clean exit).
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_file_is_written_and_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ga.pid");
        let held = claim(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        let e = claim(&path).unwrap_err();
        assert!(e.contains("another agent holds it"), "{e}");
        held.remove();
        assert!(!path.exists());
    }
}
