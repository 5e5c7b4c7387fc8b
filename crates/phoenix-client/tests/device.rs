//! A character-device connection: the agent serves one pty (as on a serial line), the
//! client opens another, and the test relays bytes between the two masters, as QEMU
//! relays a serial port between guest and host.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use nix::pty::PtyMaster;
use phoenix_client::{Client, Options};
use phoenix_testkit::{agent_binary, raw_pty};

/// Copies what `from` reads to `to` until `from` fails (its slave side closed).
fn relay(from: Arc<PtyMaster>, to: Arc<PtyMaster>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = (&*from).read(&mut buf) {
            if n == 0 || (&*to).write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
}

#[test]
fn a_client_on_a_pty_reaches_an_agent_on_a_serial_line() {
    let (guest_master, _guest_slave, guest_path) = raw_pty();
    let (host_master, _host_slave, host_path) = raw_pty();
    let (guest_master, host_master) = (Arc::new(guest_master), Arc::new(host_master));
    relay(Arc::clone(&guest_master), Arc::clone(&host_master));
    relay(host_master, guest_master);
    let mut agent = Command::new(agent_binary())
        .args(["-m", "isa-serial", "-p", &guest_path])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();

    // The client puts its pty in raw mode and resyncs: whatever the agent's start-up
    // left on the line, the first reply it takes is its own.
    let client = Client::connect_with(&host_path, Options::default()).expect("connect");
    assert_eq!(client.ping().unwrap(), "0.9.0");
    let names = client.commands().unwrap();
    assert!(names.contains(&"get-commands".to_string()));
    // A large reply crosses the line intact (no echo, no CR/LF translation).
    let name = "y".repeat(200_000);
    let e = client.call_raw(&name, None, None).unwrap_err();
    assert!(e.to_string().contains(&name[..1000]));
    agent.kill().unwrap();
    agent.wait().unwrap();
}
