//! The utmp record parser on arbitrary bytes: never panics, at most one user per whole
//! record, and every user listed has a name and a remote host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_ga::parsers::{parse_utmp, UTMP_RECORD};

fuzz_target!(|data: &[u8]| {
    let users = parse_utmp(data);
    assert!(users.len() <= data.len() / UTMP_RECORD);
    for u in &users {
        assert!(!u.name.is_empty() && !u.host.is_empty());
        assert!(u.login_time >= 0);
    }
});
