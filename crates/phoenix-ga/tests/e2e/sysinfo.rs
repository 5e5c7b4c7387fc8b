//! sysinfo in a real guest: its kernel, its virtio disk with the mount and the sizes
//! statfs gives (as `df` shows them), its memory.

use phoenix_e2e::SCRATCH;
use serde_json::{json, Value};

use crate::{call, family_guest};

#[test]
fn sysinfo_shows_the_guest() {
    let Some(g) = family_guest("sysinfo") else {
        return;
    };
    let c = g.client();
    let s = call(&c, "sysinfo", json!({}));

    let uname = &s["uname"];
    assert_eq!(uname["sysname"], "Linux");
    assert_eq!(uname["release"], g.sh_ok("uname -r").trim());
    assert_eq!(uname["nodename"], g.sh_ok("hostname").trim());
    assert_eq!(uname["machine"], "x86_64");
    assert_eq!(s["long_bit"], 64);

    // The scratch disk: /dev/vda, mounted, sizes in KiB as df -k shows them (nothing
    // writes to it meanwhile).
    let disks = s["disks"].as_array().expect("disks");
    let vda: &Value = disks
        .iter()
        .find(|d| d["name"] == "/dev/vda")
        .unwrap_or_else(|| panic!("no /dev/vda in {disks:?}"));
    assert_eq!(vda["is_mounted"], true);
    assert_eq!(vda["mountpoint"], SCRATCH);
    let df = g.sh_ok(&format!("df -k {SCRATCH} | tail -n 1"));
    let cols: Vec<u64> = df
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|v| v.parse().unwrap())
        .collect();
    let got: Vec<u64> = ["size_total", "size_used", "size_avail"]
        .iter()
        .map(|k| vda[k].as_u64().unwrap_or_else(|| panic!("{k} in {vda}")))
        .collect();
    assert_eq!(got, cols, "sysinfo {vda} vs df {df}");

    // Memory, as /proc/meminfo says.
    let meminfo = g.sh_ok("grep MemTotal /proc/meminfo");
    let total: u64 = meminfo.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(s["ram"]["total"], total);
    let up: f64 = g
        .sh_ok("cut -d' ' -f1 /proc/uptime")
        .trim()
        .parse()
        .unwrap();
    let reported = s["uptime"].as_f64().expect("uptime");
    assert!(
        reported > 0.0 && reported <= up + 1.0,
        "uptime {reported} vs {up}"
    );
}
