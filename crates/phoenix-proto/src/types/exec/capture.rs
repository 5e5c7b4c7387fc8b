//! `capture-output` of `guest-exec`: QAPI's alternate `GuestExecCaptureOutput`, a bool
//! (qemu-ga before 8.0) or a [`GuestExecCaptureOutputMode`] name.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Which of the child's output streams are captured (QAPI's
/// `GuestExecCaptureOutputMode`, qemu-ga 8.0 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestExecCaptureOutputMode {
    /// Neither: both go to /dev/null.
    None,
    /// Standard output only; standard error goes to /dev/null.
    Stdout,
    /// Standard error only; standard output goes to /dev/null.
    Stderr,
    /// Both, each in its own field (`out-data`, `err-data`).
    Separated,
    /// Both, in one stream (`out-data`), in the order written.
    Merged,
}

impl GuestExecCaptureOutputMode {
    /// Every mode's wire name.
    pub const NAMES: [&'static str; 5] = ["none", "stdout", "stderr", "separated", "merged"];
}

/// `capture-output`: the old bool form (`true` is [`Separated`], `false` [`None`]) or
/// a mode.
///
/// [`Separated`]: GuestExecCaptureOutputMode::Separated
/// [`None`]: GuestExecCaptureOutputMode::None
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestExecCaptureOutput {
    /// The bool form.
    Flag(bool),
    /// The mode form.
    Mode(GuestExecCaptureOutputMode),
}

impl GuestExecCaptureOutput {
    /// The mode this stands for.
    pub fn mode(self) -> GuestExecCaptureOutputMode {
        match self {
            GuestExecCaptureOutput::Flag(true) => GuestExecCaptureOutputMode::Separated,
            GuestExecCaptureOutput::Flag(false) => GuestExecCaptureOutputMode::None,
            GuestExecCaptureOutput::Mode(m) => m,
        }
    }
}

impl Serialize for GuestExecCaptureOutput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            GuestExecCaptureOutput::Flag(b) => s.serialize_bool(*b),
            GuestExecCaptureOutput::Mode(m) => m.serialize(s),
        }
    }
}

/// Reads the alternate as QAPI's visitor does, with its words: a string that is not a
/// mode "does not accept value", any other JSON type (`null` too) "expected:
/// GuestExecCaptureOutput".
impl<'de> Deserialize<'de> for GuestExecCaptureOutput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CaptureVisitor)
    }
}

/// QAPI's message for a JSON type the alternate has no branch for, given whole because
/// the alternate's name is not one of the basic types the envelope words.
fn no_branch<E: de::Error>() -> E {
    E::custom("Invalid parameter type for 'capture-output', expected: GuestExecCaptureOutput")
}

struct CaptureVisitor;

impl<'de> Visitor<'de> for CaptureVisitor {
    type Value = GuestExecCaptureOutput;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bool or one of \"none\", \"stdout\", \"stderr\", \"separated\", \"merged\"")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(GuestExecCaptureOutput::Flag(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        use GuestExecCaptureOutputMode as M;
        let mode = match v {
            "none" => M::None,
            "stdout" => M::Stdout,
            "stderr" => M::Stderr,
            "separated" => M::Separated,
            "merged" => M::Merged,
            other => {
                return Err(E::unknown_variant(
                    other,
                    &GuestExecCaptureOutputMode::NAMES,
                ))
            }
        };
        Ok(GuestExecCaptureOutput::Mode(mode))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(no_branch())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(no_branch())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use GuestExecCaptureOutputMode as M;

    fn parse(text: &str) -> Result<GuestExecCaptureOutput, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_bool_or_a_mode() {
        assert_eq!(parse("true").unwrap().mode(), M::Separated);
        assert_eq!(parse("false").unwrap().mode(), M::None);
        for (name, mode) in GuestExecCaptureOutputMode::NAMES.iter().zip([
            M::None,
            M::Stdout,
            M::Stderr,
            M::Separated,
            M::Merged,
        ]) {
            let got = parse(&format!("\"{name}\"")).unwrap();
            assert_eq!(got, GuestExecCaptureOutput::Mode(mode));
            assert_eq!(serde_json::to_string(&got).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(
            serde_json::to_string(&GuestExecCaptureOutput::Flag(true)).unwrap(),
            "true"
        );
    }

    #[test]
    fn refusals_are_worded_as_qapi_words_them() {
        assert!(parse("\"all\"")
            .unwrap_err()
            .starts_with("unknown variant `all`"));
        for text in ["1", "null", "[]", "{}", "1.5"] {
            let e = parse(text).unwrap_err();
            assert!(
                e.starts_with(
                    "Invalid parameter type for 'capture-output', expected: GuestExecCaptureOutput"
                ),
                "{text}: {e}"
            );
        }
    }
}
