//! Routes of the main table: `get-route-list`, `route-add`, `route-del`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use phoenix_proto::types::net::{Route, RouteArgs, RouteDst};

use super::addrs::{family, max_prefix, Cidr};
use super::links;
use super::netlink::{Netlink, NlError};

/// The main routing table (RT_TABLE_MAIN), the only one listed and changed.
const MAIN_TABLE: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// The routes of the main table, IPv4 then IPv6 for `AddressFamily::Unspec`: one route
/// dump and one link dump (for the interface names), however many routes there are
/// (the original dumped every link once per route).
pub fn list(nl: &mut Netlink, family: AddressFamily) -> Result<Vec<Route>, NlError> {
    let mut req = RouteMessage::default();
    req.header.address_family = family;
    let routes = nl.dump(RouteNetlinkMessage::GetRoute(req))?;
    let names = links::names(nl)?;
    Ok(routes
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => wire_route(r, &names),
            _ => None,
        })
        .collect())
}

/// A route of the main table as the wire shows it; `None` for other tables, cloned
/// (cache) entries and families other than IPv4 and IPv6.
fn wire_route(r: &RouteMessage, names: &HashMap<u32, String>) -> Option<Route> {
    let v6 = match r.header.address_family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return None,
    };
    if r.header.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let mut table = u32::from(r.header.table);
    let (mut dst, mut src, mut gateway, mut oif) = (None, None, None, None);
    for attr in &r.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst = ip(a),
            RouteAttribute::PrefSource(a) => src = ip(a),
            RouteAttribute::Gateway(a) => gateway = ip(a),
            RouteAttribute::Via(RouteVia::Inet(a)) => gateway = Some(IpAddr::V4(*a)),
            RouteAttribute::Via(RouteVia::Inet6(a)) => gateway = Some(IpAddr::V6(*a)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            // A multipath route has no RTA_OIF: show its first hop.
            RouteAttribute::MultiPath(hops) if oif.is_none() => {
                if let Some(hop) = hops.first() {
                    oif = Some(hop.interface_index);
                    gateway = gateway.or_else(|| {
                        hop.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(a) => ip(a),
                            _ => None,
                        })
                    });
                }
            }
            _ => {}
        }
    }
    if table != MAIN_TABLE {
        return None;
    }
    let prefix = r.header.destination_prefix_length;
    let dst = match dst {
        // No RTA_DST: a default route.
        None => RouteDst {
            ip: String::new(),
            mask: String::new(),
        },
        Some(ip) => RouteDst {
            ip: ip.to_string(),
            mask: mask_text(v6, prefix),
        },
    };
    Some(Route {
        ifname: oif.and_then(|i| names.get(&i).cloned()).unwrap_or_default(),
        scope: r.header.scope.into(),
        dst,
        src: text(src),
        gateway: text(gateway),
    })
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn text(ip: Option<IpAddr>) -> String {
    ip.map(|i| i.to_string()).unwrap_or_default()
}

/// A prefix length written as an address: 24 -> "255.255.255.0", 64 -> "ffff:ffff:ffff:ffff::".
fn mask_text(v6: bool, prefix: u8) -> String {
    let p = u32::from(prefix);
    if v6 {
        let bits = u128::MAX.checked_shl(128 - p.min(128)).unwrap_or(0);
        Ipv6Addr::from(bits).to_string()
    } else {
        let bits = u32::MAX.checked_shl(32 - p.min(32)).unwrap_or(0);
        Ipv4Addr::from(bits).to_string()
    }
}

/// A checked `route-add` / `route-del` request, before the interface is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The destination network (host bits cleared); prefix 0 for a default route.
    pub dst: Cidr,
    /// The next hop, of the destination's family.
    pub gateway: Option<IpAddr>,
    /// The preferred source, of the destination's family.
    pub src: Option<IpAddr>,
    /// The scope given, if any.
    pub scope: Option<u8>,
}

