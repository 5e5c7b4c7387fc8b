//! The `fs-freeze` mount-table parser and both selections on arbitrary bytes: never
//! panics; the selections pick only parsed mount points, the default one at most one
//! per source device, and the named one each requested mount point at most once.
#![no_main]

use std::collections::HashSet;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use phoenix_ga::parsers::{parse_mounts, select_all_mounts, select_named_mounts};

fuzz_target!(|data: &[u8]| {
    let mounts = parse_mounts(data);
    assert!(mounts.len() <= data.split(|&b| b == b'\n').count());
    for m in &mounts {
        assert!(!m.fstype.is_empty() && !m.fstype.contains([' ', '\t', '\n']));
    }
    let points: HashSet<&PathBuf> = mounts.iter().map(|m| &m.mountpoint).collect();
    let identity = |s: &str| s.to_string();

    let all = select_all_mounts(&mounts, identity);
    assert!(all.iter().all(|p| points.contains(p)));
    let devices: HashSet<&str> = mounts
        .iter()
        .filter(|m| m.source.starts_with('/'))
        .map(|m| m.source.as_str())
        .collect();
    assert!(all.len() <= devices.len());

    // Every other mount point, some twice: all are mount points, so none is refused.
    let requested: Vec<PathBuf> = mounts
        .iter()
        .step_by(2)
        .flat_map(|m| [m.mountpoint.clone(), m.mountpoint.clone()])
        .collect();
    let named = select_named_mounts(&mounts, &requested, identity).expect("all are mount points");
    assert!(named.iter().all(|p| requested.contains(p)));
    let unique: HashSet<&PathBuf> = named.iter().collect();
    assert_eq!(unique.len(), named.len());
    if let Some(m) = mounts.first() {
        let outside = m.mountpoint.join("not-a-mount-point\u{1}");
        if !points.contains(&outside) {
            assert_eq!(
                select_named_mounts(&mounts, &[outside.clone()], identity),
                Err(outside)
            );
        }
    }
});
