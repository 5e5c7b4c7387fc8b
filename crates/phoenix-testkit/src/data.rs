//! Test data, its checksums and its base64 form.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::Value;

/// One mebibyte.
pub const MIB: usize = 1 << 20;

/// Deterministic pseudo-random bytes (xorshift64*): incompressible, so a transfer that
/// mixes up, drops or repeats a chunk cannot pass by luck.
pub fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// MD5 of `data`, lowercase hex.
pub fn md5_of(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// MD5 of the file at `path` as coreutils' `md5sum` computes it (an implementation
/// other than the agent's).
pub fn md5sum(path: &Path) -> String {
    let mut cmd = Command::new("md5sum");
    cmd.arg(path);
    coreutils_md5(cmd, b"")
}

/// MD5 of `data` as coreutils' `md5sum` computes it, fed on its standard input.
pub fn md5sum_bytes(data: &[u8]) -> String {
    coreutils_md5(Command::new("md5sum"), data)
}

/// The digest `cmd` (an `md5sum`) prints after reading `stdin`.
fn coreutils_md5(mut cmd: Command, stdin: &[u8]) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run md5sum");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "md5sum failed");
    String::from_utf8(out.stdout).unwrap()[..32].to_string()
}

/// `data` in standard base64, as `bufb64` carries it.
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The bytes of a base64 JSON string (a `bufb64` member).
pub fn unb64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("bufb64 string"))
        .expect("valid base64")
}
