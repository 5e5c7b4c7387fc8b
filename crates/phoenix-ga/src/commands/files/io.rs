//! File contents: `file-open`, `file-read`, `file-write`, `file-close`,
//! `get-file-md5sum`.
//!
//! Transfers are built for speed without holding memory: a read is encoded piece by
//! piece straight into the reply text, so the data never exists whole outside it; a
//! write decodes the request's base64 (borrowed from the request) once and writes it
//! all.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use base64::Engine as _;
use md5::{Digest, Md5};
use phoenix_proto::types::files::{FileOpen, FileRead, FileWrite, HandleArgs, PathArgs};
use phoenix_proto::types::files::{MAX_PERM, MAX_READ_COUNT};
use rustix::io::ReadWriteFlags;

use crate::agent::Agent;
use crate::buffer::Buffer;
use crate::commands::{reply, Args, Outcome, Value};
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
    let (file, regular) = if write {
        (open_write(&a.path, a.perm, a.force)?, true)
    } else {
        open_read(&a.path)?
    };
    reply(&slot.fill(a.path, file, regular))
}

/// Opens for reading; a directory is refused here rather than at the first read.
/// Also tells whether the file is a regular one.
fn open_read(path: &Path) -> Result<(File, bool), Error> {
    let ctx = || format!("open {}", path.display());
    let file = File::open(path).context(ctx)?;
    let kind = file.metadata().context(ctx)?.file_type();
    if kind.is_dir() {
        return Err(Error::os(ctx(), io::Error::from_raw_os_error(libc::EISDIR)));
    }
    Ok((file, kind.is_file()))
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
    let regular = open.regular();
    let (data, eof) = read_chunk(open.file(), count, regular)
        .context(|| format!("read {}", handle.path().display()))?;
    if eof {
        open.close(&agent.files)?;
    } else {
        drop(open);
    }
    Ok(read_value(data, eof))
}

/// Largest `file-read` tried on the reader thread: small enough that reading and
/// encoding it from the page cache takes microseconds.
const NOWAIT_READ_MAX: usize = 64 << 10;

/// `file-read` on the reader thread, for small chunks of regular files whose pages are
/// all in the page cache: `preadv2(RWF_NOWAIT)` reads them or says EAGAIN, never
/// waiting for a disk. `None` (the pool then runs [`file_read`]) for anything else:
/// a larger count, a pipe or device, a busy or unknown handle, data not cached, a
/// filesystem without RWF_NOWAIT, any error (the pool words it).
pub(super) fn file_read_nowait(agent: &Agent, args: &Args<'_>) -> Option<Outcome> {
    let a: FileRead = args.parse().ok()?;
    let count = usize::try_from(a.count)
        .ok()
        .filter(|c| (1..=NOWAIT_READ_MAX).contains(c))?;
    let handle = agent.files.get(a.handle_id).ok()?;
    let mut open = handle.try_lock()?;
    if !open.regular() {
        return None;
    }
    let mut buf = Buffer::new(count).ok()?;
    let (mut got, mut eof) = (0, false);
    while got < count {
        let mut iov = [io::IoSliceMut::new(&mut buf[got..])];
        // u64::MAX: at the file's own offset, which advances.
        match rustix::io::preadv2(open.file(), &mut iov, u64::MAX, ReadWriteFlags::NOWAIT) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => {
                // Give back what was read, so the pool's read starts where this one
                // did; if the offset cannot be moved back, the bytes read go out as
                // a short chunk rather than be lost.
                let back = i64::try_from(got).ok()?;
                if got == 0 || open.file().seek(SeekFrom::Current(-back)).is_ok() {
                    return None;
                }
                break;
            }
        }
    }
    buf.truncate(got);
    if eof {
        if let Err(e) = open.close(&agent.files) {
            return Some(Err(e));
        }
    }
    Some(Ok(read_value(buf, eof)))
}