impl RouteSpec {
    /// Checks the arguments: `dst` in CIDR form or `"default"` (IPv4 unless the gateway
    /// or source is IPv6), gateway and source addresses of the destination's family.
    /// The error is the reason, for an invalid-arguments reply.
    pub fn parse(a: &RouteArgs) -> Result<Self, String> {
        let gateway = optional_ip(a.gateway.as_deref(), "gateway")?;
        let src = optional_ip(a.src.as_deref(), "src")?;
        let dst = if a.dst == "default" {
            let v6 = gateway.or(src).is_some_and(|i| i.is_ipv6());
            let any = if v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            Cidr {
                addr: any,
                prefix: 0,
            }
        } else {
            let c = Cidr::parse(&a.dst).ok_or_else(|| {
                format!(
                    "dst \"{}\" is not \"default\" or an address in CIDR form",
                    a.dst
                )
            })?;
            Cidr {
                addr: c.network(),
                prefix: c.prefix,
            }
        };
        for (what, ip) in [("gateway", gateway), ("src", src)] {
            if let Some(ip) = ip.filter(|ip| ip.is_ipv6() != dst.addr.is_ipv6()) {
                return Err(format!(
                    "{what} {ip} is {} but dst {} is {}",
                    family_name(ip),
                    a.dst,
                    family_name(dst.addr)
                ));
            }
        }
        Ok(Self {
            dst,
            gateway,
            src,
            scope: a.scope,
        })
    }
}

/// `10.1.0.0/24 via 10.0.0.254 src 10.0.0.1 scope 253` (a default route as
/// `0.0.0.0/0` or `::/0`), for error messages.
impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dst.addr, self.dst.prefix)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(s) = self.src {
            write!(f, " src {s}")?;
        }
        if let Some(s) = self.scope {
            write!(f, " scope {s}")?;
        }
        Ok(())
    }
}

fn family_name(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// An optional address argument: absent or `""` means none.
fn optional_ip(s: Option<&str>, what: &str) -> Result<Option<IpAddr>, String> {
    match s {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("{what} \"{s}\" is not an IP address")),
    }
}

