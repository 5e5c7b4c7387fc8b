//! libvirt's `virsh qemu-agent-command` with `guest-exec` and `guest-exec-status`, as
//! Proxmox's and OpenStack's tools send them, on the shared libvirt domain of
//! libvirt.rs (its helpers are repeated here, with the same guest options, so that the
//! domain is the same whichever module boots it).

use std::sync::MutexGuard;

use phoenix_e2e::{Guest, GuestOpts, QGA_PORT};
use serde_json::{json, Value};

fn peer() -> bool {
    std::env::var("PHOENIX_E2E_LIBVIRT_PEER").is_ok_and(|v| v == "qemu-ga")
}

/// The shared libvirt domain (the same options as libvirt.rs gives it).
fn guest() -> Option<MutexGuard<'static, Guest>> {
    if phoenix_e2e::skip_libvirt() {
        return None;
    }
    Some(phoenix_e2e::shared_libvirt(|| {
        let mut opts = GuestOpts::new(env!("CARGO_BIN_EXE_phoenix-ga"));
        opts.agent_args = vec!["--debug".into()];
        if peer() {
            opts.agent_args.push("-p".into());
            opts.agent_args
                .push(format!("/dev/virtio-ports/{}", phoenix_e2e::AGENT_PORT));
            opts.extra_binaries = vec!["/usr/sbin/qemu-ga".into()];
            opts.setup = Some(format!(
                "mkdir -p /var/run /run/qga && qemu-ga -d -m virtio-serial \
                 -p /dev/virtio-ports/{QGA_PORT} -t /run/qga -f /run/qga/pid -l /run/qga/log"
            ));
        }
        opts
    }))
}

/// `virsh qemu-agent-command DOM REQUEST`: the reply as libvirt passes it on.
fn agent(g: &Guest, request: &Value) -> Value {
    let dom = g.domain().expect("a libvirt guest");
    let out = g.virsh(&["qemu-agent-command", dom, &request.to_string()]);
    assert_eq!(
        out.status,
        0,
        "virsh failed: {}{}",
        out.stderr,
        g.diagnostics()
    );
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {:?}", out.stdout))
}

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
