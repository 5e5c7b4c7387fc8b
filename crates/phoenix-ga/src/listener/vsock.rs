//! `vsock-listen`: the agent listens on an AF_VSOCK port; each host connection gets its
//! own stream (served as [`stream`](super::stream) says), so any number of host tools
//! reach the agent at once, where a virtio-serial port has one host end.
//!
//! Facts about vsock in a guest that shape this code:
//! * Until the `vsock` module is loaded, `socket(AF_VSOCK)` fails with EAFNOSUPPORT;
//!   until a transport (`vmw_vsock_virtio_transport`) gives the guest its CID, binding
//!   that CID fails with EADDRNOTAVAIL. Binding the any-CID (4294967295) needs only the
//!   `vsock` module, and the port is reached once the transport loads. Modules load
//!   late at boot (udev, or `modprobe` in a unit), so the listener waits: asleep on the
//!   kernel's uevents (every module load and device bind sends one), never polling.
//! * Ports below 1024 can only be bound with CAP_NET_BIND_SERVICE, so no unprivileged
//!   guest process can take the agent's default port before it.
//! * The host's peer may vanish (the VMM's vsock backend closes) with a reply half
//!   written, or stop reading: the write fails or times out and the connection alone
//!   is dropped ([`stream`](super::stream)).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    accept4, bind, listen, recv, send, socket, AddressFamily, Backlog, MsgFlags, NetlinkAddr,
    SockFlag, SockProtocol, SockType, VsockAddr,
};

use super::{stream, Connection};
use crate::reply::Sink;

/// The any-CID: the listener takes connections to whichever CID the guest has.
pub const ANY_CID: u32 = u32::MAX;

/// The vsock receive buffer asked for each connection (the credit the host may send
/// ahead). The kernel's default, 256 KiB, stalls an upload's 4 MiB chunk on a credit
/// update every 256 KiB.
const RECV_BUFFER: u64 = 2 << 20;

/// Connections waiting to be accepted.
const BACKLOG: i32 = 64;

/// While waiting for the device, check again this often even if no uevent came (a
/// sandbox without uevents); the uevent wakes the agent at once otherwise.
const RECHECK: Duration = Duration::from_secs(60);

/// Binds `cid:port` (waiting for the vsock device first, see the module doc) and serves
/// the hosts that connect, each through the [`Connection`] that `connect` makes.
pub fn serve(
    cid: u32,
    port: u32,
    send_timeout: Duration,
    connect: impl Fn(Arc<dyn Sink>) -> Connection + Send + Sync + 'static,
) -> io::Result<()> {
    let listener = bind_when_ready(cid, port)?;
    match local_cid() {
        Some(own) => tracing::info!(cid, port, guest_cid = own, "listening on vsock"),
        None => tracing::info!(
            cid,
            port,
            "listening on vsock; no vsock transport yet (hosts reach the port once the \
             virtio-vsock driver is loaded)"
        ),
    }
    let accept = || {
        let fd = accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC)?;
        // SAFETY: accept4 just returned this descriptor, which nothing else owns.
        let client = VsockStream(unsafe { OwnedFd::from_raw_fd(fd) });
        if let Ok(peer) = nix::sys::socket::getpeername::<VsockAddr>(fd) {
            tracing::debug!(cid = peer.cid(), port = peer.port(), "vsock host connected");
        }
        Ok(client)
    };
    stream::serve(accept, send_timeout, connect)
}

/// Binds and listens, waiting without spinning while the device is not there yet.
fn bind_when_ready(cid: u32, port: u32) -> io::Result<OwnedFd> {
    let mut uevents: Option<Uevents> = None;
    loop {
        let err = match listen_on(cid, port) {
            Ok(fd) => {
                if uevents.is_some() {
                    tracing::info!(cid, port, "the vsock device is there");
                }
                return Ok(fd);
            }
            Err(e) => e,
        };
        let waiting_for = match err {
            Errno::EAFNOSUPPORT => "AF_VSOCK (the vsock module is not loaded yet)".to_string(),
            Errno::EADDRNOTAVAIL | Errno::ENODEV => match local_cid() {
                Some(own) => format!("this guest's CID to be {cid} (it is {own})"),
                None => "a vsock transport to give this guest its CID (the virtio-vsock \
                         driver is not loaded yet)"
                    .to_string(),
            },
            e => {
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!("vsock {}:{port}: {e}", cid_name(cid)),
                ))
            }
        };
        match &uevents {
            None => {
                tracing::info!(cid, port, "waiting for {waiting_for}");
                // Subscribe, then try again: a module loaded in between is not missed.
                uevents = Some(Uevents::open());
            }
            Some(u) => u.wait(),
        }
    }
}

