//! Routes: the listings of `get-route-list` and `guest-network-get-route` (one route
//! dump per family, both from [`dump`]), adding and deleting routes of the main table.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

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
use super::names::{NameCache, Names};
use super::netlink::{Netlink, NlError};

/// The main routing table (RT_TABLE_MAIN).
pub(crate) const MAIN_TABLE: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// The route attributes the listings read (linux/rtnetlink.h); the others (encap,
/// realms, ...) are never decoded.
const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_METRICS: u16 = 8;
const RTA_MULTIPATH: u16 = 9;
const RTA_CACHEINFO: u16 = 12;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
const RTA_PREF: u16 = 20;

/// The metrics the listings read from RTA_METRICS (RTAX_*).
const RTAX_WINDOW: u16 = 3;
const RTAX_RTT: u16 = 4;
const RTAX_ADVMSS: u16 = 8;

/// Offset of `rta_expires` in `struct rta_cacheinfo`.
const CACHEINFO_EXPIRES: usize = 8;

/// Which tables a dump of one family reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    /// The main table only.
    Main,
    /// Every table (main, local, policy-routing tables), in the kernel's order.
    All,
}

/// The routes of one listing and the interface names as they were when it was read.
#[derive(Debug)]
pub(crate) struct RouteDump {
    /// The routes, dump by dump in the order asked for, each in the kernel's order.
    pub routes: Vec<KernelRoute>,
    /// Index -> name of every link.
    pub names: Arc<Names>,
}

/// The main table's routes as `get-route-list` shows them, IPv4 then IPv6 for
/// `AddressFamily::Unspec`.
pub fn list(
    nl: &mut Netlink,
    family: AddressFamily,
    names: &NameCache,
) -> Result<Vec<Route>, NlError> {
    let wanted: &[(AddressFamily, Tables)] = match family {
        AddressFamily::Unspec => &[
            (AddressFamily::Inet, Tables::Main),
            (AddressFamily::Inet6, Tables::Main),
        ],
        AddressFamily::Inet => &[(AddressFamily::Inet, Tables::Main)],
        _ => &[(AddressFamily::Inet6, Tables::Main)],
    };
    let d = dump(nl, wanted, names)?;
    Ok(d.routes.into_iter().map(|r| r.wire(&d.names)).collect())
}

/// The routes of each (family, tables) in `wanted`: one route dump each, however many
/// routes and links there are (the original dumped every link once per route). The
/// interface names come from `names`, which dumps the links on the first call only
/// and then follows their changes.
///
/// A dump of the main table asks the kernel for that table only. The kernel honours
/// that on a strict socket (4.20 and later) and skips the local tables, which hold
/// several routes per address and so grow with the number of links; older kernels
/// send every table and the others are dropped here. ([`Tables::All`], for the IPv6
/// routes of `guest-network-get-route`, reads the local table as
/// `/proc/net/ipv6_route` does.) Families are dumped separately
/// rather than as one AF_UNSPEC dump, because a filtered AF_UNSPEC dump also reaches
/// the other route families (MPLS refuses a table filter with EINVAL).
///
/// When no names are kept yet (the first call), the link dump runs on its own socket and
/// thread while the routes are read: the two are independent, and with many links it
/// costs the kernel as much as the routes. (After lost notifications, a rare case, the
/// links are dumped again after the routes.) The names are brought up to date after
/// the routes are read, so that a link created just before the routes were read has
/// its name.
pub(crate) fn dump(
    nl: &mut Netlink,
    wanted: &[(AddressFamily, Tables)],
    names: &NameCache,
) -> Result<RouteDump, NlError> {
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
        for &(family, tables) in wanted {
            let mut req = RouteMessage::default();
            req.header.address_family = family;
            if tables == Tables::Main {
                req.header.table = RouteHeader::RT_TABLE_MAIN;
            }
            let dump = nl.dump_with(RouteNetlinkMessage::GetRoute(req), parse_route)?;
            // A kernel without IPv6 (ipv6.disable=1) answers an AF_INET6 dump with
            // every family's routes: keep the family asked for.
            let v6 = family == AddressFamily::Inet6;
            routes.extend(
                dump.into_iter()
                    .flatten()
                    .filter(|r| r.v6 == v6 && (tables == Tables::All || r.table == MAIN_TABLE)),
            );
        }
        if let Some(t) = links {
            t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        }
        let names = names.current()?;
        Ok(RouteDump { routes, names })
    })
}

/// A next hop: the output interface and the gateway, each when the route has one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hop {
    /// RTA_OIF.
    pub oif: Option<u32>,
    /// RTA_GATEWAY, or RTA_VIA (an IPv4 route through an IPv6 gateway).
    pub gateway: Option<IpAddr>,
}

