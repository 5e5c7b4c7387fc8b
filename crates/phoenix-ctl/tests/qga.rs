//! `phoenix-ctl` against agents speaking the qemu-ga dialect: Debian's unmodified
//! qemu-ga, and phoenix-ga on a qemu-ga listener. The dialect is found on connect.

mod common;

use std::path::Path;

use common::ctl_at as ctl;
use phoenix_testkit::{md5_of, random_bytes, QemuGa, TestAgent};
use serde_json::Value;

fn ok(sock: &Path, args: &[&str]) -> String {
    let out = ctl(sock, args, b"");
    assert!(
        out.status.success(),
        "phoenix-ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The same session against one agent: `dir` is a directory the agent can write.
fn session(sock: &Path, dir: &Path, version_is_ours: bool) {
    let version = ok(sock, &["ping"]);
    assert_eq!(
        version.trim() == env!("CARGO_PKG_VERSION"),
        version_is_ours,
        "{version}"
    );
    let info: Value = serde_json::from_str(&ok(sock, &["--json", "info"])).unwrap();
    assert_eq!(info["dialect"], "qga");
    assert!(info["commands"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "guest-file-read"));

    // Upload, then download, then md5sum: the bytes round-trip.
    let data = random_bytes(5 << 20, 7);
    let remote = dir.join("up.bin");
    let remote_s = remote.to_str().unwrap();
    let out = ctl(sock, &["cp", "-", &format!("guest:{remote_s}")], &data);
    assert!(
        !out.status.success(),
        "an upload without rename must ask for --in-place"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--in-place"));
    let out = ctl(
        sock,
        &[
            "--json",
            "cp",
            "--in-place",
            "-",
            &format!("guest:{remote_s}"),
        ],
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["bytes"], 5 << 20);
    assert_eq!(
        summary["checked"], false,
        "qemu-ga's dialect has no MD5 to check"
    );
    assert!(std::fs::read(&remote).unwrap() == data, "upload differs");
    let out = ctl(sock, &["cat", remote_s], b"");
    assert!(out.stdout == data, "cat differs");
    let local = dir.join("down.bin");
    ok(
        sock,
        &["cp", &format!("guest:{remote_s}"), local.to_str().unwrap()],
    );
    assert!(std::fs::read(&local).unwrap() == data, "download differs");
    let sum = ok(sock, &["md5sum", remote_s]);
    assert_eq!(sum, format!("{}  {remote_s}\n", md5_of(&data)));

    // Inventory and status.
    assert_eq!(ok(sock, &["freeze-status"]).trim(), "thawed");
    let sysinfo = ok(sock, &["sysinfo"]);
    assert!(sysinfo.contains("Host:"), "{sysinfo}");
    let ifaces = ok(sock, &["ip", "addr", "show"]);
    assert!(ifaces.lines().any(|l| l.starts_with("lo ")), "{ifaces}");

    // What the dialect has no command for is refused, with exit status 2.
    for args in [
        &["ls", "/"][..],
        &["stat", "/"],
        &["chmod", "644", remote_s],
    ] {
        let out = ctl(sock, args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not available in the qemu-ga dialect"),
            "{err}"
        );
    }
}

#[test]
fn against_an_unmodified_qemu_ga() {
    // Only its freeze-everything command blocked: nothing here freezes.
    let qga = QemuGa::start(&["unshare", "-n"], &["-b", "guest-fsfreeze-freeze"]);
    session(&qga.sock, qga.dir.path(), false);
}

#[test]
fn against_phoenix_ga_in_the_qemu_ga_dialect() {
    let agent = TestAgent::in_netns(&["--dialect", "qga"]);
    session(&agent.sock, agent.dir.path(), true);
}