/// One attempt: a listening vsock socket on `cid:port`.
fn listen_on(cid: u32, port: u32) -> Result<OwnedFd, Errno> {
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // Accepted connections inherit the listener's buffer size.
    set_buffer(fd.as_fd(), RECV_BUFFER);
    bind(fd.as_raw_fd(), &VsockAddr::new(cid, port))?;
    listen(&fd, Backlog::new(BACKLOG)?)?;
    Ok(fd)
}

/// `-1` reads better in messages than 4294967295.
fn cid_name(cid: u32) -> String {
    match cid {
        ANY_CID => "-1".into(),
        c => c.to_string(),
    }
}

/// Asks for a vsock buffer of `size` bytes (its maximum first, which caps it); a
/// transport that refuses keeps its default.
fn set_buffer(fd: BorrowedFd<'_>, size: u64) {
    // <linux/vm_sockets.h>: options of level AF_VSOCK, each a u64.
    const SO_VM_SOCKETS_BUFFER_SIZE: libc::c_int = 0;
    const SO_VM_SOCKETS_BUFFER_MAX_SIZE: libc::c_int = 2;
    for opt in [SO_VM_SOCKETS_BUFFER_MAX_SIZE, SO_VM_SOCKETS_BUFFER_SIZE] {
        let len = libc::socklen_t::try_from(std::mem::size_of::<u64>()).unwrap_or(8);
        // SAFETY: `fd` is an open socket; the value is a u64 that outlives the call, and
        // `len` is its size, as the kernel expects for these options.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::AF_VSOCK,
                opt,
                std::ptr::from_ref(&size).cast(),
                len,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %Errno::last(), "vsock buffer size not set");
            return;
        }
    }
}

nix::ioctl_read_bad!(
    /// `IOCTL_VM_SOCKETS_GET_LOCAL_CID` on /dev/vsock: the guest's CID, or the any-CID
    /// while no transport has given it one.
    get_local_cid,
    0x7b9,
    u32
);

/// This guest's CID, once a transport has given it one.
fn local_cid() -> Option<u32> {
    let dev = std::fs::File::open("/dev/vsock").ok()?;
    let mut cid = ANY_CID;
    // SAFETY: the descriptor is open for the call and `cid` is a u32 the kernel writes.
    unsafe { get_local_cid(dev.as_raw_fd(), &mut cid) }.ok()?;
    (cid != ANY_CID).then_some(cid)
}

/// The kernel's uevents (NETLINK_KOBJECT_UEVENT): one arrives for every module loaded
/// and every device added or bound to its driver. Without them (a sandbox that refuses
/// the socket), the wait is a plain [`RECHECK`].
struct Uevents(Option<OwnedFd>);

impl Uevents {
    fn open() -> Self {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .and_then(|fd| {
            // Group 1: the kernel's own broadcast (udev rebroadcasts on group 2).
            bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1))?;
            Ok(fd)
        });
        match fd {
            Ok(fd) => Self(Some(fd)),
            Err(e) => {
                tracing::warn!(error = %e, "no kernel uevents; checking for the vsock device every minute");
                Self(None)
            }
        }
    }

    /// Sleeps until some uevent arrives (or [`RECHECK`] passes), then drains them.
    fn wait(&self) {
        let Some(fd) = &self.0 else {
            std::thread::sleep(RECHECK);
            return;
        };
        let ms = u16::try_from(RECHECK.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        if let Err(e) = poll(&mut fds, PollTimeout::from(ms)) {
            if e != Errno::EINTR {
                tracing::warn!(error = %e, "poll on the uevent socket");
                std::thread::sleep(RECHECK);
            }
            return;
        }
        let mut buf = [0u8; 8192];
        loop {
            match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => {
                    // "ACTION@DEVPATH\0KEY=VALUE\0...": the first field says enough.
                    let head = buf[..n].split(|&b| b == 0).next().unwrap_or_default();
                    tracing::debug!(uevent = %String::from_utf8_lossy(head), "uevent");
                }
                // ENOBUFS: events were lost; whatever happened is checked anyway.
                Err(Errno::EINTR | Errno::ENOBUFS) => {}
                Err(_) => return,
            }
        }
    }
}

/// An accepted vsock connection (std has no vsock stream type). Writes never raise
/// SIGPIPE.
#[derive(Debug)]
struct VsockStream(OwnedFd);

impl AsFd for VsockStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl VsockStream {
    fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Read for &VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(recv(self.raw(), buf, MsgFlags::empty())?)
    }
}

impl Write for &VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(send(self.raw(), buf, MsgFlags::MSG_NOSIGNAL)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
