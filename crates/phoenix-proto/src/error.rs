//! The error body of a reply: `{"bufb64": BASE64(message), "code": errno or -1}`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// An error as it travels on the wire, decoded: a Phoenix `{bufb64, code}` body, or a
/// qemu-ga `{class, desc}` body (code -1, the class kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Human-readable message (base64 on the wire in the Phoenix dialect).
    pub message: String,
    /// The errno of the failing system call, or -1 when there is none (always -1 in
    /// the qemu-ga dialect).
    pub code: i32,
    /// The qemu-ga dialect's error class (`GenericError`, `CommandNotFound`); `None`
    /// in the Phoenix dialect.
    pub class: Option<String>,
}

/// The JSON shape of an error body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Standard padded base64 of the message.
    pub bufb64: String,
    /// errno or -1.
    pub code: i32,
}

impl WireError {
    /// Builds an error from a message and a code.
    pub fn new(message: impl Into<String>, code: i32) -> Self {
        Self {
            message: message.into(),
            code,
            class: None,
        }
    }

    /// The JSON body of this error.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            bufb64: base64::engine::general_purpose::STANDARD.encode(self.message.as_bytes()),
            code: self.code,
        }
    }

    /// Decodes an error body; a message that is not valid base64 is kept as it came.
    pub fn from_body(body: &ErrorBody) -> Self {
        let message = base64::engine::general_purpose::STANDARD
            .decode(body.bufb64.as_bytes())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|_| body.bufb64.clone());
        Self {
            message,
            code: body.code,
            class: None,
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trip() {
        let e = WireError::new("open /etc/nope: no such file or directory", 2);
        let body = e.to_body();
        assert_eq!(
            body.bufb64,
            "b3BlbiAvZXRjL25vcGU6IG5vIHN1Y2ggZmlsZSBvciBkaXJlY3Rvcnk="
        );
        assert_eq!(WireError::from_body(&body), e);
    }

    #[test]
    fn invalid_base64_is_kept() {
        let body = ErrorBody {
            bufb64: "not base64!".into(),
            code: -1,
        };
        assert_eq!(WireError::from_body(&body).message, "not base64!");
    }
}
