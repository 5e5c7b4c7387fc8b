//! sysinfo, human and JSON output, against what this machine says of itself.

mod common;

use common::{json, ok, TestAgent};
use phoenix_testkit::must;

fn uname(flag: &str) -> String {
    must("uname", &[flag])
}

#[test]
fn sysinfo_human_and_json() {
    let agent = TestAgent::start(&[]);
    let v = json(&agent, &["sysinfo"]);
    assert_eq!(v["uname"]["release"], uname("-r"));
    assert_eq!(v["uname"]["nodename"], uname("-n"));
    assert!(v["ram"]["total"].as_u64().unwrap() > 0);
    assert!(v["disks"].is_array());

    let text = ok(&agent, &["sysinfo"]);
    let kernel = text.lines().find(|l| l.starts_with("Kernel:")).unwrap();
    assert!(kernel.contains(&uname("-r")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("Host:") && l.contains(&uname("-n"))),
        "{text}"
    );
    assert!(
        text.contains("Memory:") && text.contains(" total, "),
        "{text}"
    );
    assert!(text.contains("Uptime:"), "{text}");
    assert!(
        text.contains("DISK") && text.contains("MOUNTED ON"),
        "{text}"
    );
    // Memory reads as a size, not a raw KiB count.
    let total_kib = v["ram"]["total"].as_u64().unwrap();
    assert!(!text.contains(&format!("{total_kib} total")), "{text}");
}
