//! Files and directories: `file-open`, `file-read`, `file-write`, `file-close`,
//! `get-file-md5sum`, `file-chown`, `file-chmod`, `file-stat`, `directory-create`,
//! `directory-list`.
//!
//! Data travels as bytes here; the base64 of the wire stays inside these methods
//! (base64-simd: SSSE3/AVX2 when the CPU has them, several times the scalar speed).

use std::path::Path;

use phoenix_proto::types::files::cmd;
use phoenix_proto::types::files::qga::{self, GuestFileWrite};
use phoenix_proto::types::files::{
    DirectoryCreate, DirectoryList, FileChmod, FileChown, FileOpen, FileRead, FileStat, FileWrite,
    HandleArgs, PathArgs,
};
use phoenix_proto::{Command, Dialect};

use crate::{Client, ClientError, Pending};

/// How `file-open` opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// `"r"`: read.
    Read,
    /// `"w"`: write-only, created if missing, truncated if present.
    Write,
}

impl OpenMode {
    fn wire(self) -> &'static str {
        match self {
            OpenMode::Read => "r",
            OpenMode::Write => "w",
        }
    }
}

/// One `file-read` (or `guest-file-read`) answer, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The bytes read.
    pub data: Vec<u8>,
    /// The read reached the end of the file; a Phoenix agent has closed the handle
    /// (qemu-ga's dialect leaves it open).
    pub eof: bool,
}

/// A read reply of either dialect: `bufb64` (Phoenix) or `buf-b64` (qemu-ga).
#[derive(serde::Deserialize)]
struct ReadReply {
    #[serde(alias = "buf-b64")]
    bufb64: String,
    eof: bool,
}

/// A `file-read` in flight.
#[derive(Debug)]
#[must_use = "the reply is lost unless waited for"]
pub struct PendingChunk<'c>(Pending<'c>);

impl PendingChunk<'_> {
    /// Waits for the chunk (the client's default timeout).
    pub fn wait(self) -> Result<Chunk, ClientError> {
        let timeout = self.0.client().options().timeout;
        let raw = self.0.wait(timeout)?;
        let r: ReadReply = serde_json::from_str(raw.get())
            .map_err(|e| ClientError::Protocol(format!("file-read: {e}")))?;
        let data = base64_simd::STANDARD
            .decode_to_vec(r.bufb64.as_bytes())
            .map_err(|e| ClientError::Protocol(format!("file-read: bad base64: {e}")))?;
        Ok(Chunk { data, eof: r.eof })
    }
}

/// A `file-write` in flight.
#[derive(Debug)]
#[must_use = "the reply is lost unless waited for"]
pub struct PendingWrite<'c>(Pending<'c>, u64);

impl PendingWrite<'_> {
    /// Waits for the agent's `true` (or, in the qemu-ga dialect, its count of the
    /// bytes written, which must be all of them).
    pub fn wait(self) -> Result<(), ClientError> {
        let timeout = self.0.client().options().timeout;
        let raw = self.0.wait(timeout)?;
        if let Ok(w) = serde_json::from_str::<GuestFileWrite>(raw.get()) {
            return match u64::try_from(w.count) == Ok(self.1) {
                true => Ok(()),
                false => Err(ClientError::Protocol(format!(
                    "guest-file-write wrote {} of {} bytes",
                    w.count, self.1
                ))),
            };
        }
        match raw.get() {
            "true" => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "file-write returned {other}"
            ))),
        }
    }
}

/// A handle as the qemu-ga dialect types it.
fn qga_handle(handle: u64) -> Result<i64, ClientError> {
    i64::try_from(handle).map_err(|_| ClientError::Protocol(format!("handle {handle}")))
}

fn raw_args<T: serde::Serialize>(
    args: &T,
) -> Result<Box<serde_json::value::RawValue>, ClientError> {
    serde_json::value::to_raw_value(args)
        .map_err(|e| ClientError::Protocol(format!("arguments: {e}")))
}