/// The `file-read` reply value for `data`.
fn read_value(data: Buffer, eof: bool) -> Value {
    Value::Encoded {
        head: "{\"bufb64\":\"",
        data,
        tail: if eof {
            "\",\"eof\":true}"
        } else {
            "\",\"eof\":false}"
        },
    }
}

/// Reads up to `count` bytes, and whether end of file was reached. The bytes are
/// encoded later, while the reply is written.
///
/// A regular file is read until `count` bytes or end of file, so the chunk that ends
/// the file comes with eof true; a pipe or device gives what one read returns, and
/// eof only when that is nothing.
fn read_chunk(file: &File, count: usize, regular: bool) -> io::Result<(Buffer, bool)> {
    let mut buf = Buffer::new(count).map_err(|_| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("no memory for {count} bytes"),
        )
    })?;
    let (got, eof) = fill(file, &mut buf, regular)?;
    buf.truncate(got);
    Ok((buf, eof))
}

/// Fills `buf` from `file` (a pipe or device: at most one read that returns data);
/// the bytes read and whether end of file was seen.
fn fill(mut file: &File, buf: &mut [u8], regular: bool) -> io::Result<(usize, bool)> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => return Ok((got, true)),
            Ok(n) => {
                got += n;
                if !regular {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((got, false))
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
/// the text are ignored, and so are non-zero bits after the last full byte.
///
/// Decoded with SIMD (base64-simd picks SSSE3/AVX2 at run time) into a transfer
/// buffer (reused between chunks, see [`Buffer`]) when the text is valid, which it
/// nearly always is; otherwise the `base64` crate decodes it again, for its exact
/// error message.
pub(crate) fn decode_base64(text: &str) -> Result<Buffer, base64::DecodeError> {
    let most = base64_simd::STANDARD.estimated_decoded_length(text.len());
    if let Ok(mut buf) = Buffer::new(most) {
        let out = base64_simd::Out::from_slice(&mut buf[..]);
        if let Ok(n) = base64_simd::STANDARD
            .decode(text.as_bytes(), out)
            .map(|d| d.len())
        {
            buf.truncate(n);
            return Ok(buf);
        }
    }
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    match lenient.decode(text) {
        Err(e) if text.contains(['\r', '\n']) => {
            let joined: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
            lenient.decode(joined).map_err(|_| e)
        }
        other => other,
    }
    .map(Buffer::from)
}

/// `file-close`.
pub(super) fn file_close(agent: &Agent, args: &Args<'_>) -> Outcome {
    let a: HandleArgs = args.parse()?;
    agent.files.close(a.handle_id)?;
    reply(&true)
}

/// `get-file-md5sum`: lowercase hex, streamed in large reads on a worker thread.
pub(super) fn file_md5sum(agent: &Agent, args: &Args<'_>) -> Outcome {
    let a: PathArgs = args.parse()?;
    // Its 1 MiB read buffers stay in the heap: trim once the pool is idle.
    agent.pool.note_large();
    let hex = md5_file(&a.path)?;
    reply(&hex)
}

fn md5_file(path: &Path) -> Result<String, Error> {
    let file = File::open(path).context(|| format!("open {}", path.display()))?;
    // Only a hint for the kernel's read-ahead; failure changes nothing.
    let _ = nix::fcntl::posix_fadvise(
        file.as_raw_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
    );
    let digest = hash_overlapped(&file).context(|| format!("read {}", path.display()))?;
    Ok(hex(&digest))
}

/// Hashes while a helper thread reads the next chunk, so the copy out of the page
/// cache (or the wait for the disk) costs no hashing time. Two buffers circulate
/// between the threads; an error or end of file ends both.
fn hash_overlapped(file: &File) -> io::Result<[u8; 16]> {
    type Chunk = io::Result<(Vec<u8>, usize)>;
    let (full_tx, full_rx) = mpsc::sync_channel::<Chunk>(2);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(2);
    for _ in 0..2 {
        let _ = empty_tx.send(vec![0u8; MD5_CHUNK]);
    }
    thread::scope(move |scope| {
        let reader = thread::Builder::new()
            .name("md5-read".into())
            .stack_size(64 << 10)
            .spawn_scoped(scope, move || {
                // Stops at end of file, on an error, or when the hasher has gone.
                while let Ok(mut buf) = empty_rx.recv() {
                    let n = read_retry(file, &mut buf);
                    let more = matches!(n, Ok(n) if n > 0);
                    if full_tx.send(n.map(|n| (buf, n))).is_err() || !more {
                        break;
                    }
                }
            });
        let mut hash = Md5::new();
        if reader.is_err() {
            // No thread to spare: read and hash in turn.
            let mut buf = vec![0u8; MD5_CHUNK];
            loop {
                match read_retry(file, &mut buf)? {
                    0 => return Ok(hash.finalize().into()),
                    n => hash.update(&buf[..n]),
                }
            }
        }
        loop {
            let (buf, n) = full_rx
                .recv()
                .map_err(|_| io::Error::other("md5 reader thread ended"))??;
            if n == 0 {
                return Ok(hash.finalize().into());
            }
            hash.update(&buf[..n]);
            let _ = empty_tx.send(buf);
        }
    })
}

fn read_retry(mut file: &File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
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

    fn file_with(data: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(data).unwrap();
        let file = File::open(f.path()).unwrap();
        (f, file)
    }

    fn read_text(file: &File, count: usize) -> (String, bool) {
        let (data, eof) = read_chunk(file, count, true).unwrap();
        let value = read_value(data, eof);
        assert_eq!(value.text_len(), value.to_json().len());
        (value.to_json(), eof)
    }

    #[test]
    fn reads_chunks_until_end_of_file() {
        let (_f, file) = file_with(b"hello");
        let (text, eof) = read_text(&file, 3);
        assert_eq!(
            (text.as_str(), eof),
            (r#"{"bufb64":"aGVs","eof":false}"#, false)
        );
        let (text, eof) = read_text(&file, 4096);
        assert_eq!(
            (text.as_str(), eof),
            (r#"{"bufb64":"bG8=","eof":true}"#, true)
        );
        let (text, eof) = read_text(&file, 4096);
        assert_eq!((text.as_str(), eof), (r#"{"bufb64":"","eof":true}"#, true));
    }

    #[test]
    fn a_chunk_is_full_unless_it_ends_the_file() {
        let data: Vec<u8> = (0..200_007).map(|i| (i * 7 + i / 251) as u8).collect();
        for count in [4096, 65_535, 65_536, 200_006, 200_007, 200_008] {
            let (_f, file) = file_with(&data);
            let mut back = Vec::new();
            loop {
                let (part, eof) = read_chunk(&file, count, true).unwrap();
                assert!(eof || part.len() == count, "count {count}: short chunk");
                back.extend_from_slice(&part);
                if eof {
                    break;
                }
            }
            assert!(back == data, "count {count}");
        }
    }

    #[test]
    fn base64_is_decoded_like_go_std_encoding() {
        assert_eq!(&decode_base64("aGVsbG8=").unwrap()[..], b"hello");
        assert_eq!(&decode_base64("").unwrap()[..], b"");
        let long = vec![0xA5u8; 100_003];
        let text = base64::engine::general_purpose::STANDARD.encode(&long);
        assert_eq!(&decode_base64(&text).unwrap()[..], &long[..]);
        // Line breaks are skipped; so are bits after the last byte ("aGVsbG9=").
        assert_eq!(&decode_base64("aGVs\r\nbG8=").unwrap()[..], b"hello");
        assert_eq!(&decode_base64("aGVsbG9=").unwrap()[..], b"hello");
        // Missing padding and foreign characters are errors, with the offset.
        assert!(decode_base64("aGVsbG8").is_err());
        let e = decode_base64("a!==").unwrap_err().to_string();
        assert!(e.contains("offset 1"), "{e}");
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
}
