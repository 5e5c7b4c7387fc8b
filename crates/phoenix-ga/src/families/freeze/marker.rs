//! The marker file: which mount points a freeze covers, written before the first
//! FIFREEZE and removed after the last FITHAW, so that an agent killed while frozen
//! (SIGKILL, OOM, a crash the panic hook could not handle) finds it when it restarts,
//! reports the guest frozen and can thaw it.
//!
//! It lives in `--state-dir` (default `/run/phoenix-ga`, a tmpfs, which no freeze
//! touches and a reboot clears, as it should: a reboot thaws everything). The format is
//! the mount points, each followed by a NUL byte: any path can be written, none needs
//! quoting.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The marker's name inside the state directory.
pub const NAME: &str = "frozen";

/// Writes the marker atomically (temporary file, then rename), creating the state
/// directory (mode 0700) if needed.
pub fn write(path: &Path, mountpoints: &[PathBuf]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut data = Vec::new();
    for m in mountpoints {
        data.extend_from_slice(m.as_os_str().as_bytes());
        data.push(0);
    }
    f.write_all(&data)?;
    drop(f);
    fs::rename(&tmp, path)
}

/// Reads the marker: `None` when there is none.
pub fn read(path: &Path) -> io::Result<Option<Vec<PathBuf>>> {
    match fs::read(path) {
        Ok(data) => Ok(Some(
            data.split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| PathBuf::from(OsString::from_vec(s.to_vec())))
                .collect(),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the marker; a missing marker is fine.
pub fn remove(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the freeze marker")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/sub").join(NAME);
        assert_eq!(read(&path).unwrap(), None);
        let odd = PathBuf::from(OsString::from_vec(b"/mnt/a b\n\xff".to_vec()));
        let list = vec![PathBuf::from("/"), odd];
        write(&path, &list).unwrap();
        assert_eq!(read(&path).unwrap(), Some(list));
        write(&path, &[]).unwrap();
        assert_eq!(read(&path).unwrap(), Some(vec![]));
        remove(&path);
        remove(&path);
        assert_eq!(read(&path).unwrap(), None);
    }
}
