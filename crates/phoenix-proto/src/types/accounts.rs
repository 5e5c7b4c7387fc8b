//! Accounts: a user's password and authorized ssh keys. qemu-ga's commands, with its
//! names, arguments and replies (`guest-set-user-password`,
//! `guest-ssh-get-authorized-keys`, `-add-authorized-keys`, `-remove-authorized-keys`),
//! declared in the qemu-ga dialect and offered by the agent in the Phoenix envelope
//! too, under the same names.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::qga::Empty;

/// A string that must never be shown: the `password` of `guest-set-user-password`.
/// Its `Debug` prints `<redacted>`, a decoding error never quotes it (serde's "invalid
/// type: integer `1234`" would), and its bytes are overwritten when it is dropped (a
/// best effort: copies made before it was decoded, in the request line, are not).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    /// The text itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `any`: serde_json words a wrong type itself, with the value, when asked for a
        // string; given to the visitor, every type is refused here without it.
        d.deserialize_any(SecretVisitor)
    }
}

/// Takes a string and nothing else, and words every refusal without the value.
struct SecretVisitor;

impl SecretVisitor {
    /// serde's words ("invalid type: X, expected a string", which the agent reads to
    /// tell a wrong type from other errors) with the value left out.
    fn wrong<E: de::Error>(what: &str) -> E {
        E::custom(format_args!("invalid type: {what}, expected a string"))
    }
}

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret(v))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(Self::wrong("boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(Self::wrong("integer"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(Self::wrong("integer"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(Self::wrong("floating point"))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Secret, E> {
        Err(E::invalid_type(Unexpected::Other("bytes"), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Secret, E> {
        Err(Self::wrong("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Secret, E> {
        Err(Self::wrong("null"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(Self::wrong("sequence"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(Self::wrong("map"))
    }
}

/// Arguments of `guest-set-user-password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSetUserPasswordArgs {
    /// The account whose password to set.
    pub username: String,
    /// The new password, base64-encoded: the password itself, or (with `crypted`) a
    /// crypt(3) hash such as `$6$salt$...`.
    pub password: Secret,
    /// Whether `password` is already a crypt(3) hash.
    pub crypted: bool,
}

/// Arguments of `guest-ssh-get-authorized-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSshGetAuthorizedKeysArgs {
    /// The account.
    pub username: String,
}

/// Arguments of `guest-ssh-add-authorized-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSshAddAuthorizedKeysArgs {
    /// The account.
    pub username: String,
    /// Lines of `authorized_keys` (a key, with its options and comment).
    pub keys: Vec<String>,
    /// Replace the whole file with `keys` instead of adding to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
}

/// Arguments of `guest-ssh-remove-authorized-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSshRemoveAuthorizedKeysArgs {
    /// The account.
    pub username: String,
    /// Lines of `authorized_keys` to remove.
    pub keys: Vec<String>,
}

/// `GuestAuthorizedKeys`: the return value of `guest-ssh-get-authorized-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestAuthorizedKeys {
    /// The keys of `authorized_keys`, comments and blank lines left out.
    pub keys: Vec<String>,
}

/// The accounts commands: qemu-ga's, answered in both dialects.
pub mod cmd {
    use super::*;

    crate::commands! { Qga;
        /// `guest-set-user-password`: sets a user's password (plain or crypted).
        GuestSetUserPassword = "guest-set-user-password" (GuestSetUserPasswordArgs) -> Empty;
        /// `guest-ssh-get-authorized-keys`: the keys of `~/.ssh/authorized_keys`.
        GuestSshGetAuthorizedKeys = "guest-ssh-get-authorized-keys"
            (GuestSshGetAuthorizedKeysArgs) -> GuestAuthorizedKeys;
        /// `guest-ssh-add-authorized-keys`: adds keys (or replaces them all, `reset`).
        GuestSshAddAuthorizedKeys = "guest-ssh-add-authorized-keys"
            (GuestSshAddAuthorizedKeysArgs) -> Empty;
        /// `guest-ssh-remove-authorized-keys`: removes keys; an absent key is no error.
        GuestSshRemoveAuthorizedKeys = "guest-ssh-remove-authorized-keys"
            (GuestSshRemoveAuthorizedKeysArgs) -> Empty;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn password_arguments_as_qemu_ga_takes_them() {
        let a: GuestSetUserPasswordArgs = serde_json::from_value(
            json!({"username": "alice", "password": "c2VjcmV0", "crypted": false}),
        )
        .unwrap();
        assert_eq!(a.username, "alice");
        assert_eq!(a.password.expose(), "c2VjcmV0");
        assert!(!a.crypted);
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"username": "alice", "password": "c2VjcmV0", "crypted": false})
        );
        // `crypted` is required, as in the schema; nothing else is taken.
        serde_json::from_value::<GuestSetUserPasswordArgs>(
            json!({"username": "a", "password": "eA=="}),
        )
        .unwrap_err();
        serde_json::from_value::<GuestSetUserPasswordArgs>(
            json!({"username": "a", "password": "eA==", "crypted": true, "x": 1}),
        )
        .unwrap_err();
    }

    #[test]
    fn a_secret_is_never_shown() {
        let a: GuestSetUserPasswordArgs = serde_json::from_value(
            json!({"username": "alice", "password": "hunter2", "crypted": false}),
        )
        .unwrap();
        let debug = format!("{a:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        for wrong in [
            json!(123_456_789),
            json!(-42),
            json!(1.5),
            json!(true),
            json!(null),
            json!(["hunter2"]),
            json!({"p": "hunter2"}),
        ] {
            // From a value, and from text as the agent decodes it.
            let text = format!(r#"{{"username":"a","password":{wrong},"crypted":false}}"#);
            let from_text = serde_json::from_str::<GuestSetUserPasswordArgs>(&text);
            let from_value = serde_json::from_value::<GuestSetUserPasswordArgs>(
                json!({"username": "a", "password": wrong, "crypted": false}),
            );
            for e in [from_text.unwrap_err(), from_value.unwrap_err()] {
                let e = e.to_string();
                assert!(e.starts_with("invalid type: "), "{e}");
                assert!(e.contains(", expected a string"), "{e}");
                for part in ["123456789", "42", "1.5", "true", "hunter2"] {
                    assert!(!e.contains(part), "{e}");
                }
            }
        }
    }

    #[test]
    fn key_arguments_and_reply() {
        let a: GuestSshAddAuthorizedKeysArgs =
            serde_json::from_value(json!({"username": "u", "keys": ["ssh-ed25519 AAAA c"]}))
                .unwrap();
        assert_eq!(a.reset, None);
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"username": "u", "keys": ["ssh-ed25519 AAAA c"]})
        );
        let a: GuestSshAddAuthorizedKeysArgs =
            serde_json::from_value(json!({"username": "u", "keys": [], "reset": true})).unwrap();
        assert_eq!(a.reset, Some(true));
        serde_json::from_value::<GuestSshAddAuthorizedKeysArgs>(json!({"username": "u"}))
            .unwrap_err();
        serde_json::from_value::<GuestSshRemoveAuthorizedKeysArgs>(
            json!({"username": "u", "keys": [], "reset": true}),
        )
        .unwrap_err();
        serde_json::from_value::<GuestSshGetAuthorizedKeysArgs>(json!({"user": "u"})).unwrap_err();
        let r = GuestAuthorizedKeys {
            keys: vec!["k".into()],
        };
        assert_eq!(serde_json::to_value(r).unwrap(), json!({"keys": ["k"]}));
    }
}
