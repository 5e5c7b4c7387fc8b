//! Interface names by index for the route listings (`get-route-list`,
//! `guest-network-get-route`), kept between calls and brought up to
//! date from the kernel's link notifications.
//!
//! Naming the output interfaces of the routes takes the whole link table, and with
//! thousands of links one link dump costs the kernel as much as 10,000 routes (every
//! link answers with its IPv4 and IPv6 configuration). The names rarely change, so the
//! first listing dumps the links once and keeps index -> name, and a netlink socket
//! subscribed to RTNLGRP_LINK collects what changes after (RTM_NEWLINK for a new or
//! renamed link, RTM_DELLINK for a deleted one). Nothing reads that socket between
//! listings: the kernel queues the notifications in its receive buffer, so an idle
//! agent spends no CPU on it. Each listing drains the queue without blocking and
//! applies it, which takes microseconds when nothing changed.
//!
//! When the queue overflowed (recv gives ENOBUFS: notifications were dropped) or
//! anything about it is doubtful, the cache is rebuilt: a new subscription first, then a
//! dump, then whatever the subscription caught meanwhile, so no change falls between
//! the dump and the subscription. Replaying a notification the dump already reflects is
//! harmless: each one carries the link's whole current state (NEWLINK its name, DELLINK
//! its absence), so the last one for an index wins.
//!
//! The socket is opened on the first listing, in the agent's network namespace, like
//! every other netlink socket of the agent.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use netlink_packet_core::{DecodeError, NetlinkBuffer};
use netlink_packet_route::link::LinkHeader;
use netlink_packet_route::AddressFamily;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};

use super::links;
use super::netlink::{Netlink, NlError};

/// Interface index -> name.
pub(crate) type Names = HashMap<u32, String>;

/// Bytes read per notification. The kernel sends each link notification as a datagram
/// of its own, a few KiB at most; a longer one is detected (MSG_TRUNC) and treated as
/// a lost notification.
const RECV_BUF: usize = 64 * 1024;

/// Rebuilds tried in one call when the links change so fast that the subscription
/// overflows again while the links are dumped; after that the call answers from its
/// last dump and keeps no cache.
const REBUILDS: usize = 3;

/// Index -> name of every link, up to date at each [`NameCache::current`]. The network
/// family keeps one, shared by all the route listings.
pub(crate) struct NameCache {
    state: Mutex<Option<Cache>>,
}

/// A subscription and the names as of the last notification read from it.
struct Cache {
    watch: Socket,
    /// Shared with the listings in progress; changed copy-on-write.
    names: Arc<Names>,
}

/// Notifications were lost or could not be read: the cache must be rebuilt.
#[derive(Debug)]
struct Lost(String);

impl std::fmt::Debug for NameCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameCache").finish_non_exhaustive()
    }
}

impl Default for NameCache {
    fn default() -> Self {
        Self {
            state: Mutex::new(None),
        }
    }
}

impl NameCache {
    /// Whether a cache exists, so that [`NameCache::current`] most likely answers
    /// without a link dump (unless notifications were lost since).
    pub fn is_built(&self) -> bool {
        self.lock().is_some()
    }

    /// The names as they are now: the cache with the pending notifications applied, or
    /// a new cache from a link dump when there is none or notifications were lost.
    pub fn current(&self) -> Result<Arc<Names>, NlError> {
        let mut state = self.lock();
        if let Some(cache) = state.as_mut() {
            match cache.catch_up() {
                Ok(()) => return Ok(Arc::clone(&cache.names)),
                Err(Lost(why)) => {
                    tracing::debug!("link names: {why}; listing the links again");
                    *state = None;
                }
            }
        }
        let mut last = None;
        for _ in 0..REBUILDS {
            // Subscribe before dumping: a change during the dump is then in the queue.
            let mut cache = Cache {
                watch: subscribe()?,
                names: Arc::new(links::names(&mut Netlink::open()?)?),
            };
            match cache.catch_up() {
                Ok(()) => {
                    let names = Arc::clone(&cache.names);
                    *state = Some(cache);
                    return Ok(names);
                }
                Err(Lost(why)) => {
                    tracing::debug!("link names: {why} during the link dump");
                    last = Some(cache.names);
                }
            }
        }
        // The links change faster than they can be listed: this dump is as good as any.
        Ok(last.unwrap_or_default())
    }

