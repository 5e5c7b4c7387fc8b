//! The colon-separated account files, /etc/passwd and /etc/shadow: finding a user's
//! line and changing some of its fields, every other byte of the file kept.
//!
//! A line is `name:field:field...`. The first line whose first field is the name is
//! the user's, as getpwnam(3) and the shadow suite take it; NIS compat lines (`+name`)
//! are not the user's. A missing final newline is added when the file is written, so
//! that the next line appended (by anyone) starts a line of its own.

use std::ops::Range;

/// The byte range of `name`'s line in `file`, without its newline.
pub fn find(file: &[u8], name: &str) -> Option<Range<usize>> {
    let mut start = 0;
    for line in file.split(|&b| b == b'\n') {
        let end = start + line.len();
        let first = line.split(|&b| b == b':').next().unwrap_or_default();
        if line.contains(&b':') && first == name.as_bytes() {
            return Some(start..end);
        }
        start = end + 1;
    }
    None
}

/// Field `i` (0: the name) of a line, or `None` when the line has fewer fields.
pub fn field(line: &[u8], i: usize) -> Option<&[u8]> {
    line.split(|&b| b == b':').nth(i)
}

/// `file` with the line at `at` given new `fields` (index, value); fields the line
/// lacks up to the highest index are added empty. Everything else is kept as it was.
pub fn with_fields(file: &[u8], at: Range<usize>, fields: &[(usize, &[u8])]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = file[at.clone()].split(|&b| b == b':').collect();
    let last = fields.iter().map(|&(i, _)| i).max().unwrap_or(0);
    while parts.len() <= last {
        parts.push(b"");
    }
    for &(i, value) in fields {
        parts[i] = value;
    }
    let mut out = Vec::with_capacity(file.len() + 64);
    out.extend_from_slice(&file[..at.start]);
    out.extend_from_slice(&parts.join(&b':'));
    out.extend_from_slice(&file[at.end..]);
    terminated(out)
}

/// `file` with `line` added at its end.
pub fn with_line(file: &[u8], line: &[u8]) -> Vec<u8> {
    let mut out = terminated(file.to_vec());
    out.extend_from_slice(line);
    out.push(b'\n');
    out
}

/// `file` ending with a newline (unless it is empty).
fn terminated(mut file: Vec<u8>) -> Vec<u8> {
    if file.last().is_some_and(|&b| b != b'\n') {
        file.push(b'\n');
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n+alice::::::\n\
        alice:x:1000:1000:Alice A.:/home/alice:/bin/bash\nbob:!:1001:1001::/home/bob:\n\
        alice:dup:1:1::/x:/y\n# not a user\n";

    #[test]
    fn finds_the_first_line_of_a_user() {
        let at = find(PASSWD, "alice").unwrap();
        assert_eq!(
            &PASSWD[at.clone()],
            b"alice:x:1000:1000:Alice A.:/home/alice:/bin/bash"
        );
        assert_eq!(field(&PASSWD[at.clone()], 5), Some(&b"/home/alice"[..]));
        assert_eq!(field(&PASSWD[at], 9), None);
        assert_eq!(find(PASSWD, "+alice"), Some(30..42));
        for absent in ["", "ali", "carol", "# not a user", "x"] {
            assert_eq!(find(PASSWD, absent), None, "{absent}");
        }
        // The last line, without a newline.
        assert_eq!(find(b"a:1\nb:2", "b"), Some(4..7));
    }

    #[test]
    fn changes_fields_and_keeps_every_other_byte() {
        let at = find(PASSWD, "bob").unwrap();
        let out = with_fields(PASSWD, at, &[(1, b"x")]);
        let want = String::from_utf8_lossy(PASSWD).replace("bob:!:", "bob:x:");
        assert_eq!(String::from_utf8_lossy(&out), want);
        // Missing fields are added empty.
        let file = b"a:1\nshort:h\nz:9";
        let out = with_fields(file, find(file, "short").unwrap(), &[(1, b"H"), (2, b"20000")]);
        assert_eq!(out, b"a:1\nshort:H:20000\nz:9\n");
        // Bytes that are not text stay as they were.
        let file = b"\xff\xfe:x\nu:old:1:\xc3(\n";
        let out = with_fields(file, find(file, "u").unwrap(), &[(1, b"new")]);
        assert_eq!(out, b"\xff\xfe:x\nu:new:1:\xc3(\n");
    }

    #[test]
    fn appends_a_line() {
        assert_eq!(with_line(b"a:1\n", b"b:2"), b"a:1\nb:2\n");
        assert_eq!(with_line(b"a:1", b"b:2"), b"a:1\nb:2\n");
        assert_eq!(with_line(b"", b"b:2"), b"b:2\n");
    }
}
