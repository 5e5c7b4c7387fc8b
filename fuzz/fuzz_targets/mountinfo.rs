//! The `sysinfo` mountinfo parser on arbitrary text: never panics, at most one mount
//! per line, and without escapes (no backslash) mount points and sources come back verbatim.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_ga::parsers::parse_mountinfo;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mounts = parse_mountinfo(text);
    assert!(mounts.len() <= text.lines().count());
    if !text.contains('\\') {
        for m in &mounts {
            assert!(text.contains(&m.mountpoint) && text.contains(&m.source));
        }
    }
});
