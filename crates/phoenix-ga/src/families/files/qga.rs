//! The qemu-ga dialect's file commands: `guest-file-open`, `guest-file-read`,
//! `guest-file-write`, `guest-file-seek`, `guest-file-flush`, `guest-file-close`.
//!
//! They work on the handle table the Phoenix commands use (one per agent), through
//! the same operations: a file opened here is [`OpenMode::Stream`] (fopen's modes,
//! non-blocking as qemu-ga opens it), a read at end of file keeps the handle open
//! ([`AtEof::Keep`]), and a write may be shorter than asked on a FIFO that is full.
//! All of them may touch a disk: none runs while frozen (qemu-ga refuses them too).
//!
//! The checks come in qemu-ga's order, with its words where a host may match them:
//! the handle first ("handle '7' has not been found"), then the values ("value '-1' is
//! invalid for argument count", "invalid whence code 5", "invalid file open mode 'q'").
//! Failures of the guest keep the agent's own message (`read /x: Is a directory`).

use nix::errno::Errno;
use phoenix_proto::qga::Empty;
use phoenix_proto::types::files::qga::cmd::{
    GuestFileClose, GuestFileFlush, GuestFileOpen, GuestFileRead, GuestFileSeek, GuestFileWrite,
};
use phoenix_proto::types::files::qga::{
    self as wire, GuestFileWhence, QgaSeek, DEFAULT_READ_COUNT, MAX_READ_COUNT,
};

use super::io::{Access, AfterWrite, AtEof, Chunk, OpenMode, Whence};
use super::{encoding, Files};
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run, Value};
use crate::error::Error;

/// Permissions of a file `guest-file-open` creates, whatever the umask: read and write
/// for the owner, read for everyone else. qemu-ga gives 0666, which lets any local
/// user change a file the host wrote (a script it then runs with `guest-exec`).
pub const NEW_FILE_PERM: u32 = 0o644;

/// The access of an fopen mode, for exactly the modes qemu-ga accepts (`b` changes
/// nothing on Linux; `rb+` and `r+b` are both accepted, `br` and `rt` are not).
pub fn access_of(mode: &str) -> Option<Access> {
    let (base, plus) = match mode {
        "r" | "rb" => ('r', false),
        "w" | "wb" => ('w', false),
        "a" | "ab" => ('a', false),
        "r+" | "rb+" | "r+b" => ('r', true),
        "w+" | "wb+" | "w+b" => ('w', true),
        "a+" | "ab+" | "a+b" => ('a', true),
        _ => return None,
    };
    Some(Access {
        read: base == 'r' || plus,
        write: base == 'w' || (base == 'r' && plus),
        append: base == 'a',
        create: base != 'r',
        truncate: base == 'w',
        perm: NEW_FILE_PERM,
    })
}

/// qemu-ga's error for a handle that is not open.
fn not_found(handle: i64) -> Error {
    Error::errno(Errno::EBADF, format!("handle '{handle}' has not been found"))
}

/// The table's number for `handle`, if it is open; else qemu-ga's error.
fn open_handle(files: &Files, handle: i64) -> Result<u64, Error> {
    u64::try_from(handle)
        .ok()
        .filter(|&id| files.is_open(id))
        .ok_or_else(|| not_found(handle))
}

/// Words an operation's "not open" (the handle was closed meanwhile) as qemu-ga does.
fn worded<T>(handle: i64, result: Result<T, Error>) -> Result<T, Error> {
    result.map_err(|e| match e {
        Error::Errno {
            errno: Errno::EBADF,
            ..
        } => not_found(handle),
        other => other,
    })
}

/// qemu-ga's error for a `count` out of range.
fn bad_count(count: i64) -> Error {
    Error::invalid(format!("value '{count}' is invalid for argument count"))
}

/// A number as the wire carries it (an `int`).
fn wire_int<N: TryInto<i64> + Copy + std::fmt::Display>(n: N) -> Result<i64, Error> {
    n.try_into()
        .map_err(|_| Error::Internal(format!("{n} does not fit an int")))
}

/// `guest-file-open`: a new handle; mode `r` when absent.
impl Command for GuestFileOpen {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::GuestFileOpenArgs) -> Outcome {
        let mode = a.mode.as_deref().unwrap_or("r");
        let access = access_of(mode)
            .ok_or_else(|| Error::invalid(format!("invalid file open mode '{mode}'")))?;
        let id = agent
            .family::<Files>()
            .open(a.path.into(), OpenMode::Stream(access))?;
        reply::<Self>(&wire_int(id)?)
    }
}

/// The byte count of a `guest-file-read`: 0 to 48 MiB, 4096 when absent.
fn read_count(count: Option<i64>) -> Result<usize, Error> {
    let count = count.unwrap_or(DEFAULT_READ_COUNT);
    if !(0..=MAX_READ_COUNT).contains(&count) {
        return Err(bad_count(count));
    }
    usize::try_from(count).map_err(|_| bad_count(count))
}

