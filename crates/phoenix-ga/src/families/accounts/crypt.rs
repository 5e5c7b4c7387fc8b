//! Password hashes: the SHA-512 crypt (`$6$`) of a plain password, and the shape of a
//! hash a host sends already crypted.
//!
//! The hash is computed here rather than by `chpasswd` (which minimal guests lack) or
//! by libcrypt (which the static agent does not link): RustCrypto's `sha-crypt`, the
//! algorithm glibc, libxcrypt, busybox and the shadow suite all verify, with a salt of
//! 16 characters (96 bits) from the kernel's random source and the default 5000 rounds,
//! written as `chpasswd` and `mkpasswd` write it (`$6$SALT$HASH`, no `rounds=`).

use nix::errno::Errno;
use sha_crypt::{PasswordHasher, ShaCrypt};

use crate::error::Error;

/// The longest plain password taken: libxcrypt's limit (CRYPT_MAX_PASSPHRASE_SIZE),
/// beyond which its crypt(3) fails, so no login could ever check a longer one.
pub const MAX_PLAIN: usize = 512;

/// The longest crypted password taken (the longest hashes, yescrypt's and bcrypt's
/// with every parameter, are under 200 characters).
pub const MAX_HASH: usize = 1024;

/// Bytes of salt: 16 characters of crypt's base64, the most SHA-crypt uses.
const SALT_BYTES: usize = 12;

/// A byte string overwritten when dropped (a decoded password).
#[derive(Default)]
pub struct Wiped(pub Vec<u8>);

impl Drop for Wiped {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

impl std::fmt::Debug for Wiped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The SHA-512 crypt of `password`, with a fresh random salt.
pub fn sha512(password: &[u8]) -> Result<String, Error> {
    let mut salt = [0u8; SALT_BYTES];
    fill_random(&mut salt)?;
    let hash = ShaCrypt::SHA512
        .hash_password_with_salt(password, &salt)
        .map_err(|e| Error::Internal(format!("SHA-512 crypt failed: {e}")))?;
    // `$6$rounds=5000$SALT$HASH`: 5000 is the default, which the short form means.
    let text = hash.as_str();
    Ok(match text.strip_prefix("$6$rounds=5000$") {
        Some(rest) => format!("$6${rest}"),
        None => text.to_string(),
    })
}

/// Fills `buf` from getrandom(2), waiting for the pool at boot if it must.
fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::os("getrandom", e.into())),
        }
    }
    Ok(())
}

/// Checks that `hash` is a crypt(3) hash that /etc/shadow may hold as it is: the
/// modular crypt format `$ID$...$HASH` (SHA-crypt, yescrypt, bcrypt, MD5...), or a
/// lock: `!` before a hash, `!`, `*`. Anything else (a password sent as if it were
/// crypted, a traditional DES hash that cannot be told from one) is refused rather
/// than written to /etc/shadow, where qemu-ga's `chpasswd -e` writes it as it came.
pub fn check_crypted(hash: &[u8]) -> Result<(), Error> {
    let refuse = |why: &str| {
        Err(Error::errno(
            Errno::EINVAL,
            format!("the crypted password is not a crypt(3) hash: {why}"),
        ))
    };
    if hash.len() > MAX_HASH {
        return refuse(&format!("longer than {MAX_HASH} bytes"));
    }
    if !hash.iter().all(|b| b.is_ascii_graphic()) || hash.contains(&b':') {
        return refuse("it has characters no hash has");
    }
    let unlocked = hash.strip_prefix(b"!").unwrap_or(hash);
    match unlocked {
        b"" | b"*" | b"!" if !hash.is_empty() => return Ok(()),
        b"" => return refuse("it is empty"),
        _ => {}
    }
    let Some(rest) = unlocked.strip_prefix(b"$") else {
        return refuse("not of the form $ID$SALT$HASH");
    };
    let mut fields = rest.split(|&b| b == b'$');
    let id = fields.next().unwrap_or_default();
    let others: Vec<&[u8]> = fields.collect();
    let id_ok = !id.is_empty()
        && id.len() <= 16
        && id
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let body_ok = others.len() >= 2
        && others.last().is_some_and(|h| !h.is_empty())
        && others.iter().flat_map(|f| f.iter()).all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'=' | b',' | b'+' | b'-')
        });
    if !id_ok || !body_ok {
        return refuse("not of the form $ID$SALT$HASH");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha_crypt::PasswordVerifier;

    #[test]
    fn hashes_as_chpasswd_writes() {
        let h = sha512(b"correct horse").unwrap();
        let fields: Vec<&str> = h.split('$').collect();
        assert_eq!(fields.len(), 4, "{h}");
        assert_eq!(fields[1], "6");
        assert_eq!(fields[2].len(), 16, "{h}");
        assert_eq!(fields[3].len(), 86, "{h}");
        check_crypted(h.as_bytes()).unwrap();
        ShaCrypt::SHA512
            .verify_password(b"correct horse", h.as_str())
            .unwrap();
        ShaCrypt::SHA512
            .verify_password(b"correct horsE", h.as_str())
            .unwrap_err();
        // A fresh salt each time.
        assert_ne!(sha512(b"x").unwrap(), sha512(b"x").unwrap());
        // Bytes that are not text, as a password may be.
        let h = sha512(b"\xff\xfe pass").unwrap();
        ShaCrypt::SHA512
            .verify_password(b"\xff\xfe pass", h.as_str())
            .unwrap();
    }

    #[test]
    fn the_known_answer() {
        // glibc's crypt("Hello world!", "$6$saltstring") from its test suite.
        let want = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
        ShaCrypt::SHA512
            .verify_password(b"Hello world!", want)
            .unwrap();
    }

    #[test]
    fn crypted_shapes() {
        for ok in [
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uB",
            "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM",
            "$y$j9T$TNbDQmH63vqfcxZc76apl.$ZVv4WqkHcO/46FPVMaioezx/7rG4dffRHNJIntNYKZ0",
            "$2b$12$GhvMmNVjRW29ulnudl.LbuAnUtN/LRfe1JsBm1Xu6LE3059z5Tr8m",
            "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/",
            "!$6$salt$hash",
            "!",
            "*",
            "!!",
            "!*",
        ] {
            check_crypted(ok.as_bytes()).unwrap_or_else(|e| panic!("{ok}: {}", e.message()));
        }
        for bad in [
            "",
            "hunter2",
            "abcdefghijklm", // 13 characters: DES, or a password
            "$6$salt$",
            "$6$",
            "$6$hashonly",
            "$$salt$hash",
            "$6$sa:lt$hash",
            "$6$salt$ha sh",
            "$6$salt$hash\n",
            "$6$salt$h\u{e9}",
            "$6$salt$hash\0",
            "!!!",
            "$ID$salt$hash",
        ] {
            let e = check_crypted(bad.as_bytes()).unwrap_err();
            assert_eq!(e.code(), libc::EINVAL, "{bad}");
            assert!(!e.message().contains(bad) || bad.is_empty(), "{}", e.message());
        }
        check_crypted(format!("$6$salt${}", "a".repeat(MAX_HASH)).as_bytes()).unwrap_err();
    }
}
