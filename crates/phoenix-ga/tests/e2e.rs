//! End-to-end: the agent in a real QEMU guest, on a real virtio-serial port, driven
//! through the client library. One guest is booted for this file and shared by its
//! tests (see crates/phoenix-e2e and docs/e2e.md). `PHOENIX_E2E=skip` skips them.

use std::sync::MutexGuard;

use phoenix_e2e::{Guest, GuestOpts};

/// The guest shared by this file's tests, or `None` when e2e tests are skipped.
fn guest() -> Option<MutexGuard<'static, Guest>> {
    if phoenix_e2e::skip() {
        return None;
    }
    Some(phoenix_e2e::shared(|| GuestOpts::new(env!("CARGO_BIN_EXE_phoenix-ga"))))
}

#[test]
fn ping_and_get_commands() {
    let Some(g) = guest() else { return };
    eprintln!("boot took {:?}", g.boot_time());
    let c = g.client();
    assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"));
    let cmds = c.commands().unwrap();
    assert!(cmds.iter().any(|c| c == "agent-shutdown"), "{cmds:?}");
    let (out, st) = g.sh("uname -r; mount | grep scratch; ip -o addr show eth0");
    eprintln!("{out}");
    assert_eq!(st, 0);
}
