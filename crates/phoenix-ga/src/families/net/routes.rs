//! Routes of the main table: listing, adding, deleting.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, Emitable, NlasIterator, ParseableParametrized, NLM_F_CREATE, NLM_F_EXCL,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteLwEnCapType, RouteMessage,
    RouteProtocol, RouteScope, RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use phoenix_proto::types::net::{Route, RouteArgs, RouteDst};

use super::addrs::{family, max_prefix, Cidr};
use super::names::NameCache;
use super::netlink::{Netlink, NlError};

/// The main routing table (RT_TABLE_MAIN), the only one listed and changed.
const MAIN_TABLE: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// The route attributes the listing reads (linux/rtnetlink.h); the others (metrics,
/// cache info, preferences) are never decoded.
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;

/// The routes of the main table, IPv4 then IPv6 for `AddressFamily::Unspec`: one route
/// dump per family, however many routes and links there are (the original dumped every
/// link once per route). The interface names come from `names`, which dumps the
/// links on the first call only and then follows their changes.
///
/// The dumps ask for the main table only. The kernel honours that on a strict socket
/// (4.20 and later) and skips the local tables, which hold several routes per address
/// and so grow with the number of links; older kernels send every table and
/// [`parse_route`] drops the others. IPv4 and IPv6 are dumped separately rather than
/// as one AF_UNSPEC dump, because a filtered AF_UNSPEC dump also reaches the other
/// route families (MPLS refuses a table filter with EINVAL).
///
/// When no names are kept yet (the first call), the link dump runs on its own socket and
/// thread while the routes are read: the two are independent, and with many links it
/// costs the kernel as much as the routes. (After lost notifications, a rare case, the
/// links are dumped again after the routes.) The names are brought up to date after the routes are
/// read, so that a link created just before the routes were read has its name.
pub fn list(
    nl: &mut Netlink,
    family: AddressFamily,
    names: &NameCache,
) -> Result<Vec<Route>, NlError> {
    let families: &[AddressFamily] = match family {
        AddressFamily::Unspec => &[AddressFamily::Inet, AddressFamily::Inet6],
        AddressFamily::Inet => &[AddressFamily::Inet],
        _ => &[AddressFamily::Inet6],
    };
    std::thread::scope(|s| {
        // Without a thread (the process is at its limit), the links are read after.
        let links = (!names.is_built())
            .then(|| {
                std::thread::Builder::new()
                    .name("link-names".into())
                    .spawn_scoped(s, || names.current())
                    .ok()
            })
            .flatten();
        let mut routes = Vec::new();
        for &family in families {
            let mut req = RouteMessage::default();
            req.header.address_family = family;
            req.header.table = RouteHeader::RT_TABLE_MAIN;
            let dump = nl.dump_with(RouteNetlinkMessage::GetRoute(req), parse_route)?;
            // A kernel without IPv6 (ipv6.disable=1) answers an AF_INET6 dump with
            // every family's routes: keep the family asked for.
            let v6 = family == AddressFamily::Inet6;
            routes.extend(dump.into_iter().flatten().filter(|r| r.v6 == v6));
        }
        if let Some(t) = links {
            t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        }
        let names = names.current()?;
        Ok(routes.into_iter().map(|r| r.wire(&names)).collect())
    })
}

/// What the listing uses of a route of the main table.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct MainRoute {
    v6: bool,
    prefix: u8,
    scope: u8,
    dst: Option<IpAddr>,
    src: Option<IpAddr>,
    gateway: Option<IpAddr>,
    oif: Option<u32>,
}