/// What the listings use of a route.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct KernelRoute {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// The table (RTA_TABLE, which holds ids past 255).
    pub table: u32,
    /// RTN_* type: unicast, local, unreachable, ...
    pub kind: RouteType,
    /// RTPROT_*: who added it.
    pub protocol: RouteProtocol,
    /// The destination's prefix length.
    pub prefix: u8,
    /// The source's prefix length (IPv6 source-specific routes).
    pub src_prefix: u8,
    /// RT_SCOPE_*.
    pub scope: u8,
    /// RTA_DST; none for a default route.
    pub dst: Option<IpAddr>,
    /// RTA_SRC: the source network of a source-specific route.
    pub src: Option<IpAddr>,
    /// RTA_PREFSRC: the preferred source address.
    pub prefsrc: Option<IpAddr>,
    /// The next hop, or the first of a multipath route's.
    pub hop: Hop,
    /// The other next hops of a multipath route.
    pub more_hops: Vec<Hop>,
    /// RTA_PRIORITY: the metric.
    pub priority: u32,
    /// RTAX_ADVMSS, RTAX_WINDOW, RTAX_RTT (in 1/8 ms) of RTA_METRICS; 0 when unset.
    pub advmss: u32,
    /// See `advmss`.
    pub window: u32,
    /// See `advmss`.
    pub rtt: u32,
    /// RTA_PREF (IPv6 router preference: 0 medium, 1 high, 3 low).
    pub pref: u8,
    /// Whether the route expires (RTA_CACHEINFO's `rta_expires` is not 0).
    pub expires: bool,
}

impl KernelRoute {
    /// Every next hop, the first one first.
    pub fn hops(&self) -> impl Iterator<Item = &Hop> {
        std::iter::once(&self.hop).chain(&self.more_hops)
    }
}

/// Decodes the header and the attributes the listings use; `None` for cloned (cache)
/// entries and families other than IPv4 and IPv6.
pub(crate) fn parse_route(_kind: u16, payload: &[u8]) -> Result<Option<KernelRoute>, DecodeError> {
    let h = RouteHeader::parse(payload)?;
    let v6 = match h.address_family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return Ok(None),
    };
    if h.flags.contains(RouteFlags::Cloned) {
        return Ok(None);
    }
    let mut r = KernelRoute {
        v6,
        table: u32::from(h.table),
        kind: h.kind,
        protocol: h.protocol,
        prefix: h.destination_prefix_length,
        src_prefix: h.source_prefix_length,
        scope: h.scope.into(),
        ..KernelRoute::default()
    };
    let param = (h.address_family, h.kind, RouteLwEnCapType::None);
    let attrs = payload.get(h.buffer_len()..).unwrap_or_default();
    for nla in NlasIterator::new(attrs) {
        let nla = nla?;
        match nla.kind() {
            RTA_PRIORITY => r.priority = u32_of(nla.value())?,
            RTA_PREF => r.pref = *nla.value().first().ok_or("empty RTA_PREF")?,
            RTA_CACHEINFO => {
                let expires = nla
                    .value()
                    .get(CACHEINFO_EXPIRES..CACHEINFO_EXPIRES + 4)
                    .ok_or("short RTA_CACHEINFO")?;
                r.expires = expires.iter().any(|&b| b != 0);
            }
            RTA_METRICS => {
                for m in NlasIterator::new(nla.value()) {
                    let m = m?;
                    match m.kind() {
                        RTAX_WINDOW => r.window = u32_of(m.value())?,
                        RTAX_RTT => r.rtt = u32_of(m.value())?,
                        RTAX_ADVMSS => r.advmss = u32_of(m.value())?,
                        _ => {}
                    }
                }
            }
            RTA_DST | RTA_SRC | RTA_OIF | RTA_GATEWAY | RTA_PREFSRC | RTA_MULTIPATH
            | RTA_TABLE | RTA_VIA => match RouteAttribute::parse_with_param(&nla, param)? {
                RouteAttribute::Table(t) => r.table = t,
                RouteAttribute::Destination(a) => r.dst = ip(&a),
                RouteAttribute::Source(a) => r.src = ip(&a),
                RouteAttribute::PrefSource(a) => r.prefsrc = ip(&a),
                RouteAttribute::Gateway(a) => r.hop.gateway = ip(&a),
                RouteAttribute::Via(v) => r.hop.gateway = via(&v),
                RouteAttribute::Oif(i) => r.hop.oif = Some(i),
                // A multipath route has no RTA_OIF: its hops are in here.
                RouteAttribute::MultiPath(hops) => {
                    let mut hops = hops.into_iter().map(|hop| Hop {
                        oif: Some(hop.interface_index),
                        gateway: hop.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(a) => ip(a),
                            RouteAttribute::Via(v) => via(v),
                            _ => None,
                        }),
                    });
                    if let Some(first) = hops.next() {
                        r.hop = first;
                    }
                    r.more_hops = hops.collect();
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok(Some(r))
}

/// A native-endian u32 attribute.
fn u32_of(value: &[u8]) -> Result<u32, DecodeError> {
    let bytes: [u8; 4] = value
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("u32 attribute shorter than 4 bytes")?;
    Ok(u32::from_ne_bytes(bytes))
}

impl KernelRoute {
    /// The route as `get-route-list` shows it, the output interface (the first hop's)
    /// named from `names`.
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
                .hop
                .oif
                .and_then(|i| names.get(&i).cloned())
                .unwrap_or_default(),
            scope: self.scope,
            dst,
            src: text(self.prefsrc),
            gateway: text(self.hop.gateway),
        }
    }
}

