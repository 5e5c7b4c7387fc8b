//! A synchronous rtnetlink socket: one request and its acknowledgement, or one dump.
//!
//! Every command opens its own socket (a few microseconds), so concurrent commands
//! never share sequence numbers or half-read dumps. The netlink crates' types stay
//! inside the `net` module; callers above it see [`NlError`] turned into the agent's
//! [`Error`] through [`Context`].

use std::io;

use netlink_packet_core::{
    DecodeError, DoneBuffer, ErrorBuffer, ErrorMessage, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NlasIterator, Parseable, ParseableParametrized, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Context, Error};

/// Bytes read per `recv`. The kernel sizes dump datagrams from the reader's buffer but
/// never past 32 KiB; 64 KiB leaves room, and a longer datagram is detected
/// (MSG_TRUNC) rather than misparsed.
const RECV_BUF: usize = 64 * 1024;

/// How often a dump the kernel flags as interrupted (NLM_F_DUMP_INTR: the table changed
/// while it was read) is restarted before the last result is used as it is, as
/// iproute2 does.
const DUMP_RETRIES: usize = 3;

/// `NLMSGERR_ATTR_MSG`: the extended-ack attribute holding the kernel's reason.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Size of `struct nlmsghdr`, which an error ack echoes before its attributes.
const NLMSG_HDRLEN: usize = 16;

/// A failed netlink exchange.
#[derive(Debug)]
pub struct NlError {
    /// The errno: the kernel's answer, or that of a failed socket call; no errno for an
    /// undecodable reply.
    io: io::Error,
    /// The kernel's extended-ack text ("Nexthop has invalid gateway"), when it gave one.
    detail: Option<String>,
}

impl NlError {
    fn kernel(errno: i32, detail: Option<String>) -> Self {
        Self {
            io: io::Error::from_raw_os_error(errno),
            detail,
        }
    }

    fn protocol(msg: String) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, msg).into()
    }
}

impl From<io::Error> for NlError {
    fn from(io: io::Error) -> Self {
        Self { io, detail: None }
    }
}

impl<T> Context<T> for Result<T, NlError> {
    fn context<C: Into<String>>(self, f: impl FnOnce() -> C) -> Result<T, Error> {
        self.map_err(|e| {
            let context = match e.detail {
                Some(d) => format!("{} ({d})", f().into()),
                None => f().into(),
            };
            Error::os(context, e.io)
        })
    }
}