impl Client {
    /// `file-open`: a handle on `path`. `perm` (decimal on the wire) applies to a file
    /// that [`OpenMode::Write`] creates; `None` leaves the agent's default (0644).
    ///
    /// In the qemu-ga dialect, `guest-file-open` with mode `r` or `w`; `perm` cannot be
    /// given there ([`ClientError::Unsupported`]). So it is with every file call below:
    /// `file_read`, `file_write` and `file_close` use `guest-file-read`, `-write` and
    /// `-close` there, where a read at end of file leaves the handle open.
    pub fn file_open(
        &self,
        path: &Path,
        mode: OpenMode,
        perm: Option<u32>,
    ) -> Result<u64, ClientError> {
        if self.dialect() == Dialect::Qga {
            if perm.is_some() {
                return Err(ClientError::Unsupported {
                    what: "setting a new file's permissions".into(),
                });
            }
            let handle = self.invoke::<qga::cmd::GuestFileOpen>(&qga::GuestFileOpenArgs {
                path: path.to_string_lossy().into_owned(),
                mode: Some(mode.wire().to_string()),
            })?;
            return u64::try_from(handle)
                .map_err(|_| ClientError::Protocol(format!("guest-file-open returned {handle}")));
        }
        let mut args = serde_json::to_value(FileOpen {
            path: path.to_path_buf(),
            mode: mode.wire().to_string(),
            perm: perm.unwrap_or(0o644),
            force: false,
        })
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if let Some(obj) = args.as_object_mut() {
            // Only what the caller chose: old agents know neither default nor `force`.
            obj.remove("force");
            if perm.is_none() {
                obj.remove("perm");
            }
        }
        self.call(cmd::FileOpen::NAME, &args)
    }

    /// `file-read`: the next chunk of an open file. `count` (an extension of
    /// phoenix-rs, up to 32 MiB) asks for more than the original's 4096 bytes; an
    /// agent without the extension ignores it and answers 4096 bytes at most.
    pub fn file_read(&self, handle: u64, count: Option<u64>) -> Result<Chunk, ClientError> {
        self.send_file_read(handle, count)?.wait()
    }

