//! The qemu-ga dialect through a real port: the shared guest has both agent ports, and
//! the agent, started without `-p`, serves both at once, each in its dialect, on one
//! state.

use std::io::Read;
use std::time::Duration;

use phoenix_client::{Client, Dialect, Options};
use phoenix_testkit::RawConn;
use serde_json::{json, Value};

use crate::guest;

/// qemu-ga's port, wired into the shared guest beside the Phoenix one.
pub const QGA_PORT: &str = "org.qemu.guest_agent.0";

fn qga_raw(g: &phoenix_e2e::Guest) -> RawConn {
    let conn = RawConn::connect(&g.port_socket(QGA_PORT));
    conn.set_timeout(Duration::from_secs(60));
    conn
}

#[test]
fn both_ports_at_once_each_in_its_dialect() {
    let Some(g) = guest() else { return };
    // One agent holds both ports.
    let pid = g.agent_pid();
    let fds = g.sh_ok(&format!("ls -l /proc/{pid}/fd"));
    for port in ["org.guest-agent.0", QGA_PORT] {
        let dev = g.sh_ok(&format!("readlink -f /dev/virtio-ports/{port}"));
        assert!(
            fds.contains(dev.trim()),
            "agent does not hold {port}: {fds}"
        );
    }
    let phoenix = g.client();
    let detect = Options {
        dialect: None,
        timeout: Some(Duration::from_secs(60)),
        ..Options::default()
    };
    let qga = Client::connect_with(g.port_socket(QGA_PORT), detect).unwrap();
    assert_eq!(qga.dialect(), Dialect::Qga);
    // Calls on both at the same time, from two threads.
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            for _ in 0..50 {
                assert_eq!(phoenix.ping().unwrap(), env!("CARGO_PKG_VERSION"));
            }
        });
        for i in 0..50 {
            let n: i64 = qga.call("guest-sync", &json!({"id": i})).unwrap();
            assert_eq!(n, i);
        }
        a.join().unwrap();
    });
    let info = qga.info().unwrap();
    assert!(info.supports("guest-sync-delimited"), "{info:?}");
    assert!(
        !info.supports("ping"),
        "the qemu-ga port lists Phoenix commands"
    );
}

#[test]
fn proxmox_and_libvirt_framing_through_the_port() {
    let Some(g) = guest() else { return };
    let mut c = qga_raw(&g);
    // libvirt: guest-sync with a timestamp id, then the command.
    let id = 1_796_527_731_081_i64;
    c.send(format!("{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{id}}}}}\n").as_bytes());
    assert_eq!(c.recv(), json!({"return": id}));
    // Proxmox: 0xFF-delimited sync and the command in one write; 0xFF, then exactly
    // two lines.
    c.send(b"{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":7001}}\n{\"execute\":\"guest-ping\",\"arguments\":{}}\n");
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while bytes.iter().filter(|&&b| b == b'\n').count() < 2 {
        c.stream.read_exact(&mut byte).unwrap();
        bytes.push(byte[0]);
    }
    assert_eq!(bytes, b"\xff{\"return\":7001}\n{\"return\":{}}\n");
    // An unknown command and a bad argument, classed as qemu-ga classes them.
    let r = c.request(json!({"execute": "guest-nope"}));
    assert_eq!(r["error"]["class"], json!("CommandNotFound"));
    let r = c.request(json!({"execute": "guest-sync", "arguments": {"id": "x"}}));
    assert_eq!(
        r["error"]["desc"],
        json!("Invalid parameter type for 'id', expected: integer")
    );
    let r: Value = c.request(json!({"execute": "guest-ping", "id": "end"}));
    assert_eq!(r, json!({"return": {}, "id": "end"}));
}