    /// The state; after a panic in another call (the names may be half updated), none.
    fn lock(&self) -> MutexGuard<'_, Option<Cache>> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                *guard = None;
                self.state.clear_poison();
                guard
            }
        }
    }
}

impl Cache {
    /// Applies every queued notification, without blocking.
    fn catch_up(&mut self) -> Result<(), Lost> {
        // Peek first: the usual empty queue then costs one recv and no buffer.
        let peek = libc::MSG_DONTWAIT | libc::MSG_PEEK | libc::MSG_TRUNC;
        match recv(&self.watch, &mut [], peek) {
            Ok(_) => {}
            Err(e) => return done_or_lost(e),
        }
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            match recv(&self.watch, &mut buf, libc::MSG_DONTWAIT | libc::MSG_TRUNC) {
                Ok(n) if n > buf.len() => {
                    return Err(Lost(format!("a notification of {n} bytes was truncated")))
                }
                Ok(n) => apply(Arc::make_mut(&mut self.names), &buf[..n])
                    .map_err(|e| Lost(format!("undecodable notification ({e})")))?,
                Err(e) => return done_or_lost(e),
            }
        }
    }
}

/// One datagram into `buf`; its whole length (MSG_TRUNC), which may exceed the buffer.
fn recv(socket: &Socket, mut buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    loop {
        match socket.recv(&mut buf, flags) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// The end of a drain: an empty queue is the normal end; anything else means
/// notifications may be missing (ENOBUFS: the queue overflowed).
fn done_or_lost(e: io::Error) -> Result<(), Lost> {
    match e.kind() {
        io::ErrorKind::WouldBlock => Ok(()),
        _ if e.raw_os_error() == Some(libc::ENOBUFS) => {
            Err(Lost("link notifications overflowed the socket".into()))
        }
        _ => Err(Lost(format!("reading link notifications: {e}"))),
    }
}

/// A NETLINK_ROUTE socket that receives the link notifications (RTNLGRP_LINK) and sends
/// nothing.
fn subscribe() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.add_membership(libc::RTNLGRP_LINK)?;
    Ok(socket)
}

/// Applies the notifications of one datagram to `names`. Only AF_UNSPEC link messages
/// are about the link itself: the bridge sends RTM_NEWLINK and RTM_DELLINK of family
/// AF_BRIDGE to the same group when a port joins or leaves it, and such a DELLINK does
/// not mean the interface is gone.
pub(crate) fn apply(names: &mut Names, datagram: &[u8]) -> Result<(), DecodeError> {
    let mut offset = 0;
    while offset < datagram.len() {
        let message = NetlinkBuffer::new_checked(&datagram[offset..])?;
        let len = message.length() as usize;
        let kind = message.message_type();
        if kind == libc::RTM_NEWLINK || kind == libc::RTM_DELLINK {
            let payload = message.payload();
            let header = LinkHeader::parse(payload)?;
            if header.interface_family == AddressFamily::Unspec {
                if kind == libc::RTM_DELLINK {
                    names.remove(&header.index);
                } else {
                    let link = links::parse_link(kind, payload)?;
                    if link.name.is_empty() {
                        return Err(DecodeError::from("RTM_NEWLINK without IFLA_IFNAME"));
                    }
                    names.insert(header.index, link.name);
                }
            }
        }
        // new_checked guarantees len >= the header's 16 bytes, so this advances.
        offset = offset.saturating_add((len + 3) & !3);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLMSG_DONE};
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};
    use netlink_packet_route::RouteNetlinkMessage;

    fn link(family: AddressFamily, index: u32, name: Option<&str>) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = family;
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Mtu(1500));
        if let Some(n) = name {
            msg.attributes.push(LinkAttribute::IfName(n.into()));
        }
        msg
    }

    /// The messages one after the other in one datagram, as the kernel may batch them.
    fn datagram(msgs: Vec<RouteNetlinkMessage>) -> Vec<u8> {
        let mut out = Vec::new();
        for msg in msgs {
            let mut packet =
                NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
            packet.finalize();
            let mut bytes = vec![0; packet.buffer_len()];
            packet.serialize(&mut bytes);
            bytes.resize((bytes.len() + 3) & !3, 0);
            out.extend_from_slice(&bytes);
        }
        out
    }

    fn names(pairs: &[(u32, &str)]) -> Names {
        pairs.iter().map(|&(i, n)| (i, n.to_string())).collect()
    }

    #[test]
    fn new_renamed_and_deleted_links() {
        let mut n = names(&[(1, "lo"), (2, "v0"), (3, "v1")]);
        let d = datagram(vec![
            RouteNetlinkMessage::NewLink(link(AddressFamily::Unspec, 4, Some("v2"))),
            RouteNetlinkMessage::NewLink(link(AddressFamily::Unspec, 2, Some("w0"))),
            RouteNetlinkMessage::DelLink(link(AddressFamily::Unspec, 3, Some("v1"))),
        ]);
        apply(&mut n, &d).unwrap();
        assert_eq!(n, names(&[(1, "lo"), (2, "w0"), (4, "v2")]));
        // An index deleted and reused: the last message wins.
        let d = datagram(vec![
            RouteNetlinkMessage::DelLink(link(AddressFamily::Unspec, 4, Some("v2"))),
            RouteNetlinkMessage::NewLink(link(AddressFamily::Unspec, 4, Some("n0"))),
        ]);
        apply(&mut n, &d).unwrap();
        assert_eq!(n[&4], "n0");
        // Deleting an index never seen is no error (the dump may have missed it).
        apply(
            &mut n,
            &datagram(vec![RouteNetlinkMessage::DelLink(link(
                AddressFamily::Unspec,
                9,
                None,
            ))]),
        )
        .unwrap();
        assert_eq!(n.len(), 3);
    }

    #[test]
    fn bridge_port_messages_change_nothing() {
        let mut n = names(&[(1, "lo"), (2, "v0")]);
        let d = datagram(vec![
            RouteNetlinkMessage::NewLink(link(AddressFamily::Bridge, 2, Some("v0"))),
            RouteNetlinkMessage::DelLink(link(AddressFamily::Bridge, 2, Some("v0"))),
        ]);
        apply(&mut n, &d).unwrap();
        assert_eq!(n, names(&[(1, "lo"), (2, "v0")]));
    }

    #[test]
    fn other_messages_are_skipped() {
        let mut n = names(&[(1, "lo")]);
        let mut done = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::<RouteNetlinkMessage>::Done(Default::default()),
        );
        done.finalize();
        let mut d = vec![0; done.buffer_len()];
        done.serialize(&mut d);
        assert_eq!(u16::from_ne_bytes([d[4], d[5]]), NLMSG_DONE);
        d.extend(datagram(vec![RouteNetlinkMessage::NewLink(link(
            AddressFamily::Unspec,
            2,
            Some("v0"),
        ))]));
        apply(&mut n, &d).unwrap();
        assert_eq!(n, names(&[(1, "lo"), (2, "v0")]));
    }

    #[test]
    fn damaged_notifications_are_errors() {
        let good = datagram(vec![RouteNetlinkMessage::NewLink(link(
            AddressFamily::Unspec,
            2,
            Some("v0"),
        ))]);
        let mut n = Names::new();
        // Cut anywhere: the header's length no longer fits, or the link is cut short.
        for cut in [4, 15, 16, 20, good.len() - 4] {
            assert!(apply(&mut n, &good[..cut]).is_err(), "cut at {cut}");
        }
        // A NEWLINK without a name cannot be applied.
        let nameless = datagram(vec![RouteNetlinkMessage::NewLink(link(
            AddressFamily::Unspec,
            2,
            None,
        ))]);
        assert!(apply(&mut n, &nameless).is_err());
        // A length below the header's size.
        let mut bad = good.clone();
        bad[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(apply(&mut n, &bad).is_err());
        assert!(n.is_empty());
        apply(&mut n, &[]).unwrap();
    }

    #[test]
    fn no_cut_or_changed_byte_panics() {
        let d = datagram(vec![
            RouteNetlinkMessage::NewLink(link(AddressFamily::Unspec, 2, Some("v0"))),
            RouteNetlinkMessage::DelLink(link(AddressFamily::Unspec, 3, Some("v1"))),
        ]);
        for cut in 0..=d.len() {
            let _ = apply(&mut Names::new(), &d[..cut]);
        }
        for at in 0..d.len() {
            for value in [0x00, 0x01, 0x03, 0x7f, 0xff] {
                let mut bad = d.clone();
                bad[at] = value;
                let _ = apply(&mut Names::new(), &bad);
            }
        }
    }
}
