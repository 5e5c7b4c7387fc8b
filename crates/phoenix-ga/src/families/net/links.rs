//! Links: the interface listing of `get-netifaces` and `guest-network-get-interfaces`,
//! name lookups, and up/down.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use netlink_packet_core::{DecodeError, Emitable, NlasIterator, ParseableParametrized};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkFlags, LinkHeader, LinkLayerType, LinkMessage, Stats64,
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
    /// The interface index.
    pub index: u32,
    /// IFF_* flags.
    pub flags: LinkFlags,
    /// ARPHRD_* type.
    pub kind: LinkLayerType,
    /// IFLA_IFNAME.
    pub name: String,
    /// IFLA_ADDRESS; empty when the link has none (addr_len 0: tun, some tunnels).
    pub hwaddr: Vec<u8>,
    /// IFLA_STATS64, when the dump asked for statistics ([`Stats::Include`]).
    pub stats: Option<Stats64>,
}

/// One address of the address dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    /// The index of its interface.
    pub index: u32,
    /// IFA_LOCAL when present (on a point-to-point link IFA_ADDRESS is the peer's),
    /// else IFA_ADDRESS: the address `ip addr` and `getifaddrs` show.
    pub ip: IpAddr,
    /// The prefix length.
    pub prefix: u8,
    /// IFA_LABEL (IPv4 only): the interface's name, or an alias such as `eth0:1`.
    pub label: Option<String>,
}

/// Every link and every address, each in the kernel's dump order (links by index on
/// current kernels; addresses IPv4 first, then IPv6, interface by interface).
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// The links.
    pub links: Vec<Link>,
    /// The addresses.
    pub addrs: Vec<Address>,
}

/// Whether a link dump carries the links' counters. They are a third of every answer,
/// so the listings that do not show them ask the kernel to leave them out
/// (RTEXT_FILTER_SKIP_STATS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stats {
    /// Without counters.
    Skip,
    /// With IFLA_STATS64.
    Include,
}

/// Decodes the header and only IFLA_IFNAME and IFLA_ADDRESS of a link: a link
/// message carries dozens of attributes (IPv6 configuration, statistics), and
/// decoding them all costs more than the kernel takes to write them.
pub(crate) fn parse_link(_kind: u16, payload: &[u8]) -> Result<Link, DecodeError> {
    decode_link(payload, Stats::Skip)
}

/// [`parse_link`], and IFLA_STATS64 when `stats` asks for it.
fn decode_link(payload: &[u8], stats: Stats) -> Result<Link, DecodeError> {
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
        let wanted = match nla.kind() {
            libc::IFLA_IFNAME | libc::IFLA_ADDRESS => true,
            libc::IFLA_STATS64 => stats == Stats::Include,
            _ => false,
        };
        if !wanted {
            continue;
        }
        match LinkAttribute::parse_with_param(&nla, header.interface_family)? {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Address(a) => link.hwaddr = a,
            LinkAttribute::Stats64(s) => link.stats = Some(s),
            _ => {}
        }
    }
    Ok(link)
}

/// Every link and every address: one link dump and one address dump, whatever the
/// number of interfaces (the original dumped the addresses once per interface, and
/// qemu-ga reads `/proc/net/dev` once per interface). `get-netifaces` and
/// `guest-network-get-interfaces` both read their interfaces from here.
pub fn listing(nl: &mut Netlink, stats: Stats) -> Result<Listing, NlError> {
    let req = match stats {
        Stats::Skip => link_request(),
        Stats::Include => LinkMessage::default(),
    };
    let links = nl.dump_with(RouteNetlinkMessage::GetLink(req), |_, payload| {
        decode_link(payload, stats)
    })?;
    let addrs = nl.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
    let addrs = addrs
        .into_iter()
        .filter_map(|msg| match msg {
            RouteNetlinkMessage::NewAddress(a) => address(a),
            _ => None,
        })
        .collect();
    Ok(Listing { links, addrs })
}

/// What the listings use of an address message; `None` for families other than IPv4
/// and IPv6.
fn address(a: AddressMessage) -> Option<Address> {
    let ip = interface_address(&a)?;
    let label = a.attributes.into_iter().find_map(|attr| match attr {
        AddressAttribute::Label(l) => Some(l),
        _ => None,
    });
    Some(Address {
        index: a.header.index,
        ip,
        prefix: a.header.prefix_len,
        label,
    })
}

/// `get-netifaces`: every interface in index order with its addresses as
/// `ADDR/PREFIX`.
pub fn netifaces(listing: Listing) -> Vec<NetIface> {
    let mut ips: HashMap<u32, Vec<String>> = HashMap::with_capacity(listing.links.len());
    for a in listing.addrs {
        let text = format!("{}/{}", a.ip, a.prefix);
        ips.entry(a.index).or_default().push(text);
    }
    let mut out: Vec<NetIface> = listing
        .links
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
    out
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
    fn counters_only_when_asked() {
        let mut stats = Stats64::default();
        (stats.rx_bytes, stats.tx_packets, stats.rx_missed_errors) = (1000, 7, 2);
        let mut msg = LinkMessage::default();
        msg.header.index = 3;
        msg.attributes = vec![
            LinkAttribute::IfName("v0".into()),
            LinkAttribute::Stats64(stats),
        ];
        let mut bytes = vec![0; msg.buffer_len()];
        msg.emit(&mut bytes);
        assert_eq!(parse_link(0, &bytes).unwrap().stats, None);
        let link = decode_link(&bytes, Stats::Include).unwrap();
        assert_eq!((link.name.as_str(), link.stats), ("v0", Some(stats)));
        // An older kernel's shorter rtnl_link_stats64 (16 bytes less): the missing
        // counters are 0. The attribute is the last one, after the header and the
        // 8 bytes of IFLA_IFNAME.
        let mut cut = bytes[..bytes.len() - 16].to_vec();
        let at = LinkHeader::parse(&bytes).unwrap().buffer_len() + 8;
        let len = u16::try_from(cut.len() - at).unwrap();
        cut[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        let link = decode_link(&cut, Stats::Include).unwrap();
        assert_eq!(link.stats.map(|s| s.rx_bytes), Some(1000));
    }

    #[test]
    fn addresses_with_their_labels() {
        let mut a = AddressMessage::default();
        a.header.index = 3;
        a.header.prefix_len = 24;
        a.attributes = vec![
            AddressAttribute::Address("10.0.0.5".parse().unwrap()),
            AddressAttribute::Local("10.0.0.5".parse().unwrap()),
            AddressAttribute::Label("v0:1".into()),
        ];
        assert_eq!(
            address(a),
            Some(Address {
                index: 3,
                ip: "10.0.0.5".parse().unwrap(),
                prefix: 24,
                label: Some("v0:1".into()),
            })
        );
        assert_eq!(address(AddressMessage::default()), None);
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
