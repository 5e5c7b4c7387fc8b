//! The wire protocol of the Phoenix guest agent (compatible with the Go agent 0.7).
//!
//! Both sides use this crate: the agent (`phoenix-ga`) to frame, parse and answer
//! requests, the host client (`phoenix-client`) to build requests and decode replies.
//!
//! * [`framing`]: splitting a byte stream into request lines (LF or CRLF, 0xFF resync,
//!   a length limit).
//! * [`envelope`]: the request and reply objects around every Phoenix command;
//! * [`qga`]: those of QEMU's guest agent protocol, the second dialect.
//! * [`error`]: the `{"bufb64", "code"}` error body.
//! * [`command`]: a command's identity (name, dialect, argument and reply types);
//! * [`types`]: the commands of each family, their arguments and return values.

pub mod command;
pub mod envelope;
pub mod error;
pub mod framing;
pub mod qga;
pub mod types;

pub use command::{Command, Dialect, NoArgs};
pub use envelope::{encode_error, encode_return, parse_reply, parse_request, Reply, Request, Tag};
pub use error::WireError;
pub use framing::{Frame, LineFramer};

/// The byte that makes the agent drop any partial line (the resync convention of
/// QEMU's guest agent; it never occurs in UTF-8 JSON).
pub const RESYNC_BYTE: u8 = 0xFF;

/// Default limit on one request line: 64 MiB (a 32 MiB `file-write` chunk in base64
/// fits with room to spare).
pub const DEFAULT_MAX_LINE: usize = 64 << 20;
