//! File contents: `file-open`, `file-read`, `file-write`, `file-close`,
//! `get-file-md5sum`.
//!
//! Transfers are built for speed without holding memory: a read goes straight into
//! one buffer and is base64-encoded straight into the reply text; a write decodes the
//! request's base64 (borrowed from the request line) once and writes it all.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest, Md5};
use phoenix_proto::types::files::{FileOpen, FileRead, FileWrite, HandleArgs, PathArgs};
use phoenix_proto::types::files::{MAX_PERM, MAX_READ_COUNT};
use serde_json::value::RawValue;

use crate::agent::Agent;
use crate::commands::{reply, Args, Outcome};
use crate::error::{Context, Error};

/// Size of one read while hashing: large enough that syscalls cost nothing next to
/// the hash, and at the malloc mmap threshold, so it goes back to the kernel at once.
const MD5_CHUNK: usize = 1 << 20;

/// Rejects permission values with bits outside 07777.
pub(super) fn check_perm(args: &Args<'_>, perm: u32) -> Result<(), Error> {
    if perm > MAX_PERM {
        return Err(args.invalid(format!("perm {perm} is above 4095 (07777)")));
    }
    Ok(())
}

/// `file-open`: returns a new handle.
pub(super) fn file_open(agent: &Agent, args: &Args<'_>) -> Outcome {
    let a: FileOpen = args.parse()?;
    let write = match a.mode.as_str() {
        "r" => false,
        "w" => true,
        other => return Err(args.invalid(format!("mode must be \"r\" or \"w\", not {other:?}"))),
    };
    check_perm(args, a.perm)?;
    // The place is taken first: a refused open must not truncate the file.
    let slot = agent.files.reserve()?;
    let file = if write {
        open_write(&a.path, a.perm, a.force)?
    } else {
        open_read(&a.path)?
    };
    reply(&slot.fill(a.path, file))
}

/// Opens for reading; a directory is refused here rather than at the first read.
fn open_read(path: &Path) -> Result<File, Error> {
    let ctx = || format!("open {}", path.display());
    let file = File::open(path).context(ctx)?;
    if file.metadata().context(ctx)?.is_dir() {
        return Err(Error::os(ctx(), io::Error::from_raw_os_error(libc::EISDIR)));
    }
    Ok(file)
}

/// Opens for writing: creates the file with exactly `perm` (the umask does not apply),
/// or truncates an existing one, whose permissions stay as they are. With `force`, a
/// running executable (ETXTBSY) is unlinked and created anew: the running program
/// keeps its old inode.
fn open_write(path: &Path, perm: u32, force: bool) -> Result<File, Error> {
    let ctx = || format!("open {}", path.display());
    let mut unlinked = false;
    loop {
        // O_EXCL tells a file we create (whose mode we then set) from an existing one.
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(perm)
            .open(path)
        {
            Ok(file) => return set_exact_perm(file, path, perm),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::os(ctx(), e)),
        }
        match OpenOptions::new().write(true).truncate(true).open(path) {
            Ok(file) => return Ok(file),
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && force && !unlinked => {
                fs::remove_file(path).context(|| format!("unlink {}", path.display()))?;
                unlinked = true;
            }
            // A dangling symlink (O_EXCL does not follow it) or a file removed in the
            // meantime: create through the link, as a plain O_CREAT would.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(perm)
                    .open(path)
                    .context(ctx)?;
                return set_exact_perm(file, path, perm);
            }
            Err(e) => return Err(Error::os(ctx(), e)),
        }
    }
}

fn set_exact_perm(file: File, path: &Path, perm: u32) -> Result<File, Error> {
    file.set_permissions(Permissions::from_mode(perm))
        .context(|| format!("chmod {}", path.display()))?;
    Ok(file)
}

/// `file-read`: up to `count` bytes; the read that reaches end of file closes the handle.
pub(super) fn file_read(agent: &Agent, args: &Args<'_>) -> Outcome {
    let a: FileRead = args.parse()?;
    if a.count == 0 || a.count > MAX_READ_COUNT {
        return Err(args.invalid(format!(
            "count must be 1 to {MAX_READ_COUNT}, not {}",
            a.count
        )));
    }
    let count = usize::try_from(a.count).map_err(|_| args.invalid("count too large"))?;
    let handle = agent.files.get(a.handle_id)?;
    let mut open = handle.lock()?;
    let ctx = || format!("read {}", handle.path().display());
    // A regular file is read until `count` or end of file, so the last chunk comes
    // with eof true; a pipe or device gives what one read returns, without waiting.
    let regular = open.file().metadata().context(ctx)?.is_file();
    let mut data = Vec::new();
    let eof = read_up_to(open.file(), &mut data, count, regular).context(ctx)?;
    if eof {
        open.close(&agent.files)?;
    } else {
        drop(open);
    }
    read_reply(&data, eof)
}

