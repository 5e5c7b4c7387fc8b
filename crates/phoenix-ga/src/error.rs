//! The agent's one error type. Every failure of every command becomes an [`Error`],
//! and each dialect's envelope words it in its own shape (Phoenix: `{"bufb64",
//! "code"}`, see `envelope::phoenix`).
//!
//! The code is the errno of the failing system call, read from the OS error itself;
//! failures that are not system calls (bad JSON, unknown command) carry -1.

use std::io;

use nix::errno::Errno;

/// A failed request or command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `context` says what was being done (`open /etc/x`).
    #[error("{context}")]
    Os {
        /// What was being done, with the path or name it was done to.
        context: String,
        /// The OS error, whose errno becomes the wire code.
        #[source]
        source: io::Error,
    },
    /// The agent refuses with a specific errno of its own (a handle limit is EMFILE,
    /// an unknown handle EBADF), in the spirit of the system call it stands for.
    #[error("{message}")]
    Errno {
        /// The errno sent as the code.
        errno: Errno,
        /// What happened.
        message: String,
    },
    /// The line was not a valid request (malformed JSON, not an object, no `execute`,
    /// over-long).
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// The command exists nowhere in this agent.
    #[error("unknown command \"{0}\"")]
    UnknownCommand(String),
    /// The command exists but the operator disabled it (`--block-commands`,
    /// `--allow-commands`).
    #[error("command \"{0}\" has been disabled")]
    Disabled(String),
    /// The filesystems are frozen and this command could touch them.
    #[error("command \"{0}\" is not allowed while the filesystems are frozen")]
    Frozen(String),
    /// The arguments did not decode into what the command takes, or a value is out
    /// of range. The envelope names the command.
    #[error("invalid arguments: {}", .0.text)]
    InvalidArguments(ArgError),
    /// A bug in the agent (a command panicked); the agent goes on.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a command's arguments were refused: the text of the check that failed (serde's
/// message, or the command's own reason) and, where it could be told, which parameter
/// it was about and how, for the dialects that word that themselves (QAPI's
/// "Parameter 'path' is missing").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    /// What was wrong, as the check said it.
    pub text: String,
    /// What it was about.
    pub kind: ArgKind,
}

/// The kinds of argument errors QAPI words in its own way. `param` is the parameter's
/// path (`mountpoints[0]`, `vcpus[1].online`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgKind {
    /// A required parameter is absent.
    Missing(String),
    /// A parameter the command does not take.
    Unexpected(String),
    /// A parameter of the wrong JSON type; `expected` is QAPI's type name (`integer`,
    /// `string`, `boolean`, `array`, `object`, `number`).
    WrongType {
        /// The parameter.
        param: String,
        /// What it should have been.
        expected: &'static str,
    },
    /// A value outside an enumeration.
    BadValue {
        /// The parameter.
        param: String,
        /// The value given.
        value: String,
    },
    /// Anything else: the text says it.
    Other,
}

impl Error {
    /// An OS error with its context.
    pub fn os(context: impl Into<String>, source: io::Error) -> Self {
        Error::Os {
            context: context.into(),
            source,
        }
    }

    /// Invalid arguments: `reason` says which and why.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidArguments(ArgError {
            text: reason.into(),
            kind: ArgKind::Other,
        })
    }

    /// A refusal with an errno of the agent's choosing.
    pub fn errno(errno: Errno, message: impl Into<String>) -> Self {
        Error::Errno {
            errno,
            message: message.into(),
        }
    }

    /// The wire code: the errno where there is one, else -1.
    pub fn code(&self) -> i32 {
        match self {
            Error::Os { source, .. } => source.raw_os_error().unwrap_or(-1),
            Error::Errno { errno, .. } => *errno as i32,
            _ => -1,
        }
    }

    /// What happened, in the style of the original agent (`open /etc/nope: No such
    /// file or directory`).
    pub fn message(&self) -> String {
        match self {
            Error::Os { context, source } => match source.raw_os_error() {
                Some(n) => format!("{context}: {}", Errno::from_raw(n).desc()),
                None => format!("{context}: {source}"),
            },
            other => other.to_string(),
        }
    }
}

/// Attaches context to results of system calls.
pub trait Context<T> {
    /// Turns an OS error into [`Error::Os`] with the context `f()` builds.
    fn context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T, Error>;
}

impl<T> Context<T> for io::Result<T> {
    fn context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T, Error> {
        self.map_err(|e| Error::os(f(), e))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T, Error> {
        self.map_err(|e| Error::os(f(), io::Error::from_raw_os_error(e as i32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_carries_errno_and_context() {
        let e: Result<(), Error> = std::fs::metadata("/definitely/not/here")
            .map(|_| ())
            .context(|| "stat /definitely/not/here");
        let e = e.unwrap_err();
        assert_eq!(e.code(), 2);
        assert_eq!(
            e.message(),
            "stat /definitely/not/here: No such file or directory"
        );
    }

    #[test]
    fn non_os_errors_are_minus_one() {
        assert_eq!(Error::UnknownCommand("x".into()).code(), -1);
        assert_eq!(
            Error::BadRequest("y".into()).message(),
            "invalid request: y"
        );
        assert_eq!(Error::invalid("z").message(), "invalid arguments: z");
        assert_eq!(Error::errno(Errno::EMFILE, "too many").code(), 24);
    }
}
