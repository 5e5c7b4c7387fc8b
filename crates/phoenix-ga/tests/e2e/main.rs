//! End-to-end: the agent in a real QEMU guest, on a real virtio-serial port, driven
//! through the client library. One guest is booted for this test binary and shared by
//! its tests, one test at a time (see crates/phoenix-e2e and docs/e2e.md); a test that
//! needs other agent arguments boots its own. `PHOENIX_E2E=skip` skips them; otherwise
//! a missing QEMU or kernel fails them.
//!
//! One module per command family. A test leaves the guest as it found it: no client
//! connected, the agent running, nothing frozen, eth0 as configured at boot.

mod accounts;
mod control;
mod core;
mod exec;
mod files;
mod freeze;
mod libvirt;
mod libvirt_accounts;
mod libvirt_control;
mod libvirt_exec;
mod network;
mod qga;
mod sysinfo;
mod vsock;

use std::sync::MutexGuard;
use std::time::Duration;

use phoenix_client::{AgentError, Client, ClientError, Report};
use phoenix_e2e::{Guest, GuestOpts};
use phoenix_testkit::RawConn;
use serde_json::Value;

/// The guest shared by this binary's tests, or `None` when e2e tests are skipped.
fn guest() -> Option<MutexGuard<'static, Guest>> {
    if phoenix_e2e::skip() {
        return None;
    }
    Some(phoenix_e2e::shared(|| {
        let mut opts = GuestOpts::new(env!("CARGO_BIN_EXE_phoenix-ga"));
        // Both agent ports, as a guest that libvirt or Proxmox runs also has.
        opts.extra_ports.push(qga::QGA_PORT.into());
        opts
    }))
}

/// Calls `name` and returns its return value; panics with the decoded agent error.
fn call(c: &Client, name: &str, args: Value) -> Value {
    c.call(name, &args)
        .unwrap_or_else(|e| panic!("{name} {args}: {}", Report(&e)))
}

/// Calls `name`, expecting an error reply.
fn call_err(c: &Client, name: &str, args: Value) -> AgentError {
    match c.call::<_, Value>(name, &args) {
        Err(ClientError::Agent(e)) => e,
        other => panic!("{name} {args}: expected an error reply, got {other:?}"),
    }
}

/// Thaws the scratch disk when dropped, so a failing freeze test cannot leave the shared
/// guest's disk frozen (every later test writing there would hang).
struct Thaw<'a>(&'a Guest);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        let script = format!(
            "fsfreeze --unfreeze {} 2>/dev/null; true",
            phoenix_e2e::SCRATCH
        );
        let _ = self.0.try_run(&script, Duration::from_secs(30));
    }
}

/// A raw connection to the host socket, for byte-level checks. Replies cross an
/// emulated port, so they may take longer than the local socket's 20 s.
fn raw(g: &Guest) -> RawConn {
    let conn = RawConn::connect(&g.host_socket());
    conn.set_timeout(Duration::from_secs(60));
    conn
}
