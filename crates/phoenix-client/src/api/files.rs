//! Files and directories: `file-open`, `file-read`, `file-write`, `file-close`,
//! `get-file-md5sum`, `file-chown`, `file-chmod`, `file-stat`, `directory-create`,
//! `directory-list`.
//!
//! Data travels as bytes here; the base64 of the wire stays inside these methods
//! (base64-simd: SSSE3/AVX2 when the CPU has them, several times the scalar speed).

use std::path::Path;

use phoenix_proto::types::files::cmd;
use phoenix_proto::types::files::{
    DirectoryCreate, DirectoryList, FileChmod, FileChown, FileOpen, FileRead, FileReadResult,
    FileStat, FileWrite, HandleArgs, PathArgs,
};
use phoenix_proto::Command as _;

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

/// One `file-read` answer, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The bytes read.
    pub data: Vec<u8>,
    /// The read reached the end of the file; the agent has closed the handle.
    pub eof: bool,
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
        let r: FileReadResult = serde_json::from_str(raw.get())
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
pub struct PendingWrite<'c>(Pending<'c>);

impl PendingWrite<'_> {
    /// Waits for the agent's `true` (the client's default timeout).
    pub fn wait(self) -> Result<(), ClientError> {
        let timeout = self.0.client().options().timeout;
        let raw = self.0.wait(timeout)?;
        match raw.get() {
            "true" => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "file-write returned {other}"
            ))),
        }
    }
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
    pub fn file_open(
        &self,
        path: &Path,
        mode: OpenMode,
        perm: Option<u32>,
    ) -> Result<u64, ClientError> {
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
        let args = raw_args(&FileWrite {
            handle_id: handle,
            bufb64: base64_simd::STANDARD.encode_to_string(data),
            eof,
        })?;
        Ok(PendingWrite(
            self.send_request(cmd::FileWrite::NAME, Some(&args))?,
        ))
    }

    /// `file-close`.
    pub fn file_close(&self, handle: u64) -> Result<(), ClientError> {
        self.true_call::<cmd::FileClose>(Some(&HandleArgs { handle_id: handle }))
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