/// `guest-file-read`: up to `count` bytes; at end of file `{"count": 0, "buf-b64": "",
/// "eof": true}` and the handle stays open. Small reads of cached data are answered on
/// the reader thread.
impl Command for GuestFileRead {
    const RUN: Run = Run::Ordered;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::GuestFileReadArgs) -> Outcome {
        let files = agent.family::<Files>();
        let id = open_handle(files, a.handle)?;
        let count = read_count(a.count)?;
        let chunk = worded(a.handle, files.read(id, count, AtEof::Keep))?;
        Ok(read_value(chunk))
    }

    fn order_key(agent: &Agent, a: &wire::GuestFileReadArgs) -> Option<u64> {
        open_handle(agent.family::<Files>(), a.handle).ok()
    }

    fn try_now(agent: &Agent, a: &wire::GuestFileReadArgs) -> Option<Outcome> {
        let files = agent.family::<Files>();
        let id = open_handle(files, a.handle).ok()?;
        let count = read_count(a.count).ok()?;
        let chunk = files.try_read_now(id, count, AtEof::Keep)?;
        Some(worded(a.handle, chunk).map(read_value))
    }
}

/// The `guest-file-read` reply value, `{"count": N, "buf-b64": ..., "eof": ...}` (a
/// [`wire::GuestFileRead`]), its base64 encoded while it is written.
fn read_value(chunk: Chunk) -> Value {
    Value::Encoded {
        head: format!("{{\"count\":{},\"buf-b64\":\"", chunk.data.len()).into(),
        data: chunk.data,
        tail: if chunk.eof {
            "\",\"eof\":true}"
        } else {
            "\",\"eof\":false}"
        }
        .into(),
    }
}

/// The characters qemu-ga accepts in base64 (the alphabet, padding and LF).
fn base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n')
}

/// `guest-file-write`: the decoded bytes, or their first `count`; returns how many
/// were written. Invalid base64 writes nothing.
impl Command for GuestFileWrite {
    const RUN: Run = Run::Ordered;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::GuestFileWriteArgs) -> Outcome {
        let files = agent.family::<Files>();
        let id = open_handle(files, a.handle)?;
        // qemu-ga drops an incomplete last group silently; a host that sends one gets
        // an error here rather than a file missing its last bytes. The characters are
        // checked only when decoding fails (a byte-by-byte pass over a 4 MiB
        // chunk cost more than decoding it); CR, which our decoder skips, is one
        // qemu-ga refuses.
        let decoded = encoding::decode(&a.buf_b64);
        let data = match decoded {
            Ok(data) if !a.buf_b64.contains('\r') => data,
            _ if !a.buf_b64.bytes().all(base64_char) => {
                return Err(Error::invalid("Base64 data contains invalid characters"))
            }
            Ok(data) => data,
            Err(e) => return Err(Error::invalid(format!("Base64 data is invalid: {e}"))),
        };
        drop(a.buf_b64);
        let n = match a.count {
            None => data.len(),
            Some(c) => usize::try_from(c)
                .ok()
                .filter(|&n| n <= data.len())
                .ok_or_else(|| bad_count(c))?,
        };
        let written = worded(a.handle, files.write(id, &data[..n], AfterWrite::Continue))?;
        reply::<Self>(&wire::GuestFileWrite {
            count: wire_int(written)?,
            eof: false,
        })
    }

    fn order_key(agent: &Agent, a: &wire::GuestFileWriteArgs) -> Option<u64> {
        open_handle(agent.family::<Files>(), a.handle).ok()
    }
}

/// `guest-file-seek`: moves the position; returns it. `whence` 0, 1, 2 or `set`,
/// `cur`, `end`.
impl Command for GuestFileSeek {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::GuestFileSeekArgs) -> Outcome {
        let files = agent.family::<Files>();
        let id = open_handle(files, a.handle)?;
        let whence = match a.whence {
            GuestFileWhence::Value(0) | GuestFileWhence::Name(QgaSeek::Set) => Whence::Set,
            GuestFileWhence::Value(1) | GuestFileWhence::Name(QgaSeek::Cur) => Whence::Cur,
            GuestFileWhence::Value(2) | GuestFileWhence::Name(QgaSeek::End) => Whence::End,
            GuestFileWhence::Value(v) => {
                return Err(Error::invalid(format!("invalid whence code {v}")))
            }
        };
        let position = worded(a.handle, files.seek(id, a.offset, whence))?;
        reply::<Self>(&wire::GuestFileSeek {
            position: wire_int(position)?,
            eof: false,
        })
    }
}

/// `guest-file-flush`: `{}` (writes are not buffered in the agent).
impl Command for GuestFileFlush {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::GuestFileHandleArgs) -> Outcome {
        let files = agent.family::<Files>();
        let id = open_handle(files, a.handle)?;
        worded(a.handle, files.flush(id))?;
        reply::<Self>(&Empty {})
    }
}

