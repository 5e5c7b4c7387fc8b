//! Command identity: a command's wire name, the dialect that names it, and the types of
//! its arguments and return value, shared by the agent (which answers it) and the
//! client (which sends it), so the two cannot drift apart.
//!
//! Each command family declares its commands with [`commands!`](crate::commands) in a
//! `cmd` module beside its argument and reply structs (`types::files::cmd::FileOpen`).

use serde::de::{Deserialize, DeserializeOwned, Deserializer, IgnoredAny};
use serde::Serialize;

/// The protocol dialects: how a request line is enveloped and how errors are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// The Phoenix guest agent's protocol (`execute`/`tag`, `{bufb64, code}` errors).
    Phoenix,
    /// QEMU's guest agent protocol (`execute`/`id`, `{class, desc}` errors), which
    /// libvirt, Proxmox and OpenStack speak.
    Qga,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: [Dialect; 2] = [Dialect::Phoenix, Dialect::Qga];

    /// The dialect's short name (`phoenix`, `qga`), as command lines spell it.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Phoenix => "phoenix",
            Dialect::Qga => "qga",
        }
    }
}

/// One wire command. Implemented by the uninhabited marker types that
/// [`commands!`](crate::commands) declares; never instantiated.
pub trait Command: 'static {
    /// The name in `execute`.
    const NAME: &'static str;
    /// The dialect whose envelope carries it.
    const DIALECT: Dialect;
    /// The `arguments` member. [`NoArgs`] for a command that takes none.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// The `return` value.
    type Reply: Serialize + DeserializeOwned;
}

/// The arguments of a command that takes none. Whatever a host sends in `arguments`
/// is accepted and ignored, as the original agent did; a client sends none at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NoArgs {}

impl<'de> Deserialize<'de> for NoArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| NoArgs {})
    }
}

/// Declares the marker types of a family's commands:
///
/// ```
/// # use phoenix_proto::types::files::PathArgs;
/// phoenix_proto::commands! { Phoenix;
///     /// `get-file-md5sum`: the MD5 of a file, lowercase hex.
///     GetFileMd5sum = "get-file-md5sum" (PathArgs) -> String;
/// }
/// # use phoenix_proto::Command as _;
/// assert_eq!(GetFileMd5sum::NAME, "get-file-md5sum");
/// ```
#[macro_export]
macro_rules! commands {
    ($dialect:ident; $(
        $(#[$meta:meta])*
        $marker:ident = $name:literal ($args:ty) -> $reply:ty;
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub enum $marker {}

        impl $crate::Command for $marker {
            const NAME: &'static str = $name;
            const DIALECT: $crate::Dialect = $crate::Dialect::$dialect;
            type Args = $args;
            type Reply = $reply;
        }
    )*};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_args_accepts_anything() {
        for text in ["{}", "{\"x\":1}", "[1]", "null", "7", "\"s\""] {
            assert_eq!(serde_json::from_str::<NoArgs>(text).unwrap(), NoArgs {});
        }
        assert_eq!(serde_json::to_string(&NoArgs {}).unwrap(), "{}");
    }
}
