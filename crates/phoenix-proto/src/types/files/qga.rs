//! The qemu-ga dialect's file commands: `guest-file-open`, `guest-file-read`,
//! `guest-file-write`, `guest-file-seek`, `guest-file-flush`, `guest-file-close`, as
//! QEMU's `qga/qapi-schema.json` declares them.
//!
//! A handle is an `int` on the wire; the agent's handles are shared with the Phoenix
//! dialect's `file-*` commands (one table per agent).

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::qga::Empty;

/// Bytes `guest-file-read` returns when `count` is absent (qemu-ga's
/// `QGA_READ_COUNT_DEFAULT`).
pub const DEFAULT_READ_COUNT: i64 = 4096;

/// Largest `count` of `guest-file-read`: 48 MiB, whose base64 still fits in a 64 MiB
/// line (qemu-ga's `GUEST_FILE_READ_COUNT_MAX`).
pub const MAX_READ_COUNT: i64 = 48 << 20;

/// `guest-file-open` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestFileOpenArgs {
    /// The file.
    pub path: String,
    /// An fopen(3) mode: `r`, `r+`, `w`, `w+`, `a`, `a+`, each also with `b` (`rb`,
    /// `rb+`, `r+b`...); `r` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// Arguments of the commands that take only a handle (`guest-file-close`,
/// `guest-file-flush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestFileHandleArgs {
    /// A handle `guest-file-open` returned.
    pub handle: i64,
}

/// `guest-file-read` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestFileReadArgs {
    /// A handle `guest-file-open` returned.
    pub handle: i64,
    /// Bytes to read, 0 to [`MAX_READ_COUNT`]; [`DEFAULT_READ_COUNT`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// `guest-file-read` return value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestFileRead {
    /// Bytes read (before base64).
    pub count: i64,
    /// The bytes, standard padded base64 (`""` when none).
    pub buf_b64: String,
    /// Whether this read met the end of the file.
    pub eof: bool,
}

/// `guest-file-write` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GuestFileWriteArgs {
    /// A handle `guest-file-open` returned.
    pub handle: i64,
    /// The bytes to write, base64.
    pub buf_b64: String,
    /// Write only the first `count` decoded bytes; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// `guest-file-write` return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFileWrite {
    /// Bytes written.
    pub count: i64,
    /// Always false (a write never meets the end of a file).
    pub eof: bool,
}

/// The symbolic `whence` of `guest-file-seek` (QAPI's `QGASeek`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QgaSeek {
    /// From the start of the file (`SEEK_SET`, 0).
    Set,
    /// From the current position (`SEEK_CUR`, 1).
    Cur,
    /// From the end of the file (`SEEK_END`, 2).
    End,
}

/// `whence` of `guest-file-seek` (QAPI's alternate `GuestFileWhence`): an integer
/// (0 set, 1 cur, 2 end; any other is refused when the command runs, as qemu-ga
/// does) or a [`QgaSeek`] name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestFileWhence {
    /// The integer form, as sent.
    Value(i64),
    /// The symbolic form.
    Name(QgaSeek),
}

impl Serialize for GuestFileWhence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            GuestFileWhence::Value(v) => s.serialize_i64(*v),
            GuestFileWhence::Name(n) => n.serialize(s),
        }
    }
}

/// Reads the alternate as QAPI's visitor does, with its wording: a string that is not
/// a name is "does not accept value", a float "expected: integer", anything else
/// "expected: GuestFileWhence".
impl<'de> Deserialize<'de> for GuestFileWhence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(WhenceVisitor)
    }
}

/// QAPI's message for a JSON type the alternate has no branch for, given in full
/// because the alternate's name is not one of the basic types the envelope words.
fn no_branch<E: de::Error>() -> E {
    E::custom("Invalid parameter type for 'whence', expected: GuestFileWhence")
}

struct WhenceVisitor;

