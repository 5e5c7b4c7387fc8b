//! File contents: open, read, write, seek, flush, close, MD5. Typed operations on the
//! family's handle table, shared by every dialect's adapters.
//!
//! Transfers are built for speed without holding memory: a chunk is read into a
//! transfer buffer that the reply encodes piece by piece on its way out, and a
//! written chunk is decoded into one, reused between chunks ([`crate::memory`]).

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use md5::{Digest, Md5};
use nix::errno::Errno;
use rustix::io::ReadWriteFlags;

use super::handles::Backing;
use super::Files;
use crate::error::{Context, Error};
use crate::memory::{self, Buffer};

/// Size of one read while hashing: large enough that syscalls cost nothing next to
/// the hash, and at the malloc mmap threshold, so it goes back to the kernel at once.
const MD5_CHUNK: usize = 1 << 20;

/// Largest read tried on the reader thread ([`Files::try_read_now`]): small enough that
/// reading and encoding it from the page cache takes microseconds.
pub const NOW_READ_MAX: usize = 64 << 10;

/// How [`Files::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// For reading; a directory is refused.
    Read,
    /// Write-only: created with exactly `perm` (the umask does not apply), or
    /// truncated, keeping its permissions. With `force`, a running executable
    /// (ETXTBSY) is unlinked and created anew: the running program keeps its old inode.
    Write {
        /// Permissions of a file this creates.
        perm: u32,
        /// Replace a running executable.
        force: bool,
    },
    /// As fopen(3) opens a file for a stream (qemu-ga's `guest-file-open`), and
    /// non-blocking: a read or write of a FIFO or device never waits (a FIFO with no
    /// writer reads as end of file), and a terminal never becomes the agent's. A file it
    /// creates gets exactly `perm`; an existing one keeps its permissions. A directory
    /// is refused.
    Stream(Access),
}

/// The access of an [`OpenMode::Stream`]: what fopen's `r`, `w`, `a` and `+` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Reads allowed.
    pub read: bool,
    /// Writes allowed.
    pub write: bool,
    /// Every write goes to the end of the file (implies `write`).
    pub append: bool,
    /// Created when missing, with exactly `perm`.
    pub create: bool,
    /// Emptied when it exists.
    pub truncate: bool,
    /// Permissions of a file this creates.
    pub perm: u32,
}

/// What a read that reaches the end of the file does with the handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEof {
    /// Closes it (the Phoenix protocol).
    Close,
    /// Nothing: the host closes it (qemu-ga's protocol).
    Keep,
}

/// Where [`Files::seek`] counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whence {
    /// The start of the file.
    Set,
    /// The current position.
    Cur,
    /// The end of the file.
    End,
}

/// What happens after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterWrite {
    /// Nothing: the handle stays open for more.
    Continue,
    /// The file is made durable (fsync) and the handle closed, whatever happens: the
    /// host is done with it. Succeeds only once the data is on disk.
    SyncAndClose,
}

/// One chunk read from a handle.
#[derive(Debug)]
pub struct Chunk {
    /// The bytes read.
    pub data: Buffer,
    /// Whether the read reached the end of the file.
    pub eof: bool,
}

impl Files {
    /// Opens `path`; its new handle number. The place in the table is taken first: a
    /// refused open (EMFILE) must not truncate the file.
    pub fn open(&self, path: PathBuf, mode: OpenMode) -> Result<u64, Error> {
        let slot = self.handles.reserve()?;
        let (file, regular) = match mode {
            OpenMode::Read => open_read(&path)?,
            OpenMode::Write { perm, force } => {
                check_perm(perm)?;
                let mut options = OpenOptions::new();
                options.write(true);
                (open_create(&path, &options, true, perm, force)?, true)
            }
            OpenMode::Stream(access) => open_stream(&path, access)?,
        };
        let backing = match regular {
            false => Backing::Stream,
            true if in_memory(&file) => Backing::Memory,
            true => Backing::Disk,
        };
        Ok(slot.fill(path, file, backing))
    }