/// An rtnetlink socket connected to the kernel.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens and binds a NETLINK_ROUTE socket (close-on-exec).
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // All best effort (old kernels lack them): the kernel's reason in error acks;
        // error acks that do not echo our whole request; and strict checking of dump
        // requests, which makes the kernel honour their filters (a route dump of the
        // main table only). Callers filter the answers themselves as well.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_netlink_get_strict_chk(true);
        Ok(Self {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Sends a request that changes something and waits for the kernel's ack.
    pub fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NlError> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | flags, |_, _| Ok(()))
            .map(drop)
    }

    /// Sends a get request (one object, e.g. a link by name) and returns its answer as
    /// `parse` decodes it from the raw payload.
    pub fn get<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        mut parse: impl FnMut(u16, &[u8]) -> Result<T, DecodeError>,
    ) -> Result<T, NlError> {
        let mut answer = None;
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK, |kind, payload| {
            if answer.is_none() {
                let v = parse(kind, payload)
                    .map_err(|e| NlError::protocol(format!("bad netlink reply: {e}")))?;
                answer = Some(v);
            }
            Ok(())
        })?;
        answer.ok_or_else(|| NlError::protocol("the kernel acknowledged without an answer".into()))
    }

    /// Dumps a table (addresses) in one request, each object fully decoded.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.dump_with(msg, decode)
    }

    /// Dumps a table in one request, handing each object's raw payload (after the
    /// netlink header) and message type to `parse`, for tables whose objects are large
    /// and mostly unused (a link carries dozens of attributes). An object `parse`
    /// cannot decode is skipped with a warning: one object this crate version does
    /// not understand (a newer kernel's attribute) must not fail the whole listing. A
    /// dump the kernel reports as interrupted is restarted (a few times) so that the
    /// result is consistent.
    pub fn dump_with<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        mut parse: impl FnMut(u16, &[u8]) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, NlError> {
        let mut tries = 0;
        loop {
            let mut out = Vec::new();
            let flags = NLM_F_REQUEST | NLM_F_DUMP;
            let interrupted = self.exchange(msg.clone(), flags, |kind, payload| {
                match parse(kind, payload) {
                    Ok(v) => out.push(v),
                    Err(e) => tracing::warn!("skipping undecodable netlink object: {e}"),
                }
                Ok(())
            })?;
            tries += 1;
            if !interrupted || tries > DUMP_RETRIES {
                return Ok(out);
            }
        }
    }

    /// Sends `msg` and hands every answer (message type, payload) to `each` until the
    /// kernel's ack, error or end of dump. Returns whether the kernel flagged the dump
    /// as interrupted.
    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        mut each: impl FnMut(u16, &[u8]) -> Result<(), NlError>,
    ) -> Result<bool, NlError> {
        let seq = self.send(msg, flags)?;
        let mut interrupted = false;
        loop {
            let size = self.recv()?;
            let mut offset = 0;
            while offset < size {
                let datagram = &self.buf[offset..size];
                let message = NetlinkBuffer::new_checked(datagram)
                    .map_err(|e| NlError::protocol(format!("bad netlink header: {e}")))?;
                let len = message.length() as usize;
                offset += (len + 3) & !3;
                if message.sequence_number() != seq {
                    continue; // a late answer to an earlier request on this socket
                }
                interrupted |= message.flags() & NLM_F_DUMP_INTR != 0;
                let kind = message.message_type();
                match kind {
                    NLMSG_NOOP => {}
                    // A dump that failed part-way ends with its errno in the DONE.
                    NLMSG_DONE => {
                        let code =
                            DoneBuffer::new_checked(message.payload()).map_or(0, |d| d.code());
                        return match code {
                            0.. => Ok(interrupted),
                            _ => Err(NlError::kernel(-code, None)),
                        };
                    }
                    NLMSG_ERROR => {
                        let payload = message.payload();
                        let e = ErrorBuffer::new_checked(&payload)
                            .and_then(|b| ErrorMessage::parse(&b))
                            .map_err(|e| NlError::protocol(format!("bad netlink error: {e}")))?;
                        return match e.code {
                            None => Ok(interrupted),
                            Some(code) => {
                                let detail = ext_ack_message(message.flags(), &e.header);
                                Err(NlError::kernel(-code.get(), detail))
                            }
                        };
                    }
                    NLMSG_OVERRUN => return Err(NlError::protocol("netlink overrun".into())),
                    _ => each(kind, message.payload())?,
                }
            }
        }
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<u32, NlError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Reads one datagram into the buffer; its length.
    fn recv(&mut self) -> Result<usize, NlError> {
        loop {
            match self.socket.recv(&mut &mut self.buf[..], libc::MSG_TRUNC) {
                Ok(n) if n > self.buf.len() => {
                    return Err(NlError::protocol(format!(
                        "netlink datagram of {n} bytes exceeds the {RECV_BUF}-byte buffer"
                    )))
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Decodes a whole rtnetlink object.
pub(crate) fn decode(kind: u16, payload: &[u8]) -> Result<RouteNetlinkMessage, DecodeError> {
    RouteNetlinkMessage::parse_with_param(payload, kind)
}

/// The kernel's extended-ack message in an error ack: after the echoed request (only
/// its header when the ack is capped), attributes of which NLMSGERR_ATTR_MSG is the
/// reason as a NUL-terminated string.
pub(crate) fn ext_ack_message(flags: u16, echoed: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || echoed.len() < NLMSG_HDRLEN {
        return None;
    }
    let start = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = u32::from_ne_bytes(echoed[..4].try_into().ok()?) as usize;
        (len + 3) & !3
    };
    let attrs = echoed.get(start..)?;
    NlasIterator::new(attrs)
        .filter_map(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            let v = nla.value();
            let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end]).into_owned()
        })
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_extended_ack_reason() {
        let mut echoed = vec![0u8; NLMSG_HDRLEN];
        let text = b"Nexthop has invalid gateway\0";
        let nla_len = u16::try_from(4 + text.len()).unwrap();
        echoed.extend_from_slice(&nla_len.to_ne_bytes());
        echoed.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        echoed.extend_from_slice(text);
        while echoed.len() % 4 != 0 {
            echoed.push(0);
        }
        let flags = NLM_F_ACK_TLVS | NLM_F_CAPPED;
        assert_eq!(
            ext_ack_message(flags, &echoed).as_deref(),
            Some("Nexthop has invalid gateway")
        );
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &echoed), None);
    }

    #[test]
    fn context_keeps_the_errno_and_adds_the_reason() {
        let r: Result<(), NlError> = Err(NlError::kernel(17, Some("why".into())));
        let e = r.context(|| "add address 10.0.0.1/24 to eth0").unwrap_err();
        assert_eq!(e.code(), 17);
        assert_eq!(
            e.message(),
            "add address 10.0.0.1/24 to eth0 (why): File exists"
        );
    }
}
