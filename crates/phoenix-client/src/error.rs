//! Errors of the client: transport failures, timeouts, and the agent's own error
//! replies decoded into [`AgentError`].
//!
//! As in cloud-hypervisor, a message says what failed and never repeats the error that
//! caused it, which is chained as the `source`: whoever prints an error walks the chain
//! once, with [`Report`] (`connect /run/vm1-ga.sock: Connection refused (os error 111)`).

use std::fmt;
use std::io;
use std::time::Duration;

use nix::errno::Errno;

/// An error reply from the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentError {
    /// The command that failed.
    pub command: String,
    /// The agent's message (`open /etc/nope: No such file or directory`).
    pub message: String,
    /// The errno the agent reported, or -1.
    pub code: i32,
    /// The qemu-ga dialect's error class (`GenericError`, `CommandNotFound`).
    pub class: Option<String>,
}

impl AgentError {
    /// The errno, when the code is one.
    pub fn errno(&self) -> Option<Errno> {
        (self.code > 0).then(|| Errno::from_raw(self.code))
    }
}

impl fmt::Display for AgentError {
    /// `No such file or directory (ENOENT, 2): open /etc/nope`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno() {
            Some(errno) if errno != Errno::UnknownErrno => {
                let desc = errno.desc();
                let what = self
                    .message
                    .strip_suffix(desc)
                    .and_then(|m| m.strip_suffix(": "))
                    .unwrap_or(&self.message);
                write!(f, "{desc} ({errno:?}, {}): {what}", self.code)
            }
            _ => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for AgentError {}

/// Anything that can go wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The agent could not be reached.
    #[error("connect {path}")]
    Connect {
        /// The socket or device path.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the connection failed.
    #[error("talking to the agent")]
    Io(#[from] io::Error),
    /// No reply came in time; the stream is resynchronised before the next call.
    #[error("{command}: no reply within {timeout:?}")]
    Timeout {
        /// The command that timed out.
        command: String,
        /// How long was waited.
        timeout: Duration,
    },
    /// The agent closed the connection.
    #[error("the agent closed the connection")]
    Closed,
    /// The agent answered with an error (printed as [`AgentError`] prints, which has no
    /// source).
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The reply could not be understood.
    #[error("unexpected reply: {0}")]
    Protocol(String),
    /// A local file could not be read or written (transfers).
    #[error("{context}")]
    Local {
        /// What was done, with the path: `open /tmp/x`.
        context: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// A transfer ended with different contents at its two ends.
    #[error("{path}: MD5 differs after the transfer (local {local}, guest {guest})")]
    Mismatch {
        /// The guest path.
        path: String,
        /// MD5 of the bytes on the host side.
        local: String,
        /// MD5 the agent computed.
        guest: String,
    },
    /// An upload cannot be made atomic: the agent has no `file-rename`.
    #[error(
        "{path}: the agent has no file-rename command, so the upload cannot go to a \
         temporary name and be renamed when complete; write in place instead \
         (phoenix-ctl cp --in-place), accepting that a broken transfer leaves the file incomplete"
    )]
    NoRename {
        /// The guest destination.
        path: String,
    },
    /// The agent's dialect has no command for this (a qemu-ga agent has no `file-stat`,
    /// no `file-chmod`, no `get-file-md5sum`...).
    #[error("{what} is not available in the qemu-ga dialect this agent speaks")]
    Unsupported {
        /// What was asked.
        what: String,
    },
    /// A file is larger than the caller allows (`read_file`).
    #[error("{path}: larger than {limit} bytes")]
    TooLarge {
        /// The guest path.
        path: String,
        /// The limit.
        limit: u64,
    },
}

impl ClientError {
    /// The agent's errno, for an agent error that carries one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            ClientError::Agent(e) => e.errno(),
            _ => None,
        }
    }
}

/// An error and each of its sources once, `outer: inner: innermost`: the way to print
/// an error whose sources are chained rather than repeated in its message.
///
/// ```
/// use phoenix_client::{ClientError, Report};
/// let e = ClientError::Connect {
///     path: "/run/vm1-ga.sock".into(),
///     source: std::io::Error::from_raw_os_error(111),
/// };
/// assert_eq!(e.to_string(), "connect /run/vm1-ga.sock");
/// assert_eq!(
///     Report(&e).to_string(),
///     "connect /run/vm1-ga.sock: Connection refused (os error 111)"
/// );
/// ```
#[derive(Clone, Copy)]
pub struct Report<'a>(pub &'a dyn std::error::Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// Every message in `e`'s chain, outermost first.
    fn chain(e: &dyn std::error::Error) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut source = e.source();
        while let Some(s) = source {
            out.push(s.to_string());
            source = s.source();
        }
        out
    }

    #[test]
    fn a_chained_error_prints_each_source_once() {
        let refused = || io::Error::from_raw_os_error(111);
        let errors = [
            ClientError::Connect {
                path: "/run/vm1-ga.sock".into(),
                source: refused(),
            },
            ClientError::Io(refused()),
            ClientError::Local {
                context: "create /tmp/x".into(),
                source: io::Error::other(refused()),
            },
            ClientError::Agent(AgentError {
                command: "file-open".into(),
                message: "open /etc/nope: No such file or directory".into(),
                code: 2,
                class: None,
            }),
        ];
        for e in &errors {
            let report = Report(e).to_string();
            let links = chain(e);
            assert_eq!(report, links.join(": "));
            // No message contains the one after it: each source shows once.
            for pair in links.windows(2) {
                assert!(!pair[0].contains(&pair[1]), "{e:?} repeats its source");
            }
            for link in &links {
                assert_eq!(report.matches(link.as_str()).count(), 1, "{report}");
            }
        }
        assert_eq!(
            Report(&errors[0]).to_string(),
            "connect /run/vm1-ga.sock: Connection refused (os error 111)"
        );
        assert_eq!(
            Report(&errors[1]).to_string(),
            "talking to the agent: Connection refused (os error 111)"
        );
        assert_eq!(
            Report(&errors[2]).to_string(),
            "create /tmp/x: Connection refused (os error 111)"
        );
        // An agent error is its own message, with no source: the text users know.
        assert!(errors[3].source().is_none());
        assert_eq!(
            Report(&errors[3]).to_string(),
            "No such file or directory (ENOENT, 2): open /etc/nope"
        );
    }

    #[test]
    fn prints_like_the_shell_tools() {
        let e = AgentError {
            command: "file-open".into(),
            message: "open /etc/nope: No such file or directory".into(),
            code: 2,
            class: None,
        };
        assert_eq!(
            e.to_string(),
            "No such file or directory (ENOENT, 2): open /etc/nope"
        );
        let e = AgentError {
            command: "x".into(),
            message: "unknown command \"x\"".into(),
            code: -1,
            class: None,
        };
        assert_eq!(e.to_string(), "unknown command \"x\"");
    }
}