/// Appends up to `count` bytes of `file` to `buf` (which it sizes itself, touching
/// only the pages the kernel fills); true when end of file was reached.
fn read_up_to(file: &File, buf: &mut Vec<u8>, count: usize, regular: bool) -> io::Result<bool> {
    buf.reserve_exact(count);
    let end = buf.len() + count;
    while buf.len() < end {
        let want = end - buf.len();
        let spare = &mut buf.spare_capacity_mut()[..want];
        // SAFETY: `spare` is writable memory owned by `buf` of `spare.len()` bytes; the
        // kernel writes at most that many into it.
        let n = unsafe { libc::read(file.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        match n {
            0 => return Ok(true),
            n if n > 0 => {
                let n = n.unsigned_abs();
                // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
                if !regular {
                    return Ok(false);
                }
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(false)
}

/// `{"bufb64":"...","eof":B}`, encoded straight into the reply's only buffer.
fn read_reply(data: &[u8], eof: bool) -> Outcome {
    const HEAD: &[u8] = b"{\"bufb64\":\"";
    let tail: &[u8] = if eof {
        b"\",\"eof\":true}"
    } else {
        b"\",\"eof\":false}"
    };
    let internal = |e: &dyn std::fmt::Display| Error::Internal(format!("file-read reply: {e}"));
    let b64 = base64::encoded_len(data.len(), true).ok_or_else(|| internal(&"too large"))?;
    let mut out = Vec::with_capacity(HEAD.len() + b64 + tail.len());
    out.extend_from_slice(HEAD);
    out.resize(HEAD.len() + b64, 0);
    STANDARD
        .encode_slice(data, &mut out[HEAD.len()..])
        .map_err(|e| internal(&e))?;
    out.extend_from_slice(tail);
    let text = String::from_utf8(out).map_err(|e| internal(&e))?;
    RawValue::from_string(text).map_err(|e| internal(&e))
}

/// `file-write`: appends the chunk; with `eof`, fsyncs and closes, replying true only
/// once the data is on disk.
pub(super) fn file_write(agent: &Agent, args: &Args<'_>) -> Outcome {
    let a: FileWrite<'_> = args.parse()?;
    let handle = agent.files.get(a.handle_id)?;
    // Decoded before the file is touched: invalid base64 writes nothing.
    let data = decode_base64(&a.bufb64)
        .map_err(|e| args.invalid(format!("bufb64 is not valid base64: {e}")))?;
    drop(a.bufb64);
    let mut open = handle.lock()?;
    let path = handle.path().display();
    let written = open
        .file()
        .write_all(&data)
        .context(|| format!("write {path}"));
    drop(data);
    if !a.eof {
        written?;
        return reply(&true);
    }
    // The last chunk closes the handle whatever happens: the host is done with it.
    let synced = written.and_then(|()| open.file().sync_all().context(|| format!("fsync {path}")));
    let closed = open.close(&agent.files);
    synced.and(closed)?;
    reply(&true)
}

/// Standard padded base64. Like the original (Go's StdEncoding), line breaks inside
/// the text are ignored.
fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    match STANDARD.decode(text) {
        Err(e) if text.contains(['\r', '\n']) => {
            let joined: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
            STANDARD.decode(joined).map_err(|_| e)
        }
        other => other,
    }
}

/// `file-close`.
pub(super) fn file_close(agent: &Agent, args: &Args<'_>) -> Outcome {
    let a: HandleArgs = args.parse()?;
    agent.files.close(a.handle_id)?;
    reply(&true)
}

/// `get-file-md5sum`: lowercase hex, streamed in large reads on a worker thread.
pub(super) fn file_md5sum(_: &Agent, args: &Args<'_>) -> Outcome {
    let a: PathArgs = args.parse()?;
    let hex = md5_file(&a.path)?;
    reply(&hex)
}

fn md5_file(path: &Path) -> Result<String, Error> {
    let mut file = File::open(path).context(|| format!("open {}", path.display()))?;
    // Only a hint for the kernel's read-ahead; failure changes nothing.
    let _ = nix::fcntl::posix_fadvise(
        file.as_raw_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
    );
    let mut buf = vec![0u8; MD5_CHUNK];
    let mut hash = Md5::new();
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hash.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::os(format!("read {}", path.display()), e)),
        }
    }
    Ok(hex(&hash.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_reply_is_valid_json() {
        let r = read_reply(b"hello", false).unwrap();
        assert_eq!(r.get(), r#"{"bufb64":"aGVsbG8=","eof":false}"#);
        let r = read_reply(b"", true).unwrap();
        assert_eq!(r.get(), r#"{"bufb64":"","eof":true}"#);
    }

    #[test]
    fn base64_with_line_breaks_is_accepted() {
        assert_eq!(decode_base64("aGVs\r\nbG8=").unwrap(), b"hello");
        assert!(decode_base64("aGVsbG8").is_err());
        assert!(decode_base64("a!==").is_err());
    }

    #[test]
    fn md5_hex() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"abc").unwrap();
        assert_eq!(
            md5_file(f.path()).unwrap(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[test]
    fn short_reads_of_regular_files_reach_eof() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[7u8; 10]).unwrap();
        let file = File::open(f.path()).unwrap();
        let mut buf = Vec::new();
        assert!(!read_up_to(&file, &mut buf, 4, true).unwrap());
        assert_eq!(buf.len(), 4);
        assert!(read_up_to(&file, &mut buf, 100, true).unwrap());
        assert_eq!(buf.len(), 10);
        assert!(read_up_to(&file, &mut buf, 100, true).unwrap());
        assert_eq!(buf.len(), 10);
    }
}
