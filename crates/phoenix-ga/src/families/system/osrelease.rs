//! The distribution's identity from os-release(5), for `guest-get-osinfo`.
//!
//! Which file: `$QGA_OS_RELEASE` when the agent's environment sets it (only that file:
//! QEMU's own tests point qemu-ga at a fixture with it), else /etc/os-release, else
//! /usr/lib/os-release when /etc/os-release cannot be read. A file that cannot be read
//! gives no fields, not an error, as in qemu-ga.
//!
//! How a line reads, as qemu-ga reads it (it loads the file as a GLib key file under
//! an `[os-release]` group and unquotes the values itself):
//!
//! - leading blanks are skipped; blank lines and `#` comments are ignored; the key
//!   ends at `=` (trailing blanks cut), the value starts after it (leading blanks cut);
//!   a later assignment of a key wins;
//! - `"..."`: the text up to the closing quote, where `\$`, `\'`, `\"`, `\\` and
//!   `` \` `` stand for the character and any other backslash stays;
//! - `'...'`: the text up to the closing quote, as is;
//! - bare: the text up to the first blank or `;`.
//!
//! Where we differ, we follow os-release(5) and the shell, which qemu-ga gets wrong:
//! single quotes are quotes (qemu-ga cuts `'Foo Bar'` to `'Foo`); a line that is not
//! an assignment is skipped (GLib refuses the whole file, so qemu-ga reports no
//! distribution at all); text that is not UTF-8 is read with U+FFFD in place of bad
//! bytes (qemu-ga ignores the file); and /usr/lib/os-release is read only when
//! /etc/os-release cannot be, as os-release(5) says (qemu-ga also falls back when
//! GLib refuses /etc/os-release).

use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Larger files are cut here: os-release files are a few hundred bytes.
const MAX_BYTES: u64 = 64 * 1024;

/// The os-release fields `guest-get-osinfo` reports; `None` where the file has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`.
    pub id: Option<String>,
    /// `NAME`.
    pub name: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
    /// `VERSION`.
    pub version: Option<String>,
    /// `VERSION_ID`.
    pub version_id: Option<String>,
    /// `VARIANT`.
    pub variant: Option<String>,
    /// `VARIANT_ID`.
    pub variant_id: Option<String>,
}

/// Reads the first of `paths` that can be read; none is an empty [`OsRelease`].
pub fn read(paths: &[PathBuf]) -> OsRelease {
    for path in paths {
        match read_text(path) {
            Ok(text) => return parse(&text),
            Err(e) => tracing::debug!(path = %path.display(), error = %e, "os-release not read"),
        }
    }
    OsRelease::default()
}

fn read_text(path: &Path) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_BYTES)
        .read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The fields of an os-release file's text.
pub fn parse(text: &str) -> OsRelease {
    let mut out = OsRelease::default();
    // qemu-ga's key file starts in the group it names `os-release`; a group header in
    // the file itself moves the keys after it elsewhere.
    let mut in_group = true;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            in_group = header.trim_end() == "os-release]";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !in_group {
            continue;
        }
        let key = key.trim_end_matches(|c: char| c.is_ascii_whitespace());
        let slot = match key {
            "ID" => &mut out.id,
            "NAME" => &mut out.name,
            "PRETTY_NAME" => &mut out.pretty_name,
            "VERSION" => &mut out.version,
            "VERSION_ID" => &mut out.version_id,
            "VARIANT" => &mut out.variant,
            "VARIANT_ID" => &mut out.variant_id,
            _ => continue,
        };
        *slot = Some(unquote(
            value.trim_start_matches(|c: char| c.is_ascii_whitespace()),
        ));
    }
    out
}

/// A value as the file writes it, unquoted (see the module's rules).
pub fn unquote(raw: &str) -> String {
    let mut chars = raw.chars();
    match chars.next() {
        Some('"') => {
            let mut out = String::with_capacity(raw.len());
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.clone().next() {
                        Some(e @ ('$' | '\'' | '"' | '\\' | '`')) => {
                            out.push(e);
                            chars.next();
                        }
                        _ => out.push('\\'),
                    },
                    c => out.push(c),
                }
            }
            out
        }
        Some('\'') => chars.take_while(|&c| c != '\'').collect(),
        _ => raw
            .split(|c: char| c.is_ascii_whitespace() || c == ';')
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    /// The shapes of QEMU's own test file for `QGA_OS_RELEASE` (written anew here).
    const FIXTURE: &str = r#"ID=phoenix-test
