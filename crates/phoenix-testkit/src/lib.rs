//! Test support shared by the integration tests of phoenix-ga, phoenix-client and
//! phoenix-ctl, so that each helper exists once:
//!
//! - the real agent on a `unix-listen` socket in a temporary directory, killed on drop
//!   ([`TestAgent`], started through [`Launch`], the binary found by [`agent_binary`]);
//! - a raw byte stream to it for checks on the wire ([`RawConn`], [`call`], [`ret`],
//!   [`err`]);
//! - test data and checksums ([`random_bytes`], [`md5_of`], [`md5sum`], [`b64`]);
//! - commands that must succeed, processes and their CPU time ([`must`], [`cpu_ticks`],
//!   [`wait_exit`]);
//! - the qemu-ga dialect: calls ([`qga_call`], [`qga_ok`], [`qga_fails`]), Debian's
//!   qemu-ga beside our agent ([`QemuGa`]) and reply shapes for comparing them
//!   ([`shape`]);
//! - a private /etc in a mount namespace for the accounts tests ([`PrivateEtc`]);
//! - a tmpfs that unmounts itself ([`Tmpfs`]), a pty in raw mode ([`raw_pty`]), and the
//!   addresses of an `ip -j addr` entry ([`cidrs`]).
//!
//! Helpers of one topic only (loop-mounted ext4 for the freeze tests, signal storms for
//! the fault tests) stay beside that topic's tests. A dev-dependency only: nothing here
//! is built into the agent or the tools.

#![deny(missing_docs)]

mod accounts;
mod agent;
mod conn;
mod data;
mod mount;
mod net;
mod process;
mod pty;
mod qga;

pub use accounts::{PrivateEtc, MARKER, SHADOW_GID};
pub use agent::{agent_binary, wait_listening, Launch, TestAgent};
pub use conn::{call, err, fails, ok, request_line, ret, RawConn};
pub use data::{b64, md5_of, md5sum, md5sum_bytes, random_bytes, unb64, MIB};
pub use mount::Tmpfs;
pub use net::cidrs;
pub use process::{cpu_ticks, must, must_json, path_str, proc_state, quiet, wait_exit};
pub use pty::raw_pty;
pub use qga::{qga_call, qga_err, qga_fails, qga_ok, shape, QemuGa, QEMU_GA};