/// Adds the route through interface `index`; EEXIST when it exists.
pub fn add(nl: &mut Netlink, index: u32, spec: &RouteSpec) -> Result<(), NlError> {
    let msg = message(index, spec, true);
    nl.request(
        RouteNetlinkMessage::NewRoute(msg),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Deletes the matching route; ESRCH when none matches.
pub fn delete(nl: &mut Netlink, index: u32, spec: &RouteSpec) -> Result<(), NlError> {
    nl.request(
        RouteNetlinkMessage::DelRoute(message(index, spec, false)),
        0,
    )
}

/// The request `ip route add/del` would send. A delete leaves protocol, type and
/// (unless given) scope unset so that they match any route, as `ip route del` does.
fn message(index: u32, spec: &RouteSpec, add: bool) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let h = &mut msg.header;
    h.address_family = family(spec.dst.addr);
    h.destination_prefix_length = spec.dst.prefix.min(max_prefix(spec.dst.addr));
    h.table = RouteHeader::RT_TABLE_MAIN;
    if add {
        h.protocol = RouteProtocol::Boot;
        h.scope = RouteScope::from(spec.scope.unwrap_or(0));
        h.kind = RouteType::Unicast;
    } else {
        h.protocol = RouteProtocol::Unspec;
        h.scope = spec.scope.map_or(RouteScope::NoWhere, RouteScope::from);
        h.kind = RouteType::Unspec;
    }
    if spec.dst.prefix > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(route_address(spec.dst.addr)));
    }
    msg.attributes.push(RouteAttribute::Oif(index));
    if let Some(g) = spec.gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(route_address(g)));
    }
    if let Some(s) = spec.src {
        msg.attributes
            .push(RouteAttribute::PrefSource(route_address(s)));
    }
    msg
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dst: &str, gw: Option<&str>, src: Option<&str>) -> RouteArgs {
        RouteArgs {
            ifname: "eth0".into(),
            dst: dst.into(),
            src: src.map(Into::into),
            gateway: gw.map(Into::into),
            scope: None,
        }
    }

    #[test]
    fn masks_as_addresses() {
        assert_eq!(mask_text(false, 24), "255.255.255.0");
        assert_eq!(mask_text(false, 32), "255.255.255.255");
        assert_eq!(mask_text(false, 0), "0.0.0.0");
        assert_eq!(mask_text(true, 64), "ffff:ffff:ffff:ffff::");
        assert_eq!(
            mask_text(true, 128),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(mask_text(true, 0), "::");
    }

    #[test]
    fn default_routes_and_families() {
        let s = RouteSpec::parse(&args("default", Some("10.0.0.1"), None)).unwrap();
        assert_eq!(
            (s.dst.addr.to_string(), s.dst.prefix),
            ("0.0.0.0".into(), 0)
        );
        let s = RouteSpec::parse(&args("default", Some("fd00::1"), Some(""))).unwrap();
        assert_eq!(s.dst.addr.to_string(), "::");
        assert_eq!(s.src, None);
        let s = RouteSpec::parse(&args("::/0", None, None)).unwrap();
        assert!(s.dst.addr.is_ipv6());
        let s = RouteSpec::parse(&args("10.1.2.3/24", None, None)).unwrap();
        assert_eq!(s.to_string(), "10.1.2.0/24");
    }

    #[test]
    fn wrong_family_and_bad_addresses() {
        let e = RouteSpec::parse(&args("10.0.0.0/8", Some("fd00::1"), None)).unwrap_err();
        assert_eq!(e, "gateway fd00::1 is IPv6 but dst 10.0.0.0/8 is IPv4");
        let e = RouteSpec::parse(&args("fd00::/64", None, Some("10.0.0.1"))).unwrap_err();
        assert_eq!(e, "src 10.0.0.1 is IPv4 but dst fd00::/64 is IPv6");
        let e = RouteSpec::parse(&args("default", Some("10.0.0.1"), Some("fd00::2"))).unwrap_err();
        assert!(e.starts_with("src fd00::2 is IPv6"), "{e}");
        assert!(RouteSpec::parse(&args("10.0.0.1", None, None)).is_err());
        assert!(RouteSpec::parse(&args("10.0.0.0/8", Some("nope"), None)).is_err());
    }

    #[test]
    fn delete_matches_any_scope_unless_given() {
        let mut spec = RouteSpec::parse(&args("10.1.0.0/16", Some("10.0.0.1"), None)).unwrap();
        let m = message(2, &spec, false);
        assert_eq!(m.header.scope, RouteScope::NoWhere);
        assert_eq!(message(2, &spec, true).header.scope, RouteScope::Universe);
        spec.scope = Some(253);
        assert_eq!(message(2, &spec, false).header.scope, RouteScope::Link);
        let d = RouteSpec::parse(&args("default", None, None)).unwrap();
        let m = message(2, &d, true);
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Destination(_))));
    }

    #[test]
    fn lists_main_table_only() {
        let names = HashMap::from([(2, "eth0".to_string())]);
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.header.destination_prefix_length = 24;
        r.header.scope = RouteScope::Link;
        r.attributes = vec![
            RouteAttribute::Destination(RouteAddress::Inet("10.0.0.0".parse().unwrap())),
            RouteAttribute::Oif(2),
            RouteAttribute::PrefSource(RouteAddress::Inet("10.0.0.1".parse().unwrap())),
        ];
        let w = wire_route(&r, &names).unwrap();
        assert_eq!(
            w,
            Route {
                ifname: "eth0".into(),
                scope: 253,
                dst: RouteDst {
                    ip: "10.0.0.0".into(),
                    mask: "255.255.255.0".into()
                },
                src: "10.0.0.1".into(),
                gateway: String::new(),
            }
        );
        r.attributes.push(RouteAttribute::Table(255));
        assert_eq!(wire_route(&r, &names), None);
    }
}
