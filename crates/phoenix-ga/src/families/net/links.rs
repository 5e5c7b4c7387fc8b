//! Links: the interface list of `get-netifaces`, name lookups, and up/down.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use netlink_packet_core::{DecodeError, Emitable, NlasIterator, ParseableParametrized};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkFlags, LinkHeader, LinkLayerType, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use phoenix_proto::types::net::NetIface;

use super::netlink::{Netlink, NlError};

/// The flags `get-netifaces` names, in the order the original prints them (Go's
/// `net.Flags`).
const FLAG_NAMES: [(LinkFlags, &str); 5] = [
    (LinkFlags::Up, "up"),
    (LinkFlags::Broadcast, "broadcast"),
    (LinkFlags::Loopback, "loopback"),
    (LinkFlags::Pointopoint, "pointtopoint"),
    (LinkFlags::Multicast, "multicast"),
];

/// What the agent uses of a link; the rest of its attributes are never decoded.
#[derive(Debug, Default)]
pub(crate) struct Link {
    index: u32,
    flags: LinkFlags,
    kind: LinkLayerType,
    pub(super) name: String,
    hwaddr: Vec<u8>,
}

/// Decodes the header and only IFLA_IFNAME and IFLA_ADDRESS of a link: a link
/// message carries dozens of attributes (IPv6 configuration, statistics), and
/// decoding them all costs more than the kernel takes to write them.
pub(crate) fn parse_link(_kind: u16, payload: &[u8]) -> Result<Link, DecodeError> {
    let header = LinkHeader::parse(payload)?;
    let mut link = Link {
        index: header.index,
        flags: header.flags,
        kind: header.link_layer_type,
        ..Link::default()
    };
    let attrs = payload.get(header.buffer_len()..).unwrap_or_default();
    for nla in NlasIterator::new(attrs) {
        let nla = nla?;
        if nla.kind() != libc::IFLA_IFNAME && nla.kind() != libc::IFLA_ADDRESS {
            continue;
        }
        match LinkAttribute::parse_with_param(&nla, header.interface_family)? {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Address(a) => link.hwaddr = a,
            _ => {}
        }
    }
    Ok(link)
}

/// Every interface with its addresses: one link dump and one address dump, whatever
/// the number of interfaces (the original dumped the addresses once per interface).
pub fn interfaces(nl: &mut Netlink) -> Result<Vec<NetIface>, NlError> {
    let links = nl.dump_with(RouteNetlinkMessage::GetLink(link_request()), parse_link)?;
    let addrs = nl.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
    let mut ips: HashMap<u32, Vec<String>> = HashMap::with_capacity(links.len());
    for msg in addrs {
        if let RouteNetlinkMessage::NewAddress(a) = msg {
            if let Some(ip) = interface_address(&a) {
                let text = format!("{ip}/{}", a.header.prefix_len);
                ips.entry(a.header.index).or_default().push(text);
            }
        }
    }
    let mut out: Vec<NetIface> = links
        .into_iter()
        .map(|link| NetIface {
            index: link.index,
            hwaddr: hwaddr(link.kind, &link.hwaddr),
            flags: flag_names(link.flags),
            ips: ips.remove(&link.index).unwrap_or_default(),
            name: link.name,
        })
        .collect();
    // Older kernels dump links in hash order.
    out.sort_by_key(|i| i.index);
    Ok(out)
}

/// Index -> name of every link, from one dump (for the route list).
pub fn names(nl: &mut Netlink) -> Result<HashMap<u32, String>, NlError> {
    let links = nl.dump_with(RouteNetlinkMessage::GetLink(link_request()), parse_link)?;
    Ok(links.into_iter().map(|l| (l.index, l.name)).collect())
}

/// The index of the interface called `name`; ENODEV from the kernel when there is none.
pub fn index(nl: &mut Netlink, name: &str) -> Result<u32, NlError> {
    let mut req = link_request();
    req.attributes.push(LinkAttribute::IfName(name.to_string()));
    nl.get(RouteNetlinkMessage::GetLink(req), |_, payload| {
        Ok(LinkHeader::parse(payload)?.index)
    })
}