/// `guest-file-close`: `{}`.
impl Command for GuestFileClose {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: wire::GuestFileHandleArgs) -> Outcome {
        let files = agent.family::<Files>();
        let id = open_handle(files, a.handle)?;
        worded(a.handle, files.close(id))?;
        reply::<Self>(&Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Buffer;
    use clap::Parser;
    use phoenix_proto::types::files::cmd::{FileClose, FileOpen, FileRead};
    use phoenix_proto::types::files::{FileOpen as OpenArgs, FileRead as ReadArgs, HandleArgs};

    fn agent(state: &std::path::Path) -> Agent {
        let cli = crate::config::Cli::try_parse_from([
            "phoenix-ga",
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .unwrap();
        Agent::new(cli).unwrap()
    }

    fn json(out: Outcome) -> serde_json::Value {
        let value = out.unwrap_or_else(|e| panic!("{}", e.message()));
        serde_json::from_str(&value.to_json()).unwrap()
    }

    #[test]
    fn handles_are_shared_with_the_phoenix_dialect() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path());
        let path = dir.path().join("f");
        std::fs::write(&path, "abcdef").unwrap();
        let qga_open = |mode: &str| {
            json(GuestFileOpen::run(
                &a,
                wire::GuestFileOpenArgs {
                    path: path.to_str().unwrap().into(),
                    mode: Some(mode.into()),
                },
            ))
        };
        let qga_read = |handle: i64| {
            GuestFileRead::run(
                &a,
                wire::GuestFileReadArgs {
                    handle,
                    count: Some(2),
                },
            )
        };
        // Opened in qemu-ga's dialect, read and closed in Phoenix's, and back.
        let h = qga_open("r").as_i64().unwrap();
        let phoenix = json(FileRead::run(
            &a,
            ReadArgs {
                handle_id: h.try_into().unwrap(),
                count: 3,
            },
        ));
        assert_eq!(phoenix, serde_json::json!({"bufb64": "YWJj", "eof": false}));
        assert_eq!(
            json(qga_read(h)),
            serde_json::json!({"count": 2, "buf-b64": "ZGU=", "eof": false})
        );
        json(FileClose::run(
            &a,
            HandleArgs {
                handle_id: h.try_into().unwrap(),
            },
        ));
        let e = qga_read(h).unwrap_err();
        assert_eq!(e.message(), format!("handle '{h}' has not been found"));
        let p = json(FileOpen::run(
            &a,
            OpenArgs {
                path: path.clone(),
                mode: "r".into(),
                perm: 0o644,
                force: false,
            },
        ))
        .as_i64()
        .unwrap();
        assert_eq!(p, h + 1, "one numbering for both dialects");
        assert_eq!(json(qga_read(p))["buf-b64"], "YWI=");
    }

    #[test]
    fn modes_are_qemu_ga_s() {
        let r = access_of("r").unwrap();
        assert!(r.read && !r.write && !r.create && !r.truncate && !r.append);
        let w = access_of("wb").unwrap();
        assert!(!w.read && w.write && w.create && w.truncate && !w.append);
        let a = access_of("a").unwrap();
        assert!(!a.read && a.append && a.create && !a.truncate);
        let rp = access_of("r+b").unwrap();
        assert!(rp.read && rp.write && !rp.create && !rp.truncate);
        let wp = access_of("w+").unwrap();
        assert!(wp.read && wp.write && wp.create && wp.truncate);
        let ap = access_of("ab+").unwrap();
        assert!(ap.read && ap.append && ap.create && !ap.truncate);
        for bad in ["", "q", "rw", "br", "rt", "re", "r+x", "R", "wbb", "+r"] {
            assert_eq!(access_of(bad), None, "{bad:?}");
        }
        assert_eq!(w.perm, 0o644);
    }

    #[test]
    fn counts() {
        assert_eq!(read_count(None).unwrap(), 4096);
        assert_eq!(read_count(Some(0)).unwrap(), 0);
        assert_eq!(read_count(Some(48 << 20)).unwrap(), 48 << 20);
        let e = read_count(Some((48 << 20) + 1)).unwrap_err();
        assert_eq!(e.message(), "invalid arguments: value '50331649' is invalid for argument count");
        read_count(Some(-1)).unwrap_err();
    }

    #[test]
    fn read_values_carry_the_count() {
        let v = read_value(Chunk {
            data: Buffer::from(b"hel".to_vec()),
            eof: false,
        });
        assert_eq!(v.text_len(), v.to_json().len());
        assert_eq!(v.to_json(), r#"{"count":3,"buf-b64":"aGVs","eof":false}"#);
        let v = read_value(Chunk {
            data: Buffer::from(Vec::new()),
            eof: true,
        });
        let r: wire::GuestFileRead = serde_json::from_str(&v.to_json()).unwrap();
        assert_eq!((r.count, r.buf_b64.as_str(), r.eof), (0, "", true));
    }

    #[test]
    fn base64_characters_are_qemu_ga_s() {
        assert!(b"aGVs\nbG8=+/".iter().all(|&b| base64_char(b)));
        for b in [b'\r', b' ', b'!', b'-', b'_', 0] {
            assert!(!base64_char(b), "{b}");
        }
    }
}
