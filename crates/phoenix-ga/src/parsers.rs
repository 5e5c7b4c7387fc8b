//! Entry points into the agent's parsers of kernel and host input, for the fuzz
//! targets (`fuzz/`): each calls the parser the agent uses, unchanged. Not an API for
//! anything else.

use std::path::PathBuf;

use phoenix_proto::types::system::User;

use crate::families::{files, freeze, net, system as sysinfo};

pub use freeze::mounts::Mount as FreezeMount;
pub use sysinfo::disks::Mount as MountInfo;

/// Parses a `/proc/self/mounts` table as `fs-freeze` does.
pub fn parse_mounts(text: &[u8]) -> Vec<FreezeMount> {
    freeze::mounts::parse(text)
}

/// The default `fs-freeze` selection, with `resolve` standing for the symlink lookup
/// of source devices.
pub fn select_all_mounts(mounts: &[FreezeMount], resolve: impl Fn(&str) -> String) -> Vec<PathBuf> {
    freeze::mounts::select_all(mounts, resolve)
}

/// The `fs-freeze` selection of explicit mount points; `Err` names the first requested
/// path that is not a mount point.
pub fn select_named_mounts(
    mounts: &[FreezeMount],
    requested: &[PathBuf],
    resolve: impl Fn(&str) -> String,
) -> Result<Vec<PathBuf>, PathBuf> {
    freeze::mounts::select_named(mounts, requested, resolve)
}

/// Parses `/proc/self/mountinfo` as `sysinfo` does for its disks.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    sysinfo::disks::parse_mounts(text)
}

/// Size of one utmp record on this architecture.
pub const UTMP_RECORD: usize = sysinfo::utmp::RECORD;

/// The remote users of a utmp file's bytes, as `sysinfo` lists them.
pub fn parse_utmp(bytes: &[u8]) -> Vec<User> {
    sysinfo::utmp::parse(bytes)
}

/// One systemd-logind session file, as `sysinfo` reads it without utmp.
pub fn parse_logind_session(text: &str) -> Option<User> {
    sysinfo::logind::parse(text)
}

/// The base64 decoding of a `file-write` chunk.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    files::encoding::decode(text).map(|b| b.to_vec())
}

/// Decodes a link message payload (RTM_NEWLINK) as the interface listing does; the
/// decoded link in debug form.
pub fn decode_netlink_link(kind: u16, payload: &[u8]) -> Result<String, String> {
    net::links::parse_link(kind, payload)
        .map(|link| format!("{link:?}"))
        .map_err(|e| e.to_string())
}

/// Decodes a route message payload (RTM_NEWROUTE) as the route listing does; the
/// route in debug form, `None` for routes the listing skips.
pub fn decode_netlink_route(kind: u16, payload: &[u8]) -> Result<Option<String>, String> {
    net::routes::parse_route(kind, payload)
        .map(|route| route.map(|r| format!("{r:?}")))
        .map_err(|e| e.to_string())
}

/// Decodes a whole rtnetlink message of type `kind` as the agent's other replies are.
pub fn decode_netlink_message(kind: u16, payload: &[u8]) -> Result<String, String> {
    net::netlink::decode(kind, payload)
        .map(|m| format!("{m:?}"))
        .map_err(|e| e.to_string())
}

/// The kernel's extended-ack reason in an error ack with header `flags`, after the
/// echoed request.
pub fn netlink_ext_ack_message(flags: u16, echoed: &[u8]) -> Option<String> {
    net::netlink::ext_ack_message(flags, echoed)
}

/// Applies one datagram of link notifications to an index -> name map, as the route
/// listing's name cache does; `Err` for a datagram it would not trust.
pub fn apply_link_notifications(
    names: &mut std::collections::HashMap<u32, String>,
    datagram: &[u8],
) -> Result<(), String> {
    net::names::apply(names, datagram).map_err(|e| e.to_string())
}

/// Parses os-release text as `guest-get-osinfo` does; the fields in debug form.
pub fn parse_os_release(text: &str) -> String {
    format!("{:?}", sysinfo::osrelease::parse(text))
}

/// The zone in force at `t` of a TZif file (what /etc/localtime holds), as
/// `guest-get-timezone` reads it: abbreviation and offset east of UTC in seconds.
pub fn tzif_zone_at(data: &[u8], t: i64) -> Option<(String, i64)> {
    let zone = sysinfo::timezone::parse(data)?.at(t);
    Some((zone.abbrev, zone.offset))
}

/// The zone in force at `t` of a POSIX TZ rule string (`CET-1CEST,M3.5.0,M10.5.0/3`).
pub fn posix_tz_zone_at(rule: &str, t: i64) -> Option<(String, i64)> {
    let zone = sysinfo::posix_tz::parse(rule)?.at(t);
    Some((zone.abbrev, zone.offset))
}

/// The days since 1970-01-01 of a civil date, and back (the zone rules' calendar).
pub fn civil_round_trip(days: i64) -> i64 {
    let (y, m, d) = sysinfo::posix_tz::civil_from_days(days);
    sysinfo::posix_tz::days_from_civil(y, m, d)
}

/// Parses /proc/stat as `guest-get-cpustats` does; the number of CPUs listed.
pub fn parse_proc_stat(text: &str) -> usize {
    sysinfo::cpus::parse_stat(text, 100).len()
}
