//! End-to-end: the agent in a real QEMU guest, on a real virtio-serial port, driven
//! through the client library. One guest is booted for this test binary and shared by
//! its tests, one test at a time (see crates/phoenix-e2e and docs/e2e.md); a test that
//! needs other agent arguments boots its own. `PHOENIX_E2E=skip` skips them; otherwise
//! a missing QEMU or kernel fails them.
//!
//! One module per command family. A test leaves the guest as it found it: no client
//! connected, the agent running, nothing frozen, eth0 as configured at boot.

mod core;
mod files;
mod freeze;
mod network;
mod sysinfo;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::MutexGuard;
use std::time::Duration;

use phoenix_client::{AgentError, Client, ClientError};
use phoenix_e2e::{Guest, GuestOpts};
use serde_json::Value;

/// Command families whose commands this build has: their e2e tests run (and must pass).
/// A family is added here when its branch is merged; until then its tests return early,
/// saying so on stderr.
const MERGED: &[&str] = &["network", "sysinfo", "freeze"];

/// The guest shared by this binary's tests, or `None` when e2e tests are skipped.
fn guest() -> Option<MutexGuard<'static, Guest>> {
    if phoenix_e2e::skip() {
        return None;
    }
    Some(phoenix_e2e::shared(|| {
        GuestOpts::new(env!("CARGO_BIN_EXE_phoenix-ga"))
    }))
}

/// Like [`guest`], for the tests of a command family listed in [`MERGED`].
fn family_guest(family: &str) -> Option<MutexGuard<'static, Guest>> {
    if !merged(family) {
        return None;
    }
    guest()
}

/// Whether `family`'s tests run (see [`MERGED`]); says so when they do not.
fn merged(family: &str) -> bool {
    let merged = MERGED.contains(&family);
    if !merged {
        eprintln!("the {family} family is not in MERGED (tests/e2e/main.rs): test skipped");
    }
    merged
}

/// Calls `name` and returns its return value; panics with the decoded agent error.
fn call(c: &Client, name: &str, args: Value) -> Value {
    c.call(name, &args)
        .unwrap_or_else(|e| panic!("{name} {args}: {e}"))
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

/// A raw connection to the host socket, for byte-level checks.
struct Raw {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Raw {
    fn connect(g: &Guest) -> Raw {
        let stream = UnixStream::connect(g.host_socket()).expect("connect the host socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Raw { stream, reader }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next reply line, with its length in bytes.
    fn recv(&mut self) -> (Value, usize) {
        let mut line = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut line)
            .expect("read a reply");
        assert!(
            n > 0 && line.ends_with(b"\n"),
            "connection closed: {line:?}"
        );
        let v = serde_json::from_slice(&line).unwrap_or_else(|e| panic!("bad reply: {e}"));
        (v, n)
    }
}
