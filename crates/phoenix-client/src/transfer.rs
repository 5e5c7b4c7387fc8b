//! Helpers above the raw file calls: whole-file downloads and uploads with an MD5
//! check of both ends, reading a small file, listing a directory.
//!
//! Chunk sizes: phoenix-rs (0.8 and later, [`AgentInfo::large_chunks`]) reads up to
//! 32 MiB per `file-read` and takes request lines of 64 MiB, so transfers move 4 MiB
//! per round trip; with the Go original they move 4 KiB, its fixed read size, and its
//! request buffer is not known to take more.
//!
//! Pipelining: phoenix-rs 0.9 and later run a connection's reads and writes of one
//! handle in the order they were sent ([`AgentInfo::ordered_io`]), so transfers keep
//! several requests in flight ([`window`]) and the agent reads or writes the next
//! chunk while this side handles the last. The Go original runs requests
//! concurrently, so with it one request is in flight at a time.
//!
//! [`AgentInfo::large_chunks`]: crate::AgentInfo::large_chunks
//! [`AgentInfo::ordered_io`]: crate::AgentInfo::ordered_io

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use md5::{Digest, Md5};
use phoenix_proto::types::files::cmd::FileRename;
use phoenix_proto::types::files::{self as wire, FileStat};
use serde::Serialize;

use crate::api::files::OpenMode;
use crate::{Client, ClientError, Dialect};

/// Bytes per request when the agent has the large-transfer extensions.
pub const LARGE_CHUNK: usize = 4 << 20;

/// Bytes per request with the original agent (its `file-read` size).
pub const SMALL_CHUNK: usize = 4096;

/// The command an atomic upload needs (not in the original's command set):
/// `{"execute": "file-rename", "arguments": {"src": PATH, "dst": PATH}}` -> `true`,
/// rename(2) inside the guest.
pub const RENAME_COMMAND: &str = <FileRename as phoenix_proto::Command>::NAME;

/// Requests a transfer keeps in flight with an agent that runs them in order: enough
/// that neither end waits for the other; a few chunks of memory at most.
pub fn window(chunk: usize) -> usize {
    if chunk >= 1 << 20 {
        3
    } else {
        16
    }
}

/// [`Client::read_file`] refuses files larger than this.
pub const READ_FILE_LIMIT: u64 = 64 << 20;

/// A finished transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// Bytes moved.
    pub bytes: u64,
    /// MD5 of those bytes, lowercase hex.
    pub md5: String,
    /// Whether the agent's MD5 of the guest file was compared with it (and equal).
    /// The qemu-ga dialect has no MD5 command: there the guest's end is not checked.
    pub checked: bool,
}

/// Told how a transfer advances (a progress bar); the default does nothing.
pub trait Progress {
    /// The size of the transfer, when known, before the first byte moves.
    fn start(&mut self, _total: Option<u64>) {}
    /// `bytes` more have moved.
    fn advance(&mut self, _bytes: u64) {}
}

/// No progress report.
impl Progress for () {}

/// How [`Client::upload`] writes the guest file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadOptions {
    /// Permissions of the file created in the guest (default 0644).
    pub perm: Option<u32>,
    /// When the agent has no `file-rename`, write straight to the destination
    /// instead of failing with [`ClientError::NoRename`]; a broken transfer then
    /// leaves the destination incomplete.
    pub in_place: bool,
    /// Bytes per request, overriding the choice made from the agent's version.
    pub chunk: Option<usize>,
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A hidden name beside `path` for the file being written: `.NAME.phoenix-PID-N.part`.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upload".into());
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.phoenix-{}-{seq}.part", std::process::id()))
}