/// Decodes the header and the attributes the listing uses; `None` for routes of other
/// tables, cloned (cache) entries and families other than IPv4 and IPv6.
pub(crate) fn parse_route(_kind: u16, payload: &[u8]) -> Result<Option<MainRoute>, DecodeError> {
    let h = RouteHeader::parse(payload)?;
    let v6 = match h.address_family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return Ok(None),
    };
    if h.flags.contains(RouteFlags::Cloned) {
        return Ok(None);
    }
    let mut table = u32::from(h.table);
    let mut r = MainRoute {
        v6,
        prefix: h.destination_prefix_length,
        scope: h.scope.into(),
        ..MainRoute::default()
    };
    let param = (h.address_family, h.kind, RouteLwEnCapType::None);
    let attrs = payload.get(h.buffer_len()..).unwrap_or_default();
    for nla in NlasIterator::new(attrs) {
        let nla = nla?;
        if ![
            RTA_DST,
            RTA_OIF,
            RTA_GATEWAY,
            RTA_PREFSRC,
            RTA_MULTIPATH,
            RTA_TABLE,
            RTA_VIA,
        ]
        .contains(&nla.kind())
        {
            continue;
        }
        match RouteAttribute::parse_with_param(&nla, param)? {
            RouteAttribute::Table(t) => table = t,
            RouteAttribute::Destination(a) => r.dst = ip(&a),
            RouteAttribute::PrefSource(a) => r.src = ip(&a),
            RouteAttribute::Gateway(a) => r.gateway = ip(&a),
            RouteAttribute::Via(RouteVia::Inet(a)) => r.gateway = Some(IpAddr::V4(a)),
            RouteAttribute::Via(RouteVia::Inet6(a)) => r.gateway = Some(IpAddr::V6(a)),
            RouteAttribute::Oif(i) => r.oif = Some(i),
            // A multipath route has no RTA_OIF: show its first hop.
            RouteAttribute::MultiPath(hops) if r.oif.is_none() => {
                if let Some(hop) = hops.first() {
                    r.oif = Some(hop.interface_index);
                    r.gateway = r.gateway.or_else(|| {
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
    Ok((table == MAIN_TABLE).then_some(r))
}

impl MainRoute {
    /// The route as the wire shows it, the output interface named from `names`.
    fn wire(self, names: &HashMap<u32, String>) -> Route {
        let dst = match self.dst {
            // No RTA_DST: a default route.
            None => RouteDst {
                ip: String::new(),
                mask: String::new(),
            },
            Some(ip) => RouteDst {
                ip: ip.to_string(),
                mask: mask_text(self.v6, self.prefix),
            },
        };
        Route {
            ifname: self
                .oif
                .and_then(|i| names.get(&i).cloned())
                .unwrap_or_default(),
            scope: self.scope,
            dst,
            src: text(self.src),
            gateway: text(self.gateway),
        }
    }
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
        RouteSpec::parse(&args("10.0.0.1", None, None)).unwrap_err();
        RouteSpec::parse(&args("10.0.0.0/8", Some("nope"), None)).unwrap_err();
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
            RouteAttribute::Priority(100),
            RouteAttribute::Destination(RouteAddress::Inet("10.0.0.0".parse().unwrap())),
            RouteAttribute::Oif(2),
            RouteAttribute::PrefSource(RouteAddress::Inet("10.0.0.1".parse().unwrap())),
        ];
        let parse = |r: &RouteMessage| {
            let mut bytes = vec![0; r.buffer_len()];
            r.emit(&mut bytes);
            parse_route(0, &bytes).unwrap()
        };
        let w = parse(&r).unwrap().wire(&names);
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
        // An unknown interface index shows as "".
        assert_eq!(parse(&r).unwrap().wire(&HashMap::new()).ifname, "");
        // RTA_TABLE wins over the header's 8-bit table.
        r.attributes.push(RouteAttribute::Table(255));
        assert_eq!(parse(&r), None);
        r.attributes.pop();
        r.header.flags = RouteFlags::Cloned;
        assert_eq!(parse(&r), None);
        r.header.flags = RouteFlags::empty();
        r.header.address_family = AddressFamily::Mpls;
        r.attributes.clear();
        assert_eq!(parse(&r), None);
    }

    #[test]
    fn default_route_has_empty_dst() {
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet6;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet6("fd00::1".parse().unwrap())),
            RouteAttribute::Oif(2),
        ];
        let mut bytes = vec![0; r.buffer_len()];
        r.emit(&mut bytes);
        let w = parse_route(0, &bytes)
            .unwrap()
            .unwrap()
            .wire(&HashMap::new());
        assert_eq!((w.dst.ip.as_str(), w.dst.mask.as_str()), ("", ""));
        assert_eq!(w.gateway, "fd00::1");
    }
}
