//! The inventory commands' parsers of guest files on arbitrary bytes: os-release,
//! /proc/stat, TZif zone files and POSIX TZ rules never panic; a zone in force is
//! within a day of UTC with a printable abbreviation; the calendar round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_ga::parsers::{
    civil_round_trip, parse_os_release, parse_proc_stat, posix_tz_zone_at, tzif_zone_at,
};

fn check_zone(zone: Option<(String, i64)>) {
    if let Some((abbrev, offset)) = zone {
        assert!(offset.abs() <= 26 * 3600, "offset {offset}");
        assert!(!abbrev.chars().any(char::is_control), "{abbrev:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let t = data
        .get(..8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or_default()
        % (400 * 365 * 86_400);
    check_zone(tzif_zone_at(data, t));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_os_release(text);
        let _ = parse_proc_stat(text);
        check_zone(posix_tz_zone_at(text.trim(), t));
    }
    let days = t / 86_400;
    assert_eq!(civil_round_trip(days), days);
});