    /// Sends a `file-read` without waiting for it: several may be in flight on an
    /// agent with [`AgentInfo::ordered_io`](crate::AgentInfo::ordered_io).
    pub fn send_file_read(
        &self,
        handle: u64,
        count: Option<u64>,
    ) -> Result<PendingChunk<'_>, ClientError> {
        if self.dialect() == Dialect::Qga {
            let args = raw_args(&qga::GuestFileReadArgs {
                handle: qga_handle(handle)?,
                count: count.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
            })?;
            let name = <qga::cmd::GuestFileRead as Command>::NAME;
            return Ok(PendingChunk(self.send_request(name, Some(&args))?));
        }
        let args = match count {
            Some(count) => raw_args(&FileRead {
                handle_id: handle,
                count,
            })?,
            None => raw_args(&HandleArgs { handle_id: handle })?,
        };
        Ok(PendingChunk(
            self.send_request(cmd::FileRead::NAME, Some(&args))?,
        ))
    }

    /// `file-write`: appends `data`; `eof` closes the handle (phoenix-rs also syncs
    /// the file to disk first). The original agent drops the bytes of an `eof`
    /// request, so portable callers end with an empty `eof` write, as the helpers do.
    pub fn file_write(&self, handle: u64, data: &[u8], eof: bool) -> Result<(), ClientError> {
        self.send_file_write(handle, data, eof)?.wait()
    }

    /// Sends a `file-write` without waiting for it (see [`Client::send_file_read`]).
    pub fn send_file_write(
        &self,
        handle: u64,
        data: &[u8],
        eof: bool,
    ) -> Result<PendingWrite<'_>, ClientError> {
        let len = data.len() as u64;
        if self.dialect() == Dialect::Qga {
            let args = raw_args(&qga::GuestFileWriteArgs {
                handle: qga_handle(handle)?,
                buf_b64: base64_simd::STANDARD.encode_to_string(data),
                count: None,
            })?;
            let name = <qga::cmd::GuestFileWrite as Command>::NAME;
            return Ok(PendingWrite(self.send_request(name, Some(&args))?, len));
        }
        let args = raw_args(&FileWrite {
            handle_id: handle,
            bufb64: base64_simd::STANDARD.encode_to_string(data),
            eof,
        })?;
        Ok(PendingWrite(
            self.send_request(cmd::FileWrite::NAME, Some(&args))?,
            len,
        ))
    }

    /// `file-close` (`guest-file-close`).
    pub fn file_close(&self, handle: u64) -> Result<(), ClientError> {
        if self.dialect() == Dialect::Qga {
            let args = qga::GuestFileHandleArgs {
                handle: qga_handle(handle)?,
            };
            return self.invoke::<qga::cmd::GuestFileClose>(&args).map(drop);
        }
        self.true_call::<cmd::FileClose>(Some(&HandleArgs { handle_id: handle }))
    }

    /// The size of an open file, by seeking to its end and back to where it was
    /// (`guest-file-seek`; the qemu-ga dialect has no `file-stat`).
    pub(crate) fn guest_file_size(&self, handle: u64) -> Result<u64, ClientError> {
        let seek = |offset: i64, whence: qga::QgaSeek| {
            self.invoke::<qga::cmd::GuestFileSeek>(&qga::GuestFileSeekArgs {
                handle: qga_handle(handle)?,
                offset,
                whence: qga::GuestFileWhence::Name(whence),
            })
        };
        let here = seek(0, qga::QgaSeek::Cur)?.position;
        let end = seek(0, qga::QgaSeek::End)?.position;
        seek(here, qga::QgaSeek::Set)?;
        u64::try_from(end).map_err(|_| ClientError::Protocol(format!("file size {end}")))
    }

    /// `get-file-md5sum`: lowercase hex. The agent reads the whole file: a large one
    /// takes a while, so this call waits at least 10 minutes.
    pub fn file_md5sum(&self, path: &Path) -> Result<String, ClientError> {
        let timeout = self
            .options()
            .timeout
            .map(|t| t.max(std::time::Duration::from_secs(600)));
        self.call_timeout(
            cmd::GetFileMd5sum::NAME,
            &PathArgs {
                path: path.to_path_buf(),
            },
            timeout,
        )
    }

    /// `file-chown`; -1 leaves an id unchanged.
    pub fn file_chown(&self, path: &Path, uid: i64, gid: i64) -> Result<(), ClientError> {
        self.true_call::<cmd::FileChown>(Some(&FileChown {
            path: path.to_path_buf(),
            uid,
            gid,
        }))
    }

    /// `file-chmod`: `perm` as a number (0o755), sent in decimal as the wire wants.
    pub fn file_chmod(&self, path: &Path, perm: u32) -> Result<(), ClientError> {
        self.true_call::<cmd::FileChmod>(Some(&FileChmod {
            path: path.to_path_buf(),
            perm,
        }))
    }

    /// `file-stat` (lstat: a final symlink is described, not followed).
    pub fn file_stat(&self, path: &Path) -> Result<FileStat, ClientError> {
        self.invoke::<cmd::FileStat>(&PathArgs {
            path: path.to_path_buf(),
        })
    }

    /// `directory-create` (with parents, as `mkdir -p`); `None` leaves the agent's
    /// default permissions (0755).
    pub fn directory_create(&self, path: &Path, perm: Option<u32>) -> Result<(), ClientError> {
        let mut args = serde_json::to_value(DirectoryCreate {
            path: path.to_path_buf(),
            perm: perm.unwrap_or(0o755),
        })
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if perm.is_none() {
            if let Some(obj) = args.as_object_mut() {
                obj.remove("perm");
            }
        }
        self.true_call::<cmd::DirectoryCreate>(Some(&args))
    }

    /// `directory-list`: at most `n` entries (`None`: all), in directory order,
    /// without `.` and `..`.
    pub fn directory_list(
        &self,
        path: &Path,
        n: Option<u64>,
    ) -> Result<Vec<FileStat>, ClientError> {
        self.invoke::<cmd::DirectoryList>(&DirectoryList {
            path: path.to_path_buf(),
            n: n.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)),
        })
    }
}
