//! Interface addresses: CIDR parsing, `ipaddr-add` and `ipaddr-del`.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::netlink::{Netlink, NlError};

/// An address with its prefix length, as `"ADDR/PREFIX"` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The address as written (host bits kept).
    pub addr: IpAddr,
    /// The prefix length, at most 32 (IPv4) or 128 (IPv6).
    pub prefix: u8,
}

impl Cidr {
    /// Parses `"ADDR/PREFIX"` strictly: both parts required, the prefix in decimal
    /// digits only and within the family's width. `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = s.split_once('/')?;
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        (prefix <= max_prefix(addr)).then_some(Self { addr, prefix })
    }

    /// The network: the address with its host bits cleared.
    pub fn network(self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

/// 32 or 128.
pub fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// The netlink family of an address.
pub fn family(addr: IpAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// Adds `cidr` to interface `index`; EEXIST when it is there already.
pub fn add(nl: &mut Netlink, index: u32, cidr: Cidr) -> Result<(), NlError> {
    nl.request(
        RouteNetlinkMessage::NewAddress(add_message(index, cidr)),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

fn add_message(index: u32, cidr: Cidr) -> AddressMessage {
    let mut msg = message(index, cidr);
    // As `ip addr add`: loopback addresses get host scope (the kernel computes the
    // scope of IPv6 addresses itself); IPv4 gets the broadcast address of its subnet.
    if let IpAddr::V4(a) = cidr.addr {
        if a.is_loopback() {
            msg.header.scope = AddressScope::Host;
        }
        if cidr.prefix < 31 {
            let host = u32::MAX >> cidr.prefix;
            let brd = Ipv4Addr::from(u32::from(a) | host);
            msg.attributes.push(AddressAttribute::Broadcast(brd));
        }
    }
    msg
}

/// Removes `cidr` (address and prefix length must both match) from interface `index`;
/// EADDRNOTAVAIL when it is not there.
pub fn delete(nl: &mut Netlink, index: u32, cidr: Cidr) -> Result<(), NlError> {
    nl.request(RouteNetlinkMessage::DelAddress(message(index, cidr)), 0)
}

/// IFA_LOCAL and IFA_ADDRESS both set to the address: with IFA_ADDRESS present the
/// kernel also matches the prefix length on delete.
fn message(index: u32, cidr: Cidr) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(cidr.addr);
    msg.header.prefix_len = cidr.prefix;
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(cidr.addr));
    msg.attributes.push(AddressAttribute::Address(cidr.addr));
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cidr_strictly() {
        let c = Cidr::parse("192.168.55.77/24").unwrap();
        assert_eq!((c.addr.to_string(), c.prefix), ("192.168.55.77".into(), 24));
        assert_eq!(c.network().to_string(), "192.168.55.0");
        let c = Cidr::parse("fd00::1:2/64").unwrap();
        assert_eq!(c.network().to_string(), "fd00::");
        assert_eq!(Cidr::parse("::/0").unwrap().network().to_string(), "::");
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().prefix, 0);
        assert_eq!(
            Cidr::parse("10.1.2.3/32").unwrap().network().to_string(),
            "10.1.2.3"
        );
        for bad in [
            "10.0.0.1",
            "10.0.0.1/",
            "10.0.0.1/33",
            "fd00::1/129",
            "10.0.0.1/+8",
            "10.0.0.1/ 8",
            "10.0.0/8",
            "x/8",
            "/8",
            "10.0.0.1/0008",
            "fe80::1%eth0/64",
            "",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn broadcast_and_scope() {
        let m = add_message(3, Cidr::parse("10.1.2.3/24").unwrap());
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert_eq!((m.header.index, m.header.prefix_len), (3, 24));
        assert_eq!(m.header.scope, AddressScope::Universe);
        let brd = AddressAttribute::Broadcast("10.1.2.255".parse().unwrap());
        assert!(m.attributes.contains(&brd));
        let m = add_message(1, Cidr::parse("127.0.0.2/8").unwrap());
        assert_eq!(m.header.scope, AddressScope::Host);
        let m = add_message(3, Cidr::parse("10.1.2.3/31").unwrap());
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Broadcast(_))));
        let m = add_message(3, Cidr::parse("fd00::1/64").unwrap());
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert_eq!(m.attributes.len(), 2);
    }
}
