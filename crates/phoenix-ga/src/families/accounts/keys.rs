//! The content of `authorized_keys`: its lines, as sshd(8) reads them.
//!
//! A key is one line (options, type, key, comment); two keys are the same when their
//! lines are, leading and trailing blanks aside, as in qemu-ga. Adding keeps every
//! line there is (comments, options, blank lines) in its place and appends the new
//! keys not already present, in the order given (blank keys skipped); removing drops the lines equal to a
//! key given and keeps the rest byte for byte. The file always ends with a newline
//! (qemu-ga leaves the last key without one, so that the next `echo KEY >>` joins it).

use crate::error::Error;

/// The refusal of a key that cannot be one line of `authorized_keys` (qemu-ga's
/// words): a comment, or with a line break or NUL in it (leading and trailing blanks
/// aside, so the `\r` of a key file with CRLF line ends is no error). A blank key is
/// no error and is skipped ([`is_blank`]): `virsh set-user-sshkeys --file` splits the
/// file at each newline and sends the empty string after the last one, which qemu-ga
/// takes.
pub fn check(key: &str) -> Result<(), Error> {
    let trimmed = key.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.starts_with('#') || trimmed.contains(['\n', '\r', '\0']) {
        let shown: String = key.chars().take(120).collect();
        return Err(Error::invalid(format!(
            "invalid OpenSSH public key: '{}'",
            shown.escape_debug()
        )));
    }
    Ok(())
}

/// Whether a key is blank (empty or only blanks): skipped when adding and removing.
pub fn is_blank(key: &str) -> bool {
    key.trim_ascii().is_empty()
}

/// The lines of an `authorized_keys` file, each without its newline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizedKeys {
    lines: Vec<Vec<u8>>,
}

/// A line without its leading and trailing blanks.
fn trimmed(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

impl AuthorizedKeys {
    /// The lines of `content`.
    pub fn parse(content: &[u8]) -> Self {
        let body = content.strip_suffix(b"\n").unwrap_or(content);
        let lines = if content.is_empty() {
            Vec::new()
        } else {
            body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
        };
        AuthorizedKeys { lines }
    }

    /// The keys: every line but blank ones and comments, trimmed, in file order.
    pub fn keys(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|l| trimmed(l))
            .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    /// Appends the keys not present yet; whether anything was added.
    pub fn add(&mut self, keys: &[String]) -> bool {
        let before = self.lines.len();
        for key in keys.iter().filter(|k| !is_blank(k)) {
            let key = trimmed(key.as_bytes());
            if !self.lines.iter().any(|l| trimmed(l) == key) {
                self.lines.push(key.to_vec());
            }
        }
        self.lines.len() != before
    }

    /// Removes every line equal to one of `keys`; whether anything was removed.
    pub fn remove(&mut self, keys: &[String]) -> bool {
        let before = self.lines.len();
        self.lines.retain(|l| {
            !keys
                .iter()
                .filter(|k| !is_blank(k))
                .any(|k| trimmed(k.as_bytes()) == trimmed(l))
        });
        self.lines.len() != before
    }

    /// The file's content.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for line in &self.lines {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const FILE: &[u8] = b"# managed by hand\n\
        from=\"10.0.0.0/8\",no-pty ssh-ed25519 AAAAC3one alice@a\n\
        \n\
        ssh-rsa AAAAB3two bob@b   \n\
        ssh-ed25519 AAAAC3one alice@a\n";

    #[test]
    fn lists_keys_in_file_order() {
        let f = AuthorizedKeys::parse(FILE);
        assert_eq!(
            f.keys(),
            keys(&[
                "from=\"10.0.0.0/8\",no-pty ssh-ed25519 AAAAC3one alice@a",
                "ssh-rsa AAAAB3two bob@b",
                "ssh-ed25519 AAAAC3one alice@a",
            ])
        );
        assert_eq!(f.to_bytes(), FILE);
        assert!(AuthorizedKeys::parse(b"").keys().is_empty());
        assert_eq!(AuthorizedKeys::parse(b"k\r\n# c\r\n").keys(), keys(&["k"]));
    }

    #[test]
    fn adds_without_duplicates_and_keeps_the_rest() {
        let mut f = AuthorizedKeys::parse(FILE);
        let changed = f.add(&keys(&[
            "ssh-rsa AAAAB3two bob@b",
            "  ssh-ed25519 AAAAC3three carol@c ",
            "ssh-ed25519 AAAAC3three carol@c",
            "ssh-ed25519 AAAAC3four dan@d",
        ]));
        assert!(changed);
        let mut want = FILE.to_vec();
        want.extend_from_slice(b"ssh-ed25519 AAAAC3three carol@c\nssh-ed25519 AAAAC3four dan@d\n");
        assert_eq!(f.to_bytes(), want);
        assert!(!f.add(&keys(&["ssh-ed25519 AAAAC3four dan@d"])));
        // A file without its last newline gets one before the new key.
        let mut f = AuthorizedKeys::parse(b"a\nb");
        f.add(&keys(&["c"]));
        assert_eq!(f.to_bytes(), b"a\nb\nc\n");
        let mut f = AuthorizedKeys::default();
        assert!(!f.add(&[]));
        assert_eq!(f.to_bytes(), b"");
        // Blank keys (virsh's empty string after a file's last newline) are skipped,
        // and a CRLF key file's `\r` is a blank.
        assert!(!f.add(&keys(&["", "  "])));
        assert!(f.add(&keys(&["k1\r", ""])));
        assert_eq!(f.to_bytes(), b"k1\n");
    }

    #[test]
    fn removes_every_copy_and_nothing_else() {
        let mut f = AuthorizedKeys::parse(FILE);
        assert!(f.remove(&keys(&["ssh-ed25519 AAAAC3one alice@a", "absent"])));
        assert_eq!(
            f.to_bytes(),
            b"# managed by hand\n\
              from=\"10.0.0.0/8\",no-pty ssh-ed25519 AAAAC3one alice@a\n\
              \n\
              ssh-rsa AAAAB3two bob@b   \n"
        );
        assert!(f.remove(&keys(&["ssh-rsa AAAAB3two bob@b"])));
        assert!(!f.remove(&keys(&["ssh-rsa AAAAB3two bob@b"])));
        // A blank key removes no blank line.
        assert!(!f.remove(&keys(&["", " "])));
    }

    #[test]
    fn keys_that_cannot_be_a_line() {
        check("ssh-ed25519 AAAA c").unwrap();
        check("command=\"echo #\" ssh-ed25519 AAAA").unwrap();
        check("").unwrap();
        check("   ").unwrap();
        check("ssh-ed25519 AAAA c\r").unwrap();
        check("ssh-ed25519 AAAA c\n").unwrap();
        for bad in ["# comment", "  #x", "a\nb", "a\rb", "a\0b"] {
            let e = check(bad).unwrap_err();
            assert!(
                e.message().starts_with("invalid arguments: invalid OpenSSH public key: '"),
                "{}",
                e.message()
            );
        }
        assert_eq!(
            check("bad\nkey").unwrap_err().message(),
            "invalid arguments: invalid OpenSSH public key: 'bad\\nkey'"
        );
    }
}
