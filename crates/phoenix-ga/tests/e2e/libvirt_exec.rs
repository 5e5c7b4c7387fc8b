//! libvirt's `virsh qemu-agent-command` with `guest-exec` and `guest-exec-status`, as
//! Proxmox's and OpenStack's tools send them, on the shared libvirt domain of
//! libvirt.rs.

use serde_json::json;

use crate::libvirt::{agent, guest};

#[test]
fn virsh_runs_a_command_and_reads_its_status() {
    let Some(g) = guest() else { return };
    let reply = agent(
        &g,
        &json!({"execute": "guest-exec", "arguments": {
            "path": "/bin/sh", "arg": ["-c", "echo hi; exit 7"], "capture-output": true}}),
    );
    let pid = reply["return"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("{reply}"));
    // Polled as libvirt's users poll (qemu-ga has no wait).
    let status = loop {
        let s = agent(
            &g,
            &json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}),
        );
        if s["return"]["exited"] == true {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        status,
        json!({"return": {"exited": true, "exitcode": 7, "out-data": "aGkK"}})
    );
    // The status that reported the exit forgot the pid.
    let dom = g.domain().unwrap();
    let again = json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}).to_string();
    let out = g.virsh(&["qemu-agent-command", dom, &again]);
    assert_ne!(out.status, 0);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}