/// Sets the interface administratively up or down (IFF_UP), by name in one request.
pub fn set_up(nl: &mut Netlink, name: &str, up: bool) -> Result<(), NlError> {
    let mut msg = LinkMessage::default();
    msg.header.flags = if up {
        LinkFlags::Up
    } else {
        LinkFlags::empty()
    };
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    nl.request(RouteNetlinkMessage::SetLink(msg), 0)
}

/// A link get/dump request without the statistics, which are a third of every answer
/// and unused here.
fn link_request() -> LinkMessage {
    let mut req = LinkMessage::default();
    req.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    req
}

/// The address as the original printed it: IFA_LOCAL when present (on a
/// point-to-point link IFA_ADDRESS is the peer's), else IFA_ADDRESS.
fn interface_address(a: &AddressMessage) -> Option<IpAddr> {
    let mut address = None;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(ip) => return Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    address
}

/// `aa:bb:cc:dd:ee:ff`, or `""` when the link has no address (all zeroes, as `lo`) or
/// when the "address" is an IP tunnel endpoint (as Go's `net.Interfaces` skips it).
fn hwaddr(kind: LinkLayerType, addr: &[u8]) -> String {
    let tunnel = match addr.len() {
        4 => matches!(
            kind,
            LinkLayerType::Tunnel | LinkLayerType::Ipgre | LinkLayerType::Sit
        ),
        16 => matches!(kind, LinkLayerType::Tunnel6 | LinkLayerType::Ip6gre),
        _ => false,
    };
    if tunnel || addr.iter().all(|&b| b == 0) {
        return String::new();
    }
    let mut s = String::with_capacity(addr.len() * 3);
    for (i, b) in addr.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `up|broadcast|multicast`, or `"0"` when none of the five is set.
fn flag_names(flags: LinkFlags) -> String {
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_the_original_order() {
        let f = LinkFlags::Multicast | LinkFlags::Up | LinkFlags::Broadcast | LinkFlags::Running;
        assert_eq!(flag_names(f), "up|broadcast|multicast");
        assert_eq!(
            flag_names(LinkFlags::Loopback | LinkFlags::Up),
            "up|loopback"
        );
        assert_eq!(flag_names(LinkFlags::Pointopoint), "pointtopoint");
        assert_eq!(flag_names(LinkFlags::Running | LinkFlags::LowerUp), "0");
    }

    #[test]
    fn hwaddr_text() {
        let ether = LinkLayerType::Ether;
        assert_eq!(hwaddr(ether, &[]), "");
        assert_eq!(
            hwaddr(ether, &[0x00, 0x16, 0x3e, 0x02, 0x92, 0x07]),
            "00:16:3e:02:92:07"
        );
        assert_eq!(hwaddr(LinkLayerType::Loopback, &[0; 6]), "");
        assert_eq!(hwaddr(LinkLayerType::Ipgre, &[10, 0, 0, 1]), "");
        assert_eq!(hwaddr(ether, &[10, 0, 0, 1]), "0a:00:00:01");
    }

    #[test]
    fn decodes_only_name_and_address() {
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        msg.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        msg.header.link_layer_type = LinkLayerType::Ether;
        msg.attributes = vec![
            LinkAttribute::Mtu(1500),
            LinkAttribute::IfName("eth7".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 7]),
            LinkAttribute::TxQueueLen(1000),
        ];
        let mut bytes = vec![0; msg.buffer_len()];
        msg.emit(&mut bytes);
        let link = parse_link(0, &bytes).unwrap();
        assert_eq!((link.index, link.name.as_str()), (7, "eth7"));
        assert_eq!(link.flags, LinkFlags::Up | LinkFlags::Broadcast);
        assert_eq!(hwaddr(link.kind, &link.hwaddr), "02:00:00:00:00:07");
        parse_link(0, &bytes[..10]).unwrap_err();
    }

    #[test]
    fn local_address_wins_over_peer() {
        let mut a = AddressMessage::default();
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let local: IpAddr = "10.0.0.1".parse().unwrap();
        a.attributes.push(AddressAttribute::Address(peer));
        assert_eq!(interface_address(&a), Some(peer));
        a.attributes.push(AddressAttribute::Local(local));
        assert_eq!(interface_address(&a), Some(local));
    }
}