    /// Whether handle `id` is open.
    pub fn is_open(&self, id: u64) -> bool {
        self.handles.is_open(id)
    }

    /// Reads up to `count` bytes from handle `id`. A regular file is read until `count`
    /// bytes or end of file, so the chunk that ends the file comes with eof; a pipe or
    /// device gives what one read returns, and eof only when that is nothing.
    pub fn read(&self, id: u64, count: usize, at_eof: AtEof) -> Result<Chunk, Error> {
        let handle = self.handles.get(id)?;
        let mut open = handle.lock()?;
        let regular = open.regular();
        let chunk = read_chunk(open.file(), count, regular)
            .context(|| format!("read {}", handle.path().display()))?;
        if chunk.eof && at_eof == AtEof::Close {
            open.close(&self.handles)?;
        }
        Ok(chunk)
    }

    /// [`Files::read`] without blocking, for the reader thread: only for at most
    /// [`NOW_READ_MAX`] bytes of a regular file whose pages are all in the page cache
    /// (`preadv2(RWF_NOWAIT)` reads them or says EAGAIN, never waiting for a disk), or
    /// of a file on tmpfs or ramfs (which have no RWF_NOWAIT, and no disk to wait for).
    /// `None` for anything else (a larger count, a pipe or device, a busy or unknown
    /// handle, data not cached, another filesystem without RWF_NOWAIT, any error): the
    /// caller then reads on the pool, which words any error, from where this started.
    pub fn try_read_now(
        &self,
        id: u64,
        count: usize,
        at_eof: AtEof,
    ) -> Option<Result<Chunk, Error>> {
        if !(1..=NOW_READ_MAX).contains(&count) {
            return None;
        }
        let handle = self.handles.get(id).ok()?;
        let mut open = handle.try_lock()?;
        if !open.regular() {
            return None;
        }
        let flags = match open.backing() {
            Backing::Memory => ReadWriteFlags::empty(),
            _ => ReadWriteFlags::NOWAIT,
        };
        let mut buf = Buffer::new(count).ok()?;
        let (mut got, mut eof) = (0, false);
        while got < count {
            let mut iov = [io::IoSliceMut::new(&mut buf[got..])];
            // u64::MAX: at the file's own offset, which advances.
            match rustix::io::preadv2(open.file(), &mut iov, u64::MAX, flags) {
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
        if eof && at_eof == AtEof::Close {
            if let Err(e) = open.close(&self.handles) {
                return Some(Err(e));
            }
        }
        Some(Ok(Chunk { data: buf, eof }))
    }

    /// Writes `data` to handle `id`, then does what `then` says; the bytes written.
    /// That is all of `data`, except on a non-blocking file ([`OpenMode::Stream`]: a
    /// FIFO or device) that takes no more: then what it took, or EAGAIN when it took
    /// nothing.
    pub fn write(&self, id: u64, data: &[u8], then: AfterWrite) -> Result<usize, Error> {
        let handle = self.handles.get(id)?;
        let mut open = handle.lock()?;
        let path = handle.path().display();
        let written = write_some(open.file(), data).context(|| format!("write {path}"));
        if then == AfterWrite::Continue {
            return written;
        }
        let synced = written.and_then(|n| {
            open.file()
                .sync_all()
                .context(|| format!("fsync {path}"))
                .map(|()| n)
        });
        let closed = open.close(&self.handles);
        synced.and_then(|n| closed.map(|()| n))
    }

    /// Moves the position of handle `id` by `offset` from `whence`; the new position.
    /// A position before the start is EINVAL, a FIFO or terminal ESPIPE (lseek's own
    /// errors).
    pub fn seek(&self, id: u64, offset: i64, whence: Whence) -> Result<u64, Error> {
        let handle = self.handles.get(id)?;
        let mut open = handle.lock()?;
        let whence = match whence {
            Whence::Set => nix::unistd::Whence::SeekSet,
            Whence::Cur => nix::unistd::Whence::SeekCur,
            Whence::End => nix::unistd::Whence::SeekEnd,
        };
        let ctx = || format!("seek {}", handle.path().display());
        let at = nix::unistd::lseek(open.file().as_raw_fd(), offset, whence).context(ctx)?;
        u64::try_from(at).map_err(|_| Error::os(ctx(), io::Error::from_raw_os_error(libc::EOVERFLOW)))
    }

    /// Succeeds once handle `id` is open and no request is using it: writes go
    /// straight to the kernel (no buffer in the agent), so there is nothing to flush.
    pub fn flush(&self, id: u64) -> Result<(), Error> {
        self.handles.get(id)?.lock().map(drop)
    }

    /// Closes handle `id` at once, even while a read of it is stuck (a FIFO with no
    /// writer), which is how a host gives up on it.
    pub fn close(&self, id: u64) -> Result<(), Error> {
        self.handles.close(id)
    }

    /// The MD5 digest of the file at `path`, streamed in large reads.
    pub fn md5(&self, path: &Path) -> Result<[u8; 16], Error> {
        // Its 1 MiB read buffers stay in the heap: trim once the pool is idle.
        memory::note_large();
        md5_file(path)
    }
}

/// Rejects permission values with bits outside 07777.
pub fn check_perm(perm: u32) -> Result<(), Error> {
    if perm > phoenix_proto::types::files::MAX_PERM {
        return Err(Error::invalid(format!("perm {perm} is above 4095 (07777)")));
    }
    Ok(())
}

/// Whether `file` lives on tmpfs or ramfs, whose reads wait for no disk.
fn in_memory(file: &File) -> bool {
    use nix::sys::statfs::{fstatfs, FsType, TMPFS_MAGIC};
    // RAMFS_MAGIC of linux/magic.h (the rootfs of an initramfs), in neither nix nor libc.
    let ramfs = FsType(0x8584_58f6);
    fstatfs(file).is_ok_and(|s| [TMPFS_MAGIC, ramfs].contains(&s.filesystem_type()))
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

/// Opens with `options` (the access and flags), creating the file with exactly `perm`
/// (the umask does not apply) when it is missing; an existing file keeps its
/// permissions and is emptied when `truncate` says so. With `force`, a running
/// executable (ETXTBSY) is unlinked and created anew: the running program keeps its
/// old inode.
fn open_create(
    path: &Path,
    options: &OpenOptions,
    truncate: bool,
    perm: u32,
    force: bool,
) -> Result<File, Error> {
    let ctx = || format!("open {}", path.display());
    let mut unlinked = false;
    loop {
        // O_EXCL tells a file we create (whose mode we then set) from an existing one.
        match options.clone().create_new(true).mode(perm).open(path) {
            Ok(file) => return set_exact_perm(file, path, perm),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::os(ctx(), e)),
        }
        match options.clone().truncate(truncate).open(path) {
            Ok(file) => return Ok(file),
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && force && !unlinked => {
                fs::remove_file(path).context(|| format!("unlink {}", path.display()))?;
                unlinked = true;
            }
            // A dangling symlink (O_EXCL does not follow it) or a file removed in the
            // meantime: create through the link, as a plain O_CREAT would.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let file = options
                    .clone()
                    .create(true)
                    .truncate(truncate)
                    .mode(perm)
                    .open(path)
                    .context(ctx)?;
                return set_exact_perm(file, path, perm);
            }
            Err(e) => return Err(Error::os(ctx(), e)),
        }
    }
}

/// Opens as [`OpenMode::Stream`] says; the file and whether it is a regular one.
fn open_stream(path: &Path, access: Access) -> Result<(File, bool), Error> {
    let ctx = || format!("open {}", path.display());
    let mut options = OpenOptions::new();
    options
        .read(access.read)
        .write(access.write || access.append)
        .append(access.append)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK);
    let file = if access.create {
        check_perm(access.perm)?;
        open_create(path, &options, access.truncate, access.perm, false)?
    } else {
        options.truncate(access.truncate).open(path).context(ctx)?
    };
    let kind = file.metadata().context(ctx)?.file_type();
    if kind.is_dir() {
        return Err(Error::os(ctx(), io::Error::from_raw_os_error(libc::EISDIR)));
    }
    Ok((file, kind.is_file()))
}

