//! Reading small sysfs attributes (`online`, `state`, `removable`, `block_size_bytes`).

use std::io::{self, Read as _};
use std::path::Path;

use nix::errno::Errno;

use crate::error::{Context as _, Error};

/// The first bytes, up to `max`, of the attribute at `path`; `None` when it does not
/// exist (the kernel does not offer it). An empty attribute is an error: sysfs
/// always writes at least a newline.
pub fn attr(path: &Path, max: u64) -> Result<Option<Vec<u8>>, Error> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context(|| format!("open {}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(max)
        .read_to_end(&mut bytes)
        .context(|| format!("read {}", path.display()))?;
    if bytes.is_empty() {
        return Err(Error::errno(
            Errno::ENODATA,
            format!("read {}: empty file", path.display()),
        ));
    }
    Ok(Some(bytes))
}

/// The number after `prefix` in a sysfs entry name (`cpu12`, `memory188`): digits
/// only, so that `cpufreq` and `cpuidle` are not CPUs.
pub fn numbered(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("online");
        assert_eq!(attr(&p, 1).unwrap(), None);
        std::fs::write(&p, "1\n").unwrap();
        assert_eq!(attr(&p, 1).unwrap(), Some(b"1".to_vec()));
        assert_eq!(attr(&p, 10).unwrap(), Some(b"1\n".to_vec()));
        std::fs::write(&p, "").unwrap();
        let e = attr(&p, 1).unwrap_err();
        assert_eq!(e.code(), libc::ENODATA);
        assert_eq!(e.message(), format!("read {}: empty file", p.display()));
        let e = attr(dir.path(), 1).unwrap_err();
        assert_eq!(e.code(), libc::EISDIR);
        assert_eq!(
            e.message(),
            format!("read {}: Is a directory", dir.path().display())
        );
    }

    #[test]
    fn numbered_entries() {
        assert_eq!(numbered("cpu0", "cpu"), Some(0));
        assert_eq!(numbered("cpu127", "cpu"), Some(127));
        assert_eq!(numbered("memory188", "memory"), Some(188));
        for name in ["cpu", "cpufreq", "cpuidle", "cpu1a", "cpu-1", "cpu+1", "online", "memory_tier0"] {
            assert_eq!(numbered(name, "cpu"), None, "{name}");
        }
        assert_eq!(numbered("cpu99999999999999999999999", "cpu"), None);
    }
}
