//! The Phoenix dialect's file commands: `file-open`, `file-read`, `file-write`,
//! `file-close`, `get-file-md5sum`, `file-chown`, `file-chmod`, `file-stat`,
//! `directory-create`, `directory-list` and `file-rename` (extension).
//!
//! All of them touch a disk, so all run on the pool and none runs while frozen. A
//! connection's reads and writes of one handle run in the order it sent them, so a
//! host may pipeline a transfer; `file-close` takes effect at once, even while a read
//! of the handle is stuck (a FIFO with no writer), which is how a host gives up on it.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use phoenix_proto::types::files::cmd::{
    DirectoryCreate, DirectoryList, FileChmod, FileChown, FileClose, FileOpen, FileRead,
    FileRename, FileStat, FileWrite, GetFileMd5sum,
};
use phoenix_proto::types::files::{self as wire, Stat, Timespec, MAX_READ_COUNT};
use nix::errno::Errno;
use serde_json::value::RawValue;

use super::io::{check_perm, AfterWrite, AtEof, Chunk, OpenMode};
use super::{encoding, Files};
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run, Value};
use crate::error::Error;

/// `file-open`: a new handle; mode `"r"` or `"w"`.
impl Command for FileOpen {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::FileOpen) -> Outcome {
        let mode = match a.mode.as_str() {
            "r" => OpenMode::Read,
            "w" => OpenMode::Write {
                perm: a.perm,
                force: a.force,
            },
            other => {
                return Err(Error::invalid(format!(
                    "mode must be \"r\" or \"w\", not {other:?}"
                )))
            }
        };
        check_perm(a.perm)?;
        reply::<Self>(&agent.family::<Files>().open(a.path, mode)?)
    }
}

/// The byte count of a `file-read`, checked.
fn read_count(count: u64) -> Result<usize, Error> {
    if count == 0 || count > MAX_READ_COUNT {
        return Err(Error::invalid(format!(
            "count must be 1 to {MAX_READ_COUNT}, not {count}"
        )));
    }
    usize::try_from(count).map_err(|_| Error::invalid("count too large"))
}

/// `file-read`: up to `count` bytes; the read that reaches end of file closes the
/// handle. Small reads of cached data are answered on the reader thread.
impl Command for FileRead {
    const RUN: Run = Run::Ordered;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::FileRead) -> Outcome {
        let count = read_count(a.count)?;
        let chunk = agent
            .family::<Files>()
            .read(a.handle_id, count, AtEof::Close)?;
        Ok(read_value(chunk))
    }

    fn order_key(agent: &Agent, a: &wire::FileRead) -> Option<u64> {
        agent
            .family::<Files>()
            .is_open(a.handle_id)
            .then_some(a.handle_id)
    }

    fn try_now(agent: &Agent, a: &wire::FileRead) -> Option<Outcome> {
        let count = usize::try_from(a.count).ok()?;
        let chunk = agent
            .family::<Files>()
            .try_read_now(a.handle_id, count, AtEof::Close)?;
        Some(chunk.map(read_value))
    }
}

/// The `file-read` reply value: `{"bufb64": ..., "eof": ...}` (a
/// [`wire::FileReadResult`]), its base64 encoded while it is written.
fn read_value(chunk: Chunk) -> Value {
    Value::Encoded {
        head: "{\"bufb64\":\"".into(),
        data: chunk.data,
        tail: if chunk.eof {
            "\",\"eof\":true}"
        } else {
            "\",\"eof\":false}"
        }
        .into(),
    }
}

/// `file-write`: appends the chunk; with `eof`, fsyncs and closes, replying true only
/// once the data is on disk. The chunk is decoded before the file is touched: invalid
/// base64 writes nothing.
impl Command for FileWrite {
    const RUN: Run = Run::Ordered;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::FileWrite) -> Outcome {
        let files = agent.family::<Files>();
        files.check_open(a.handle_id)?;
        let data = encoding::decode(&a.bufb64)
            .map_err(|e| Error::invalid(format!("bufb64 is not valid base64: {e}")))?;
        drop(a.bufb64);
        let then = match a.eof {
            true => AfterWrite::SyncAndClose,
            false => AfterWrite::Continue,
        };
        let written = files.write(a.handle_id, &data, then)?;
        if written < data.len() {
            // Only a non-blocking file (a FIFO opened by guest-file-open) takes less.
            return Err(Error::errno(
                Errno::EAGAIN,
                format!("write: {written} of {} bytes taken", data.len()),
            ));
        }
        reply::<Self>(&true)
    }

    fn order_key(agent: &Agent, a: &wire::FileWrite) -> Option<u64> {
        agent
            .family::<Files>()
            .is_open(a.handle_id)
            .then_some(a.handle_id)
    }
}

/// `file-close`. Not ordered: it acts at once.
impl Command for FileClose {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::HandleArgs) -> Outcome {
        agent.family::<Files>().close(a.handle_id)?;
        reply::<Self>(&true)
    }
}

/// `get-file-md5sum`: lowercase hex.
impl Command for GetFileMd5sum {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::PathArgs) -> Outcome {
        let digest = agent.family::<Files>().md5(&a.path)?;
        reply::<Self>(&encoding::hex(&digest))
    }
}

/// `file-chown`: -1 keeps the id; a final symlink is followed.
impl Command for FileChown {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::FileChown) -> Outcome {
        let id = |v: i64, what: &str| -> Result<Option<u32>, Error> {
            match v {
                -1 => Ok(None),
                v => u32::try_from(v)
                    .ok()
                    .filter(|&v| v != u32::MAX)
                    .map(Some)
                    .ok_or_else(|| Error::invalid(format!("{what} {v} is out of range"))),
            }
        };
        let (uid, gid) = (id(a.uid, "uid")?, id(a.gid, "gid")?);
        agent.family::<Files>().chown(&a.path, uid, gid)?;
        reply::<Self>(&true)
    }
}

