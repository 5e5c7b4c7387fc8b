//! Links: the interface list of `get-netifaces`, name lookups, and up/down.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkFlags, LinkLayerType, LinkMessage,
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

/// Every interface with its addresses: one link dump and one address dump, whatever
/// the number of interfaces (the original dumped the addresses once per interface).
pub fn interfaces(nl: &mut Netlink) -> Result<Vec<NetIface>, NlError> {
    let links = nl.dump(RouteNetlinkMessage::GetLink(link_request()))?;
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
        .filter_map(|msg| match msg {
            RouteNetlinkMessage::NewLink(link) => Some(link),
            _ => None,
        })
        .map(|link| {
            let index = link.header.index;
            NetIface {
                index,
                name: link_name(&link).unwrap_or_default().to_string(),
                hwaddr: hwaddr(&link),
                flags: flag_names(link.header.flags),
                ips: ips.remove(&index).unwrap_or_default(),
            }
        })
        .collect();
    // Older kernels dump links in hash order.
    out.sort_by_key(|i| i.index);
    Ok(out)
}

/// Index -> name of every link, from one dump (for the route list).
pub fn names(nl: &mut Netlink) -> Result<HashMap<u32, String>, NlError> {
    let links = nl.dump(RouteNetlinkMessage::GetLink(link_request()))?;
    Ok(links
        .into_iter()
        .filter_map(|msg| match msg {
            RouteNetlinkMessage::NewLink(link) => {
                let name = link_name(&link)?.to_string();
                Some((link.header.index, name))
            }
            _ => None,
        })
        .collect())
}

/// The index of the interface called `name`; ENODEV from the kernel when there is none.
pub fn index(nl: &mut Netlink, name: &str) -> Result<u32, NlError> {
    let mut req = link_request();
    req.attributes.push(LinkAttribute::IfName(name.to_string()));
    match nl.get(RouteNetlinkMessage::GetLink(req))? {
        RouteNetlinkMessage::NewLink(link) => Ok(link.header.index),
        _ => Err(io_invalid(
            "the kernel answered a link request with something else",
        )),
    }
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

fn io_invalid(msg: &str) -> NlError {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg).into()
}

fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
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
fn hwaddr(link: &LinkMessage) -> String {
    let Some(addr) = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(v) => Some(v.as_slice()),
        _ => None,
    }) else {
        return String::new();
    };
    let kind = link.header.link_layer_type;
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
        let mut link = LinkMessage::default();
        assert_eq!(hwaddr(&link), "");
        link.attributes.push(LinkAttribute::Address(vec![
            0x00, 0x16, 0x3e, 0x02, 0x92, 0x07,
        ]));
        assert_eq!(hwaddr(&link), "00:16:3e:02:92:07");
        link.attributes = vec![LinkAttribute::Address(vec![0; 6])];
        assert_eq!(hwaddr(&link), "");
        link.header.link_layer_type = LinkLayerType::Ipgre;
        link.attributes = vec![LinkAttribute::Address(vec![10, 0, 0, 1])];
        assert_eq!(hwaddr(&link), "");
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
