//! The base64 of transfer chunks, as both dialects carry them.

use base64::Engine as _;

use crate::memory::Buffer;

/// Standard padded base64. Like the original (Go's StdEncoding), line breaks inside
/// the text are ignored, and so are non-zero bits after the last full byte.
///
/// Decoded with SIMD (base64-simd picks SSSE3/AVX2 at run time) into a transfer
/// buffer (reused between chunks, see [`Buffer`]) when the text is valid, which it
/// nearly always is; otherwise the `base64` crate decodes it again, for its exact
/// error message.
pub fn decode(text: &str) -> Result<Buffer, base64::DecodeError> {
    let most = base64_simd::STANDARD.estimated_decoded_length(text.len());
    if let Ok(mut buf) = Buffer::new(most) {
        let out = base64_simd::Out::from_slice(&mut buf[..]);
        if let Ok(n) = base64_simd::STANDARD
            .decode(text.as_bytes(), out)
            .map(|d| d.len())
        {
            buf.truncate(n);
            return Ok(buf);
        }
    }
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    match lenient.decode(text) {
        Err(e) if text.contains(['\r', '\n']) => {
            let joined: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
            lenient.decode(joined).map_err(|_| e)
        }
        other => other,
    }
    .map(Buffer::from)
}

/// Lowercase hex of `bytes` (an MD5 digest).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_decoded_like_go_std_encoding() {
        assert_eq!(&decode("aGVsbG8=").unwrap()[..], b"hello");
        assert_eq!(&decode("").unwrap()[..], b"");
        let long = vec![0xA5u8; 100_003];
        let text = base64::engine::general_purpose::STANDARD.encode(&long);
        assert_eq!(&decode(&text).unwrap()[..], &long[..]);
        // Line breaks are skipped; so are bits after the last byte ("aGVsbG9=").
        assert_eq!(&decode("aGVs\r\nbG8=").unwrap()[..], b"hello");
        assert_eq!(&decode("aGVsbG9=").unwrap()[..], b"hello");
        // Missing padding and foreign characters are errors, with the offset.
        decode("aGVsbG8").unwrap_err();
        let e = decode("a!==").unwrap_err().to_string();
        assert!(e.contains("offset 1"), "{e}");
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x90, 0x01, 0xab]), "9001ab");
    }
}
