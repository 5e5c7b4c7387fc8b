//! A guest's vsock device ([`GuestOpts::vsock`](crate::GuestOpts::vsock)): rust-vmm's
//! `vhost-device-vsock` as the vhost-user backend (the host has no /dev/vhost-vsock),
//! which hands the host a hybrid vsock socket, `vm.vsock` in the guest's folder.
//!
//! The backend starts first and QEMU connects to its control socket; the guest's RAM
//! must be shared memfd memory, or everything starts and nothing ever connects, with no
//! error. The backend outlives QEMU: it is stopped by its pid (and dies with the test
//! process, as QEMU does). The guest loads no vsock module by itself: a test loads
//! `vmw_vsock_virtio_transport` (and `vsock_loopback`) in its set-up or later.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::qemu::Qemu;
use crate::{Error, Result};

/// The backend's binary, as `cargo install vhost-device-vsock` puts it.
const BINARY: &str = "vhost-device-vsock";

/// The buffer of the backend's TX queue (its default is 64 KiB).
const TX_BUFFER: u32 = 1 << 20;

/// The hybrid vsock socket of a guest whose folder is `dir`.
pub(crate) fn host_socket(dir: &Path) -> PathBuf {
    dir.join("vm.vsock")
}

fn control_socket(dir: &Path) -> PathBuf {
    dir.join("vhost-vsock.sock")
}

/// Starts the backend for a guest of CID `cid` and waits for its control socket.
pub(crate) fn start_backend(dir: &Path, cid: u32) -> Result<Qemu> {
    let bin = binary()?;
    let control = control_socket(dir);
    let mut cmd = Command::new(&bin);
    cmd.arg("--guest-cid")
        .arg(cid.to_string())
        .arg("--socket")
        .arg(&control)
        .arg("--uds-path")
        .arg(host_socket(dir))
        .arg("--tx-buffer-size")
        .arg(TX_BUFFER.to_string());
    let log_path = dir.join("vhost-vsock.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(format!("create {}", log_path.display()), e))?;
    let backend =
        Qemu::spawn(cmd, log).map_err(|e| Error::io(format!("start {}", bin.display()), e))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !control.exists() {
        if !backend.alive() || Instant::now() >= deadline {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(Error::msg(format!(
                "{} did not create {}: {log}",
                bin.display(),
                control.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(backend)
}

/// QEMU's arguments for the device: shared memory for the backend, and the device.
pub(crate) fn qemu_args(dir: &Path, memory_mib: u32) -> Vec<String> {
    [
        "-object",
        &format!("memory-backend-memfd,id=mem0,size={memory_mib}M,share=on"),
        "-machine",
        "memory-backend=mem0",
        "-chardev",
        &format!("socket,id=vv0,path={}", control_socket(dir).display()),
        "-device",
        "vhost-user-vsock-pci,chardev=vv0",
    ]
    .map(String::from)
    .to_vec()
}

/// `vhost-device-vsock` on PATH, or in ~/.cargo/bin (where `scripts/test` installs it).
fn binary() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    std::env::split_paths(&path)
        .chain(cargo_bin)
        .map(|d| d.join(BINARY))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::msg(format!(
                "{BINARY} not found in PATH or ~/.cargo/bin (scripts/test --deps-only installs it)"
            ))
        })
}