NAME=Phoenix-GA
PRETTY_NAME="Phoenix guest agent test"
VERSION="Test 2"
VERSION_ID=2
VARIANT="Escapes \"\'\$\`\\ and \\\\ and \n stay"
VARIANT_ID=unit-test
"#;

    #[test]
    fn reads_every_field_with_qemu_gas_escapes() {
        assert_eq!(
            parse(FIXTURE),
            OsRelease {
                id: some("phoenix-test"),
                name: some("Phoenix-GA"),
                pretty_name: some("Phoenix guest agent test"),
                version: some("Test 2"),
                version_id: some("2"),
                variant: some(r#"Escapes "'$`\ and \\ and \n stay"#),
                variant_id: some("unit-test"),
            }
        );
    }

    #[test]
    fn reads_a_real_debian_file() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
            VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n\
            HOME_URL=\"https://www.debian.org/\"\n";
        let r = parse(debian);
        assert_eq!(r.pretty_name, some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(r.version, some("12 (bookworm)"));
        assert_eq!((r.id, r.version_id), (some("debian"), some("12")));
        assert_eq!((r.variant, r.variant_id), (None, None));
    }

    #[test]
    fn quoting_rules() {
        assert_eq!(unquote("debian"), "debian");
        // Bare values end at a blank or a semicolon (a trailing comment).
        assert_eq!(unquote("debian # comment"), "debian");
        assert_eq!(unquote("a;b"), "a");
        assert_eq!(unquote("a\tb"), "a");
        assert_eq!(unquote(""), "");
        // Double quotes: escapes, the closing quote ends the value.
        assert_eq!(unquote(r#""a \"b\" c" trailing"#), r#"a "b" c"#);
        assert_eq!(unquote(r#""back\slash\n""#), r"back\slash\n");
        assert_eq!(unquote(r#""unterminated"#), "unterminated");
        assert_eq!(unquote(r#""ends in \"#), r"ends in \");
        // Single quotes: literal (qemu-ga would give "'Foo").
        assert_eq!(unquote(r"'Foo \$ Bar'"), r"Foo \$ Bar");
        assert_eq!(unquote("'open"), "open");
        assert_eq!(unquote("\"\u{e9}t\u{e9}\""), "\u{e9}t\u{e9}");
    }

    #[test]
    fn key_file_rules() {
        let text = "  # comment\r\n\r\n  ID = first \r\nID=second\r\nNAME\r\nNAME[de]=x\r\n\
                    VERSION=\r\n[other]\r\nVARIANT=no\r\n[os-release]\r\nVARIANT_ID=yes\r\n";
        let r = parse(text);
        // The last assignment wins; blanks around '=' go; CRLF is a line end.
        assert_eq!(r.id, some("second"));
        // A line without '=' is skipped; a localised key is another key.
        assert_eq!(r.name, None);
        // An empty value is a value, as in qemu-ga.
        assert_eq!(r.version, some(""));
        // Keys under another group header are not os-release's.
        assert_eq!((r.variant, r.variant_id), (None, some("yes")));
        assert_eq!(parse(""), OsRelease::default());
    }

    #[test]
    fn first_readable_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc-os-release");
        let lib = dir.path().join("lib-os-release");
        let paths = [etc.clone(), lib.clone()];
        assert_eq!(read(&paths), OsRelease::default());
        std::fs::write(&lib, "ID=fallback\n").unwrap();
        assert_eq!(read(&paths).id, some("fallback"));
        // /etc/os-release, even empty, is the truth once it can be read.
        std::fs::write(&etc, "").unwrap();
        assert_eq!(read(&paths), OsRelease::default());
        std::fs::write(&etc, b"ID=\xffbad\n").unwrap();
        assert_eq!(read(&paths).id, some("\u{fffd}bad"));
        // A directory cannot be read: the next file is.
        std::fs::remove_file(&etc).unwrap();
        std::fs::create_dir(&etc).unwrap();
        assert_eq!(read(&paths).id, some("fallback"));
    }
}