fn local(context: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> ClientError {
    move |source| ClientError::Local {
        context: context(),
        source,
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads until `buf` is full or the source ends; the number of bytes read.
fn fill(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Client {
    /// The `count` to ask of `file-read`: `None` (the agent's 4 KiB) for agents
    /// without the extension.
    fn read_count(&self) -> Result<Option<u64>, ClientError> {
        Ok(self.info()?.large_chunks().then_some(LARGE_CHUNK as u64))
    }

    /// Streams a guest file into `out`, then checks its MD5 against the agent's.
    pub fn download_to(
        &self,
        guest: &Path,
        out: &mut dyn Write,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, ClientError> {
        let (bytes, md5) = self.read_into(guest, out, progress, None, true)?;
        let md5 = md5.unwrap_or_default();
        let checked = self.check_md5(guest, &md5)?;
        Ok(Transfer {
            bytes,
            md5,
            checked,
        })
    }

    /// Downloads a guest file to a local path. The bytes go to a hidden temporary
    /// file beside `local`, which replaces `local` only once complete and checked,
    /// so a broken transfer never leaves a half file under the real name.
    pub fn download(
        &self,
        guest: &Path,
        local_path: &Path,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, ClientError> {
        let temp = temp_beside(local_path);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temp)
            .map_err(local(|| format!("create {}", local_path.display())))?;
        let result = self.download_to(guest, &mut file, progress).and_then(|t| {
            file.sync_all()
                .map_err(local(|| format!("write {}", temp.display())))?;
            fs::rename(&temp, local_path).map_err(local(|| {
                format!("rename {} to {}", temp.display(), local_path.display())
            }))?;
            Ok(t)
        });
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// Streams a guest file into `out` without the MD5 check (`cat`); the byte count.
    pub fn copy_to(&self, guest: &Path, out: &mut dyn Write) -> Result<u64, ClientError> {
        self.read_into(guest, out, &mut (), None, false)
            .map(|(bytes, _)| bytes)
    }

    /// Reads a whole guest file (at most [`READ_FILE_LIMIT`] bytes).
    pub fn read_file(&self, guest: &Path) -> Result<Vec<u8>, ClientError> {
        let mut data = Vec::new();
        self.read_into(guest, &mut data, &mut (), Some(READ_FILE_LIMIT), false)?;
        Ok(data)
    }

    /// Lists a directory, sorted by name.
    pub fn list_dir(&self, guest: &Path) -> Result<Vec<FileStat>, ClientError> {
        let mut entries = self.directory_list(guest, None)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Compares `md5` with the agent's MD5 of the guest file; `false` when the agent
    /// cannot tell (the qemu-ga dialect).
    fn check_md5(&self, guest: &Path, md5: &str) -> Result<bool, ClientError> {
        if self.dialect() == Dialect::Qga {
            return Ok(false);
        }
        let theirs = self.file_md5sum(guest)?;
        if theirs != md5 {
            return Err(ClientError::Mismatch {
                path: guest.display().to_string(),
                local: md5.to_string(),
                guest: theirs,
            });
        }
        Ok(true)
    }

    /// The size of the regular file `guest`, open as `handle`, if the agent can tell.
    fn size_of(&self, guest: &Path, handle: u64) -> Option<u64> {
        match self.dialect() {
            Dialect::Phoenix => self
                .file_stat(guest)
                .ok()
                .filter(|s| s.stat.Mode & 0o170000 == 0o100000)
                .map(|s| u64::try_from(s.stat.Size).unwrap_or(0)),
            Dialect::Qga => self.guest_file_size(handle).ok(),
        }
    }

    /// Opens, reads to the end (closing the handle on any failure, and in the qemu-ga
    /// dialect at the end too) and returns the byte count and, with `hash`, the MD5.
    fn read_into(
        &self,
        guest: &Path,
        out: &mut dyn Write,
        progress: &mut dyn Progress,
        limit: Option<u64>,
        hash: bool,
    ) -> Result<(u64, Option<String>), ClientError> {
        let count = self.read_count()?;
        let handle = self.file_open(guest, OpenMode::Read, None)?;
        let result = (|| {
            let size = self.size_of(guest, handle);
            if let (Some(size), Some(limit)) = (size, limit) {
                if size > limit {
                    return Err(ClientError::TooLarge {
                        path: guest.display().to_string(),
                        limit,
                    });
                }
            }
            progress.start(size);
            let in_flight = if self.info()?.ordered_io() {
                window(count.map_or(SMALL_CHUNK, |c| usize::try_from(c).unwrap_or(usize::MAX)))
            } else {
                1
            };
            // Reads the file's size calls for (the last one answers eof); reads past
            // the end would only fail, the handle being closed. None: not known (or
            // the file grew), read on.
            let chunk = count.unwrap_or(SMALL_CHUNK as u64);
            let mut reads_left = size.map(|s| s / chunk + 1);
            let mut pending = VecDeque::new();
            let mut md5 = hash.then(Md5::new);
            let mut bytes = 0u64;
            loop {
                while pending.len() < in_flight && reads_left != Some(0) {
                    pending.push_back(self.send_file_read(handle, count)?);
                    reads_left = reads_left.map(|n| n - 1);
                }
                let Some(next) = pending.pop_front() else {
                    reads_left = None;
                    continue;
                };
                // On an error or at eof, reads still in flight are abandoned: their
                // replies are dropped as they come.
                let chunk = next.wait()?;
                bytes += chunk.data.len() as u64;
                if limit.is_some_and(|l| bytes > l) {
                    return Err(ClientError::TooLarge {
                        path: guest.display().to_string(),
                        limit: limit.unwrap_or_default(),
                    });
                }
                if let Some(md5) = md5.as_mut() {
                    md5.update(&chunk.data);
                }
                out.write_all(&chunk.data)
                    .map_err(local(|| "write the downloaded data".to_string()))?;
                progress.advance(chunk.data.len() as u64);
                if chunk.eof {
                    return Ok((bytes, md5.map(|m| hex(&m.finalize()))));
                }
            }
        })();
        match &result {
            // The handle is still open unless the agent answered eof.
            Err(e) if !matches!(e, ClientError::Closed) => {
                let _ = self.file_close(handle);
            }
            // qemu-ga's dialect leaves it open at end of file.
            Ok(_) if self.dialect() == Dialect::Qga => self.file_close(handle)?,
            _ => {}
        }
        result
    }

    /// Uploads a local file to a guest path; see [`Client::upload_from`].
    pub fn upload(
        &self,
        local_path: &Path,
        guest: &Path,
        opts: UploadOptions,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, ClientError> {
        let mut file =
            File::open(local_path).map_err(local(|| format!("open {}", local_path.display())))?;
        let size = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        progress.start(size);
        self.upload_from(&mut file, guest, opts, progress)
    }

    /// Uploads everything `src` yields to a guest path. With an agent that has
    /// `file-rename`, the data goes to a hidden temporary name beside `guest`, is
    /// checked (MD5 of both ends), and only then renamed to `guest`: a broken
    /// transfer never leaves a half file under the real name (it may leave the
    /// hidden temporary file, which no command can remove). Without `file-rename`
    /// the upload fails with [`ClientError::NoRename`] unless
    /// [`UploadOptions::in_place`] is set.
    pub fn upload_from(
        &self,
        src: &mut dyn Read,
        guest: &Path,
        opts: UploadOptions,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, ClientError> {
        let info = self.info()?;
        let atomic = info.supports(RENAME_COMMAND);
        if !atomic && !opts.in_place {
            return Err(ClientError::NoRename {
                path: guest.display().to_string(),
            });
        }
        let chunk = opts.chunk.unwrap_or(if info.large_chunks() {
            LARGE_CHUNK
        } else {
            SMALL_CHUNK
        });
        let target = if atomic {
            temp_beside(guest)
        } else {
            guest.to_path_buf()
        };
        let handle = self.file_open(&target, OpenMode::Write, opts.perm)?;
        let qga = self.dialect() == Dialect::Qga;
        let in_flight = if info.ordered_io() { window(chunk) } else { 1 };
        let mut buf = vec![0u8; chunk.max(1)];
        let mut md5 = Md5::new();
        let mut bytes = 0u64;
        let mut pending = VecDeque::new();
        let written = (|| {
            loop {
                let n = fill(src, &mut buf).map_err(local(|| "read the data to upload".into()))?;
                // The last request is an empty eof write: the original agent drops the
                // data of an eof request; phoenix-rs syncs the file to disk before
                // answering. (The qemu-ga dialect has no eof: the handle is closed.)
                if n == 0 && qga {
                    break;
                }
                pending.push_back(self.send_file_write(handle, &buf[..n], n == 0)?);
                if n == 0 {
                    break;
                }
                md5.update(&buf[..n]);
                bytes += n as u64;
                progress.advance(n as u64);
                while pending.len() >= in_flight {
                    pending.pop_front().map_or(Ok(()), |w| w.wait())?;
                }
            }
            pending.drain(..).try_for_each(|w| w.wait())?;
            if qga {
                self.file_close(handle)?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            // Writes still in flight fail once the handle is closed, or land first;
            // either way the temporary file is never renamed.
            drop(pending);
            let _ = self.file_close(handle);
            return Err(e);
        }
        let md5 = hex(&md5.finalize());
        let checked = self.check_md5(&target, &md5)?;
        if atomic {
            self.true_call::<FileRename>(Some(&wire::FileRename {
                src: target.clone(),
                dst: guest.to_path_buf(),
            }))?;
        }
        Ok(Transfer {
            bytes,
            md5,
            checked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_hidden_and_beside() {
        let t = temp_beside(Path::new("/srv/data/file.bin"));
        assert_eq!(t.parent(), Some(Path::new("/srv/data")));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".file.bin.phoenix-"), "{name}");
        assert!(name.ends_with(".part"), "{name}");
        assert_ne!(t, temp_beside(Path::new("/srv/data/file.bin")));
    }

    #[test]
    fn fill_reads_across_short_reads() {
        let mut src = io::Read::chain(&b"ab"[..], &b"cde"[..]);
        let mut buf = [0u8; 4];
        assert_eq!(fill(&mut src, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"abcd");
        assert_eq!(fill(&mut src, &mut buf).unwrap(), 1);
        assert_eq!(fill(&mut src, &mut buf).unwrap(), 0);
    }
}