impl<'de> Visitor<'de> for WhenceVisitor {
    type Value = GuestFileWhence;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or one of \"set\", \"cur\", \"end\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(GuestFileWhence::Value(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(GuestFileWhence::Value)
            .map_err(|_| E::invalid_type(Unexpected::Unsigned(v), &"integer"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(E::invalid_type(Unexpected::Float(v), &"integer"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match v {
            "set" => Ok(GuestFileWhence::Name(QgaSeek::Set)),
            "cur" => Ok(GuestFileWhence::Name(QgaSeek::Cur)),
            "end" => Ok(GuestFileWhence::Name(QgaSeek::End)),
            other => Err(E::unknown_variant(other, &["set", "cur", "end"])),
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(no_branch())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(no_branch())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(no_branch())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(no_branch())
    }
}

/// `guest-file-seek` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestFileSeekArgs {
    /// A handle `guest-file-open` returned.
    pub handle: i64,
    /// Bytes to move, from where `whence` says.
    pub offset: i64,
    /// From where.
    pub whence: GuestFileWhence,
}

/// `guest-file-seek` return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFileSeek {
    /// The position after the seek.
    pub position: i64,
    /// Always false (a seek clears the end-of-file state).
    pub eof: bool,
}

/// The qemu-ga dialect's file commands.
pub mod cmd {
    use super::*;

    crate::commands! { Qga;
        /// `guest-file-open`: a new handle.
        GuestFileOpen = "guest-file-open" (GuestFileOpenArgs) -> i64;
        /// `guest-file-close`.
        GuestFileClose = "guest-file-close" (GuestFileHandleArgs) -> Empty;
        /// `guest-file-read`: up to `count` bytes; the handle stays open at end of file.
        GuestFileRead = "guest-file-read" (GuestFileReadArgs) -> super::GuestFileRead;
        /// `guest-file-write`: the decoded bytes, or their first `count`.
        GuestFileWrite = "guest-file-write" (GuestFileWriteArgs) -> super::GuestFileWrite;
        /// `guest-file-seek`: moves the position; returns it.
        GuestFileSeek = "guest-file-seek" (GuestFileSeekArgs) -> super::GuestFileSeek;
        /// `guest-file-flush`.
        GuestFileFlush = "guest-file-flush" (GuestFileHandleArgs) -> Empty;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seek(text: &str) -> Result<GuestFileSeekArgs, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn whence_is_an_integer_or_a_name() {
        let a = seek(r#"{"handle":1,"offset":-3,"whence":2}"#).unwrap();
        assert_eq!((a.offset, a.whence), (-3, GuestFileWhence::Value(2)));
        let a = seek(r#"{"handle":1,"offset":0,"whence":"cur"}"#).unwrap();
        assert_eq!(a.whence, GuestFileWhence::Name(QgaSeek::Cur));
        // Out-of-range integers parse: the command refuses them after the handle.
        assert_eq!(
            seek(r#"{"handle":1,"offset":0,"whence":7}"#)
                .unwrap()
                .whence,
            GuestFileWhence::Value(7)
        );
        let e = seek(r#"{"handle":1,"offset":0,"whence":"foo"}"#).unwrap_err();
        assert!(e.starts_with("unknown variant `foo`"), "{e}");
        let e = seek(r#"{"handle":1,"offset":0,"whence":1.5}"#).unwrap_err();
        assert!(e.starts_with("invalid type: floating point"), "{e}");
        assert!(e.contains("expected integer"), "{e}");
        for v in ["true", "null", "[0]", "{}"] {
            let e = seek(&format!(r#"{{"handle":1,"offset":0,"whence":{v}}}"#)).unwrap_err();
            assert!(
                e.starts_with("Invalid parameter type for 'whence', expected: GuestFileWhence"),
                "{v}: {e}"
            );
        }
        seek(r#"{"handle":1,"offset":0}"#).unwrap_err();
        assert_eq!(
            serde_json::to_string(&GuestFileWhence::Name(QgaSeek::End)).unwrap(),
            "\"end\""
        );
        assert_eq!(
            serde_json::to_string(&GuestFileWhence::Value(1)).unwrap(),
            "1"
        );
    }

    #[test]
    fn names_are_the_schema_names() {
        let w: GuestFileWriteArgs =
            serde_json::from_str(r#"{"handle":5,"buf-b64":"QUJD","count":2}"#).unwrap();
        assert_eq!(
            (w.handle, w.buf_b64.as_str(), w.count),
            (5, "QUJD", Some(2))
        );
        serde_json::from_str::<GuestFileWriteArgs>(r#"{"handle":5,"buf_b64":"QUJD"}"#).unwrap_err();
        let r = GuestFileRead {
            count: 3,
            buf_b64: "QUJD".into(),
            eof: false,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"count":3,"buf-b64":"QUJD","eof":false}"#
        );
        let o: GuestFileOpenArgs = serde_json::from_str(r#"{"path":"/x"}"#).unwrap();
        assert_eq!(o.mode, None);
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"path":"/x"}"#);
        serde_json::from_str::<GuestFileOpenArgs>(r#"{"path":"/x","perm":420}"#).unwrap_err();
        serde_json::from_str::<GuestFileReadArgs>(r#"{"handle":"1"}"#).unwrap_err();
    }
}