fn set_exact_perm(file: File, path: &Path, perm: u32) -> Result<File, Error> {
    file.set_permissions(Permissions::from_mode(perm))
        .context(|| format!("chmod {}", path.display()))?;
    Ok(file)
}

/// Reads up to `count` bytes, and whether end of file was reached (see
/// [`Files::read`]).
fn read_chunk(file: &File, count: usize, regular: bool) -> io::Result<Chunk> {
    let mut buf = Buffer::new(count).map_err(|_| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("no memory for {count} bytes"),
        )
    })?;
    let (got, eof) = fill(file, &mut buf, regular)?;
    buf.truncate(got);
    Ok(Chunk { data: buf, eof })
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
            // A non-blocking FIFO or device with nothing to read now.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !regular => {
                return Ok((got, false))
            }
            Err(e) => return Err(e),
        }
    }
    Ok((got, false))
}

/// Writes `data` until it is all written, or until a non-blocking file takes no more
/// after taking some; the bytes written.
fn write_some(mut file: &File, data: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < data.len() {
        match file.write(&data[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && done > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn md5_file(path: &Path) -> Result<[u8; 16], Error> {
    // O_NONBLOCK: opening a FIFO without a writer would block; it is refused below.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .context(|| format!("open {}", path.display()))?;
    // A FIFO, socket or character device may never end (/dev/zero): a worker would
    // hash for ever. Files and block devices have an end.
    let kind = file
        .metadata()
        .context(|| format!("stat {}", path.display()))?
        .file_type();
    if !(kind.is_file() || kind.is_block_device() || kind.is_dir()) {
        return Err(Error::errno(
            Errno::EINVAL,
            format!(
                "{} is not a file or a block device: its end may never come",
                path.display()
            ),
        ));
    }
    // Only a hint for the kernel's read-ahead; failure changes nothing.
    let _ = nix::fcntl::posix_fadvise(
        file.as_raw_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
    );
    hash_overlapped(&file).context(|| format!("read {}", path.display()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(data: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(data).unwrap();
        let file = File::open(f.path()).unwrap();
        (f, file)
    }

    #[test]
    fn reads_chunks_until_end_of_file() {
        let (_f, file) = file_with(b"hello");
        let c = read_chunk(&file, 3, true).unwrap();
        assert_eq!((&c.data[..], c.eof), (&b"hel"[..], false));
        let c = read_chunk(&file, 4096, true).unwrap();
        assert_eq!((&c.data[..], c.eof), (&b"lo"[..], true));
        let c = read_chunk(&file, 4096, true).unwrap();
        assert_eq!((&c.data[..], c.eof), (&b""[..], true));
    }

    #[test]
    fn a_chunk_is_full_unless_it_ends_the_file() {
        let data: Vec<u8> = (0..200_007u32)
            .map(|i| (i * 7 + i / 251).to_le_bytes()[0])
            .collect();
        for count in [4096, 65_535, 65_536, 200_006, 200_007, 200_008] {
            let (_f, file) = file_with(&data);
            let mut back = Vec::new();
            loop {
                let c = read_chunk(&file, count, true).unwrap();
                assert!(c.eof || c.data.len() == count, "count {count}: short chunk");
                back.extend_from_slice(&c.data);
                if c.eof {
                    break;
                }
            }
            assert!(back == data, "count {count}");
        }
    }

    #[test]
    fn md5_of_a_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"abc").unwrap();
        let want = [
            0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0, 0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1,
            0x7f, 0x72,
        ];
        assert_eq!(md5_file(f.path()).unwrap(), want);
    }

    #[test]
    fn md5_of_what_may_never_end_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for path in [fifo.as_path(), Path::new("/dev/zero")] {
            let e = md5_file(path).unwrap_err();
            assert_eq!(e.code(), libc::EINVAL, "{}: {}", path.display(), e.message());
        }
        let e = md5_file(dir.path()).unwrap_err();
        assert_eq!(e.code(), libc::EISDIR, "{}", e.message());
    }
}