/// `file-chmod`.
impl Command for FileChmod {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::FileChmod) -> Outcome {
        agent.family::<Files>().chmod(&a.path, a.perm)?;
        reply::<Self>(&true)
    }
}

/// `file-rename` (extension).
impl Command for FileRename {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::FileRename) -> Outcome {
        agent.family::<Files>().rename(&a.src, &a.dst)?;
        reply::<Self>(&true)
    }
}

/// `directory-create`: `mkdir -p` with exact permissions.
impl Command for DirectoryCreate {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::DirectoryCreate) -> Outcome {
        agent.family::<Files>().mkdir_all(&a.path, a.perm)?;
        reply::<Self>(&true)
    }
}

/// `file-stat`: lstat, in Go's `syscall.Stat_t` shape.
impl Command for FileStat {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::PathArgs) -> Outcome {
        let meta = agent.family::<Files>().stat(&a.path)?;
        reply::<Self>(&file_stat_of(base_name(&a.path), &meta))
    }
}

/// `directory-list`: at most `n` entries when `n` > 0. Only the reply text is held in
/// memory (a `Vec<FileStat>` as JSON, written entry by entry).
impl Command for DirectoryList {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::DirectoryList) -> Outcome {
        let limit = if a.n <= 0 {
            usize::MAX
        } else {
            usize::try_from(a.n).unwrap_or(usize::MAX)
        };
        let internal = |e: &dyn std::fmt::Display| Error::Internal(format!("directory-list: {e}"));
        let mut out = b"[".to_vec();
        agent.family::<Files>().list(&a.path, limit, |name, meta| {
            if out.len() > 1 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &file_stat_of(name, meta)).map_err(|e| internal(&e))
        })?;
        out.push(b']');
        let text = String::from_utf8(out).map_err(|e| internal(&e))?;
        RawValue::from_string(text)
            .map(Into::into)
            .map_err(|e| internal(&e))
    }
}

fn file_stat_of(name: String, meta: &Metadata) -> wire::FileStat {
    wire::FileStat {
        name,
        isdir: meta.is_dir(),
        stat: stat_of(meta),
    }
}

/// The Go `syscall.Stat_t` view of lstat's result.
fn stat_of(m: &Metadata) -> Stat {
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Stat {
        Dev: m.dev(),
        Ino: m.ino(),
        Nlink: m.nlink(),
        Mode: m.mode(),
        Uid: m.uid(),
        Gid: m.gid(),
        X__pad0: 0,
        Rdev: m.rdev(),
        Size: signed(m.size()),
        Blksize: signed(m.blksize()),
        Blocks: signed(m.blocks()),
        Atim: Timespec {
            Sec: m.atime(),
            Nsec: m.atime_nsec(),
        },
        Mtim: Timespec {
            Sec: m.mtime(),
            Nsec: m.mtime_nsec(),
        },
        Ctim: Timespec {
            Sec: m.ctime(),
            Nsec: m.ctime_nsec(),
        },
        X__unused: [0; 3],
    }
}

/// The last element of a path as Go's `filepath.Base` gives it (what the original
/// reported): trailing slashes ignored, `/` for the root.
fn base_name(path: &Path) -> String {
    let s = path.to_string_lossy();
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        return if s.is_empty() { ".".into() } else { "/".into() };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn base_names_like_go() {
        assert_eq!(base_name(Path::new("/etc/passwd")), "passwd");
        assert_eq!(base_name(Path::new("/tmp/dir/")), "dir");
        assert_eq!(base_name(Path::new("/")), "/");
        assert_eq!(base_name(Path::new("//")), "/");
        assert_eq!(base_name(Path::new("/tmp/..")), "..");
        assert_eq!(base_name(Path::new("rel")), "rel");
    }

    #[test]
    fn stat_matches_lstat() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let m = fs::symlink_metadata(f.path()).unwrap();
        let s = stat_of(&m);
        let raw = nix::sys::stat::lstat(f.path()).unwrap();
        assert_eq!(s.Ino, raw.st_ino);
        assert_eq!(s.Dev, raw.st_dev);
        assert_eq!(s.Mode, raw.st_mode);
        assert_eq!(s.Size, raw.st_size);
        assert_eq!(s.Blksize, raw.st_blksize);
        assert_eq!(s.Blocks, raw.st_blocks);
        assert_eq!(s.Mtim.Sec, raw.st_mtime);
        assert_eq!(s.Mtim.Nsec, raw.st_mtime_nsec);
    }
}

#[cfg(test)]
mod value_tests {
    use super::*;
    use crate::memory::Buffer;

    fn text(data: &[u8], eof: bool) -> String {
        let value = read_value(Chunk {
            data: Buffer::from(data.to_vec()),
            eof,
        });
        assert_eq!(value.text_len(), value.to_json().len());
        value.to_json()
    }

    #[test]
    fn read_values_are_file_read_results() {
        assert_eq!(text(b"hel", false), r#"{"bufb64":"aGVs","eof":false}"#);
        assert_eq!(text(b"lo", true), r#"{"bufb64":"bG8=","eof":true}"#);
        assert_eq!(text(b"", true), r#"{"bufb64":"","eof":true}"#);
        let r: wire::FileReadResult = serde_json::from_str(&text(b"x", true)).unwrap();
        assert_eq!((r.bufb64.as_str(), r.eof), ("eA==", true));
    }
}
