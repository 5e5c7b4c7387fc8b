//! The systemd-logind session-file parser on arbitrary text: never panics, and a
//! session it lists has a name and a remote host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_ga::parsers::parse_logind_session;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(u) = parse_logind_session(text) {
        assert!(!u.name.is_empty() && !u.host.is_empty());
    }
});