fn via(v: &RouteVia) -> Option<IpAddr> {
    match v {
        RouteVia::Inet(a) => Some(IpAddr::V4(*a)),
        RouteVia::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
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
pub(crate) fn mask_text(v6: bool, prefix: u8) -> String {
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
    use netlink_packet_route::route::{RouteMetric, RoutePreference};

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

    fn parsed(r: &RouteMessage) -> Option<KernelRoute> {
        let mut bytes = vec![0; r.buffer_len()];
        r.emit(&mut bytes);
        parse_route(0, &bytes).unwrap()
    }

    #[test]
    fn route_as_get_route_list_shows_it() {
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
        let k = parsed(&r).unwrap();
        assert_eq!((k.table, k.priority), (MAIN_TABLE, 100));
        assert_eq!(
            k.wire(&names),
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
        assert_eq!(parsed(&r).unwrap().wire(&HashMap::new()).ifname, "");
        // RTA_TABLE wins over the header's 8-bit table.
        r.attributes.push(RouteAttribute::Table(1000));
        assert_eq!(parsed(&r).unwrap().table, 1000);
        r.attributes.pop();
        r.header.flags = RouteFlags::Cloned;
        assert_eq!(parsed(&r), None);
        r.header.flags = RouteFlags::empty();
        r.header.address_family = AddressFamily::Mpls;
        r.attributes.clear();
        assert_eq!(parsed(&r), None);
    }

    #[test]
    fn metrics_preference_expiry_and_source() {
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet6;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.header.kind = RouteType::Unicast;
        r.header.protocol = RouteProtocol::Ra;
        r.header.destination_prefix_length = 64;
        r.header.source_prefix_length = 56;
        r.attributes = vec![
            RouteAttribute::Destination(RouteAddress::Inet6("fd20::".parse().unwrap())),
            RouteAttribute::Source(RouteAddress::Inet6("fd30::".parse().unwrap())),
            RouteAttribute::Oif(2),
            RouteAttribute::Priority(1024),
            RouteAttribute::Metrics(vec![
                RouteMetric::Mtu(1400),
                RouteMetric::Window(5000),
                RouteMetric::Rtt(800),
                RouteMetric::Advmss(1300),
            ]),
            RouteAttribute::Preference(RoutePreference::High),
            RouteAttribute::CacheInfo(cache_info(0)),
        ];
        let k = parsed(&r).unwrap();
        assert!(k.v6);
        assert_eq!((k.prefix, k.src_prefix), (64, 56));
        assert_eq!(k.src, Some("fd30::".parse().unwrap()));
        assert_eq!((k.priority, k.window, k.rtt, k.advmss), (1024, 5000, 800, 1300));
        assert_eq!((k.pref, k.protocol, k.expires), (1, RouteProtocol::Ra, false));
        r.attributes.pop();
        r.attributes.push(RouteAttribute::CacheInfo(cache_info(100)));
        assert!(parsed(&r).unwrap().expires);
        // A short attribute is an error, not a panic.
        let mut bytes = vec![0; r.buffer_len()];
        r.emit(&mut bytes);
        for cut in 0..bytes.len() {
            let _ = parse_route(0, &bytes[..cut]);
        }
    }

    fn cache_info(expires: u32) -> netlink_packet_route::route::RouteCacheInfo {
        let mut bytes = [0u8; 32];
        bytes[CACHEINFO_EXPIRES..CACHEINFO_EXPIRES + 4].copy_from_slice(&expires.to_ne_bytes());
        netlink_packet_route::route::RouteCacheInfo::parse(&bytes).unwrap()
    }

    #[test]
    fn multipath_hops_in_order() {
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.header.destination_prefix_length = 16;
        let hop = |oif: u32, gw: &str| {
            let mut h = netlink_packet_route::route::RouteNextHop::default();
            h.interface_index = oif;
            h.attributes = vec![RouteAttribute::Gateway(RouteAddress::Inet(gw.parse().unwrap()))];
            h
        };
        r.attributes = vec![
            RouteAttribute::Destination(RouteAddress::Inet("10.70.0.0".parse().unwrap())),
            RouteAttribute::MultiPath(vec![hop(2, "10.9.0.2"), hop(3, "10.9.0.3")]),
        ];
        let k = parsed(&r).unwrap();
        let hops: Vec<(Option<u32>, Option<IpAddr>)> =
            k.hops().map(|h| (h.oif, h.gateway)).collect();
        assert_eq!(
            hops,
            [
                (Some(2), Some("10.9.0.2".parse().unwrap())),
                (Some(3), Some("10.9.0.3".parse().unwrap()))
            ]
        );
        // get-route-list shows the first hop.
        let names = HashMap::from([(2, "v0".to_string())]);
        let w = k.wire(&names);
        assert_eq!((w.ifname.as_str(), w.gateway.as_str()), ("v0", "10.9.0.2"));
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
        let w = parsed(&r).unwrap().wire(&HashMap::new());
        assert_eq!((w.dst.ip.as_str(), w.dst.mask.as_str()), ("", ""));
        assert_eq!(w.gateway, "fd00::1");
    }
}
