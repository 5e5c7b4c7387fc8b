//! The qemu-ga dialect's network commands: `guest-network-get-interfaces` and
//! `guest-network-get-route`.
//!
//! qemu-ga builds the first from `getifaddrs` (which glibc fills from one link dump and
//! one address dump), an ioctl per interface for its hardware address and a read of
//! `/proc/net/dev` per interface for its counters; the second from `/proc/net/route`
//! and `/proc/net/ipv6_route`. These adapters give the same replies from the dumps the
//! Phoenix listings read ([`super::links::listing`], [`super::routes::dump`]): the same interfaces,
//! names, addresses and routes in the same order, the same members present and absent,
//! and the values those files show, computed as the kernel computes them there.
//!
//! Both only read kernel memory and keep answering while the filesystems are frozen
//! (qemu-ga refuses them then).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_route::link::Stats64;
use netlink_packet_route::route::{RouteProtocol, RouteType};
use netlink_packet_route::AddressFamily;
use phoenix_proto::qga::Empty;
use phoenix_proto::types::net::qga::cmd::{GuestNetworkGetInterfaces, GuestNetworkGetRoute};
use phoenix_proto::types::net::qga::{
    GuestIpAddress, GuestIpAddressType, GuestNetworkInterface, GuestNetworkInterfaceStat,
    GuestNetworkRoute,
};

use super::links::{Link, Listing, Stats};
use super::names::Names;
use super::routes::{mask_text, Hop, KernelRoute, RouteDump, Tables};
use super::Net;
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run};

/// Every interface with its hardware address, addresses and counters.
impl Command for GuestNetworkGetInterfaces {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        let listing = agent.family::<Net>().listing(Stats::Include)?;
        reply::<Self>(&interfaces(&listing))
    }
}

/// The routes of `/proc/net/route` (the IPv4 main table) and `/proc/net/ipv6_route`
/// (every IPv6 table).
impl Command for GuestNetworkGetRoute {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: Empty) -> Outcome {
        let dump = agent.family::<Net>().route_dump(&[
            (AddressFamily::Inet, Tables::Main),
            (AddressFamily::Inet6, Tables::All),
        ])?;
        reply::<Self>(&route_list(&dump))
    }
}

/// The interfaces as `getifaddrs` names and orders them: every link in the link dump's
/// order, then one entry per IPv4 address label that is not a link's name (`eth0:1`,
/// an alias from `ip addr add ... label eth0:1`), in the address dump's order.
///
/// As in qemu-ga: every entry has a hardware address (an alias its link's); an entry
/// without addresses has neither `ip-addresses` nor `statistics`; an alias has no
/// `statistics` (qemu-ga looks its name up in `/proc/net/dev`, which has none).
/// Addresses are in the dump's order: IPv4 first, then IPv6 with link-local addresses
/// after the global ones, as the kernel keeps them.
pub(super) fn interfaces(listing: &Listing) -> Vec<GuestNetworkInterface> {
    let by_index: HashMap<u32, &Link> = listing.links.iter().map(|l| (l.index, l)).collect();
    let mut out: Vec<GuestNetworkInterface> = Vec::with_capacity(listing.links.len());
    // The counters of each entry that is a link.
    let mut stats: Vec<Option<&Stats64>> = Vec::with_capacity(listing.links.len());
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(listing.links.len());
    for link in &listing.links {
        if by_name.contains_key(link.name.as_str()) {
            continue;
        }
        by_name.insert(&link.name, out.len());
        out.push(entry(&link.name, link));
        stats.push(link.stats.as_ref());
    }
    for a in &listing.addrs {
        let Some(link) = by_index.get(&a.index) else {
            continue; // a link created after the link dump
        };
        let name = match (&a.label, a.ip) {
            (Some(label), IpAddr::V4(_)) => label.as_str(),
            _ => link.name.as_str(),
        };
        let at = *by_name.entry(name).or_insert_with(|| {
            out.push(entry(name, link));
            stats.push(None);
            out.len() - 1
        });
        let iface = &mut out[at];
        let (ip_address, ip_address_type) = match a.ip {
            IpAddr::V4(ip) => (ip.to_string(), GuestIpAddressType::Ipv4),
            IpAddr::V6(ip) => (inet6_text(ip), GuestIpAddressType::Ipv6),
        };
        iface
            .ip_addresses
            .get_or_insert_with(Vec::new)
            .push(GuestIpAddress {
                ip_address,
                ip_address_type,
                prefix: i64::from(a.prefix),
            });
        if iface.statistics.is_none() {
            iface.statistics = stats[at].map(counters);
        }
    }
    out
}

/// An entry named `name` for `link`, without addresses yet.
fn entry(name: &str, link: &Link) -> GuestNetworkInterface {
    GuestNetworkInterface {
        name: name.to_string(),
        hardware_address: Some(hardware_address(&link.hwaddr)),
        ip_addresses: None,
        statistics: None,
    }
}

/// The first six bytes of the link-layer address, zero-padded, as qemu-ga prints what
/// SIOCGIFHWADDR gives it: `00:00:00:00:00:00` for `lo` and for links without an
/// address (tun); the local IPv4 address and two zero bytes for an IPv4 tunnel.
fn hardware_address(addr: &[u8]) -> String {
    let mut b = [0u8; 6];
    for (to, from) in b.iter_mut().zip(addr) {
        *to = *from;
    }
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

/// The counters `/proc/net/dev` shows, which count a receive queue's missed packets
/// as dropped.
fn counters(s: &Stats64) -> GuestNetworkInterfaceStat {
    GuestNetworkInterfaceStat {
        rx_bytes: s.rx_bytes,
        rx_packets: s.rx_packets,
        rx_errs: s.rx_errors,
        rx_dropped: s.rx_dropped.wrapping_add(s.rx_missed_errors),
        tx_bytes: s.tx_bytes,
        tx_packets: s.tx_packets,
        tx_errs: s.tx_errors,
        tx_dropped: s.tx_dropped,
    }
}

/// An IPv6 address as glibc's `inet_ntop` writes it: as Rust does (RFC 5952), except
/// that the deprecated IPv4-compatible form `::a.b.c.d` keeps its dotted quad.
fn inet6_text(ip: Ipv6Addr) -> String {
    let w = ip.segments();
    if w[..6].iter().all(|&x| x == 0) && w[6] != 0 {
        let [.., a, b, c, d] = ip.octets();
        return format!("::{}", Ipv4Addr::new(a, b, c, d));
    }
    ip.to_string()
}

// The RTF_* route flags (linux/route.h, linux/ipv6_route.h) the kernel shows in
// /proc/net/route and /proc/net/ipv6_route.
const RTF_UP: u32 = 0x0001;
const RTF_GATEWAY: u32 = 0x0002;
const RTF_HOST: u32 = 0x0004;
const RTF_REJECT: u32 = 0x0200;
const RTF_DEFAULT: u32 = 0x0001_0000;
const RTF_ADDRCONF: u32 = 0x0004_0000;
const RTF_ANYCAST: u32 = 0x0010_0000;
const RTF_NONEXTHOP: u32 = 0x0020_0000;
const RTF_EXPIRES: u32 = 0x0040_0000;
const RTF_ROUTEINFO: u32 = 0x0080_0000;
const RTF_LOCAL: u32 = 0x8000_0000;
/// The router preference's place in the IPv6 flags (RTF_PREF).
const RTF_PREF_SHIFT: u32 = 27;

/// The routes: IPv4 as `/proc/net/route` lists them, then IPv6 as
/// `/proc/net/ipv6_route` does.
fn route_list(dump: &RouteDump) -> Vec<GuestNetworkRoute> {
    let mut out = Vec::with_capacity(dump.routes.len());
    for r in &dump.routes {
        if r.v6 {
            out.extend(ipv6_routes(r, &dump.names));
        } else {
            out.extend(ipv4_route(r, &dump.names));
        }
    }
    out
}

/// An IPv4 route as `/proc/net/route` shows it: the main table without broadcast and
/// multicast routes, a multipath route by its first hop, `*` for a route without an
/// interface; `None` for a route to be left out, or whose interface was deleted
/// while the routes were read.
fn ipv4_route(r: &KernelRoute, names: &Names) -> Option<GuestNetworkRoute> {
    if matches!(r.kind, RouteType::Broadcast | RouteType::Multicast) {
        return None;
    }
    let iface = match r.hop.oif {
        None => "*".to_string(),
        Some(i) => names.get(&i)?.clone(),
    };
    let mut flags = RTF_UP;
    // A gateway of either family (an IPv6 one with `via inet6`, shown as 0.0.0.0).
    if r.hop.gateway.is_some() {
        flags |= RTF_GATEWAY;
    }
    if r.prefix == 32 {
        flags |= RTF_HOST;
    }
    if matches!(r.kind, RouteType::Unreachable | RouteType::Prohibit) {
        flags |= RTF_REJECT;
    }
    let gateway = match r.hop.gateway {
        Some(IpAddr::V4(g)) => g,
        _ => Ipv4Addr::UNSPECIFIED,
    };
    let destination = match r.dst {
        Some(IpAddr::V4(d)) => d,
        _ => Ipv4Addr::UNSPECIFIED,
    };
    let mtu = if r.advmss == 0 {
        0
    } else {
        i64::from(r.advmss) + 40
    };
    Some(GuestNetworkRoute {
        iface,
        destination: destination.to_string(),
        metric: i64::from(r.priority),
        gateway: Some(gateway.to_string()),
        mask: Some(mask_text(false, r.prefix)),
        irtt: Some(i64::from(r.rtt >> 3)),
        flags: Some(u64::from(flags)),
        refcnt: Some(0),
        r#use: Some(0),
        window: Some(i64::from(r.window)),
        mtu: Some(mtu),
        desprefixlen: None,
        source: None,
        srcprefixlen: None,
        nexthop: None,
        version: 4,
    })
}

/// An IPv6 route as `/proc/net/ipv6_route` shows it: one line per next hop (the
/// kernel keeps each hop of a multipath route as a route of its own), none for a hop
/// without an interface (qemu-ga cannot parse that line) or whose interface was
/// deleted meanwhile.
fn ipv6_routes<'a>(
    r: &'a KernelRoute,
    names: &'a Names,
) -> impl Iterator<Item = GuestNetworkRoute> + 'a {
    r.hops().filter_map(move |hop| {
        let iface = names.get(&hop.oif?)?.clone();
        let nexthop = match hop.gateway {
            Some(IpAddr::V6(g)) => g,
            _ => Ipv6Addr::UNSPECIFIED,
        };
        let v6 = |a: Option<IpAddr>| match a {
            Some(IpAddr::V6(a)) => inet6_text(a),
            _ => "::".to_string(),
        };
        Some(GuestNetworkRoute {
            iface,
            destination: v6(r.dst),
            metric: i64::from(r.priority),
            gateway: None,
            mask: None,
            irtt: None,
            flags: Some(u64::from(ipv6_flags(r, hop))),
            // The kernel's count of references to the route, which rtnetlink does
            // not report: a route in a table has at least the table's.
            refcnt: Some(1),
            r#use: Some(0),
            window: None,
            mtu: None,
            desprefixlen: Some(r.prefix.to_string()),
            source: Some(v6(r.src)),
            srcprefixlen: Some(r.src_prefix.to_string()),
            nexthop: Some(inet6_text(nexthop)),
            version: 6,
        })
    })
}

/// The RTF_* flags the kernel keeps on an IPv6 route, rebuilt from what rtnetlink
/// reports of it: its type, gateway, expiry and preference, and for routes from router
/// advertisements (protocol `ra`) RTF_ADDRCONF with RTF_DEFAULT (a default router) or
/// RTF_ROUTEINFO (a route information option). Prefix routes the kernel adds from
/// router advertisements carry RTF_ADDRCONF|RTF_PREFIX_RT there, which rtnetlink does
/// not tell apart from an address's prefix route: they show without them.
fn ipv6_flags(r: &KernelRoute, hop: &Hop) -> u32 {
    let mut flags = match r.kind {
        // Reject routes are not RTF_UP there.
        RouteType::Unreachable | RouteType::BlackHole | RouteType::Prohibit | RouteType::Throw => {
            RTF_REJECT | RTF_NONEXTHOP
        }
        RouteType::Local => RTF_UP | RTF_LOCAL | RTF_NONEXTHOP,
        RouteType::Anycast => RTF_UP | RTF_ANYCAST | RTF_NONEXTHOP,
        _ => RTF_UP,
    };
    if hop.gateway.is_some() {
        flags |= RTF_GATEWAY;
    }
    if r.expires {
        flags |= RTF_EXPIRES;
    }
    if r.protocol == RouteProtocol::Ra && hop.gateway.is_some() {
        flags |= RTF_ADDRCONF | if r.prefix == 0 { RTF_DEFAULT } else { RTF_ROUTEINFO };
    }
    flags | u32::from(r.pref & 3) << RTF_PREF_SHIFT
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::net::links::Address;
    use crate::families::net::routes;

    fn link(index: u32, name: &str, hwaddr: &[u8], rx_bytes: u64) -> Link {
        let mut stats = Stats64::default();
        stats.rx_bytes = rx_bytes;
        stats.rx_dropped = 2;
        stats.rx_missed_errors = 3;
        Link {
            index,
            name: name.into(),
            hwaddr: hwaddr.to_vec(),
            stats: Some(stats),
            ..Link::default()
        }
    }

    fn addr(index: u32, ip: &str, prefix: u8, label: Option<&str>) -> Address {
        Address {
            index,
            ip: ip.parse().unwrap(),
            prefix,
            label: label.map(Into::into),
        }
    }

    #[test]
    fn interfaces_as_getifaddrs_names_them() {
        let listing = Listing {
            links: vec![
                link(1, "lo", &[0; 6], 10),
                link(3, "eth0", &[0x52, 0x54, 0, 0x12, 0x34, 0x56], 20),
                link(2, "br0", &[0x7e, 0x74, 0xa4, 0xb1, 0x14, 0x42], 30),
                link(4, "tun0", &[], 40),
            ],
            addrs: vec![
                addr(1, "127.0.0.1", 8, Some("lo")),
                addr(3, "10.0.0.1", 24, Some("eth0")),
                addr(3, "10.0.0.5", 24, Some("eth0:1")),
                addr(1, "::1", 128, None),
                addr(3, "fd00::1", 64, None),
                addr(3, "fe80::5054:ff:fe12:3456", 64, None),
                addr(9, "10.9.9.9", 8, Some("gone")),
            ],
        };
        let got = interfaces(&listing);
        let names: Vec<&str> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "br0", "tun0", "eth0:1"]);
        assert_eq!(got[0].hardware_address.as_deref(), Some("00:00:00:00:00:00"));
        let eth0 = &got[1];
        assert_eq!(eth0.hardware_address.as_deref(), Some("52:54:00:12:34:56"));
        let ips: Vec<(&str, i64)> = eth0
            .ip_addresses
            .as_ref()
            .unwrap()
            .iter()
            .map(|a| (a.ip_address.as_str(), a.prefix))
            .collect();
        assert_eq!(
            ips,
            [("10.0.0.1", 24), ("fd00::1", 64), ("fe80::5054:ff:fe12:3456", 64)]
        );
        let s = eth0.statistics.unwrap();
        assert_eq!((s.rx_bytes, s.rx_dropped), (20, 5));
        // No address: no addresses and no counters.
        assert_eq!((&got[2].ip_addresses, got[2].statistics), (&None, None));
        assert_eq!(got[3].hardware_address.as_deref(), Some("00:00:00:00:00:00"));
        // The alias: its link's hardware address, its own address, no counters.
        let alias = &got[4];
        assert_eq!(alias.hardware_address, eth0.hardware_address);
        assert_eq!(alias.ip_addresses.as_ref().unwrap()[0].ip_address, "10.0.0.5");
        assert_eq!(alias.statistics, None);
        // Without counters in the dump, none are shown.
        let mut listing = listing;
        listing.links[1].stats = None;
        assert_eq!(interfaces(&listing)[1].statistics, None);
    }

    #[test]
    fn hardware_addresses_as_qemu_ga_prints_them() {
        assert_eq!(hardware_address(&[]), "00:00:00:00:00:00");
        assert_eq!(hardware_address(&[10, 9, 0, 1]), "0a:09:00:01:00:00");
        let ib: Vec<u8> = (1..=20).collect();
        assert_eq!(hardware_address(&ib), "01:02:03:04:05:06");
    }

    #[test]
    fn ipv6_text_as_inet_ntop_writes_it() {
        for (ip, text) in [
            ("::", "::"),
            ("::1", "::1"),
            ("::2", "::2"),
            ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
            ("::10.0.0.1", "::10.0.0.1"),
            ("::0.0.1.2", "::102"),
            ("fd00:0:0:0:1:0:0:0", "fd00::1:0:0:0"),
            ("fd00:0:0:1:0:0:0:1", "fd00:0:0:1::1"),
            ("fe80::1", "fe80::1"),
            ("1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"),
        ] {
            assert_eq!(inet6_text(ip.parse().unwrap()), text, "{ip}");
        }
    }

    fn names() -> Names {
        HashMap::from([(1, "lo".to_string()), (2, "eth0".to_string())])
    }

    fn v4(dst: &str, prefix: u8) -> KernelRoute {
        KernelRoute {
            table: routes::MAIN_TABLE,
            kind: RouteType::Unicast,
            prefix,
            dst: Some(dst.parse().unwrap()),
            hop: Hop {
                oif: Some(2),
                gateway: None,
            },
            ..KernelRoute::default()
        }
    }

    #[test]
    fn ipv4_routes_as_proc_net_route() {
        let n = names();
        let r = ipv4_route(&v4("10.0.0.0", 24), &n).unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"iface": "eth0", "destination": "10.0.0.0", "metric": 0,
                "gateway": "0.0.0.0", "mask": "255.255.255.0", "irtt": 0, "flags": 1,
                "refcnt": 0, "use": 0, "window": 0, "mtu": 0, "version": 4})
        );
        let mut host = v4("10.40.0.1", 32);
        (host.advmss, host.window, host.rtt, host.priority) = (1300, 5000, 800, 7);
        host.hop.gateway = Some("10.0.0.254".parse().unwrap());
        let r = ipv4_route(&host, &n).unwrap();
        assert_eq!(
            (r.flags, r.mtu, r.window, r.irtt, r.metric),
            (Some(7), Some(1340), Some(5000), Some(100), 7)
        );
        assert_eq!(r.gateway.as_deref(), Some("10.0.0.254"));
        // A default route through an IPv6 gateway.
        let mut d = v4("0.0.0.0", 0);
        d.dst = None;
        d.hop.gateway = Some("fd00::1".parse().unwrap());
        let r = ipv4_route(&d, &n).unwrap();
        assert_eq!(
            (r.destination.as_str(), r.gateway.as_deref(), r.mask.as_deref(), r.flags),
            ("0.0.0.0", Some("0.0.0.0"), Some("0.0.0.0"), Some(3))
        );
        let mut u = v4("10.30.0.0", 16);
        u.hop.oif = None;
        u.kind = RouteType::Unreachable;
        let r = ipv4_route(&u, &n).unwrap();
        assert_eq!((r.iface.as_str(), r.flags), ("*", Some(0x201)));
        u.kind = RouteType::BlackHole;
        assert_eq!(ipv4_route(&u, &n).unwrap().flags, Some(1));
        u.kind = RouteType::Broadcast;
        assert_eq!(ipv4_route(&u, &n), None);
        // An interface deleted while the routes were read.
        let mut gone = v4("10.1.0.0", 16);
        gone.hop.oif = Some(9);
        assert_eq!(ipv4_route(&gone, &n), None);
    }

    fn v6(dst: &str, prefix: u8, kind: RouteType) -> KernelRoute {
        KernelRoute {
            v6: true,
            table: routes::MAIN_TABLE,
            kind,
            prefix,
            dst: Some(dst.parse().unwrap()),
            hop: Hop {
                oif: Some(2),
                gateway: None,
            },
            priority: 256,
            ..KernelRoute::default()
        }
    }

    #[test]
    fn ipv6_routes_as_proc_net_ipv6_route() {
        let n = names();
        let one = |r: &KernelRoute| {
            let v: Vec<_> = ipv6_routes(r, &n).collect();
            assert_eq!(v.len(), 1, "{v:?}");
            v.into_iter().next().unwrap()
        };
        let r = one(&v6("fd00::", 64, RouteType::Unicast));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"iface": "eth0", "destination": "fd00::", "metric": 256,
                "flags": 1, "refcnt": 1, "use": 0, "desprefixlen": "64", "source": "::",
                "srcprefixlen": "0", "nexthop": "::", "version": 6})
        );
        let mut local = v6("fd00::1", 128, RouteType::Local);
        local.priority = 0;
        assert_eq!(one(&local).flags, Some(0x8020_0001));
        let mut reject = v6("fd11::", 64, RouteType::Unreachable);
        reject.hop.oif = Some(1);
        assert_eq!(
            (one(&reject).iface.as_str(), one(&reject).flags),
            ("lo", Some(0x0020_0200))
        );
        for kind in [RouteType::BlackHole, RouteType::Prohibit, RouteType::Throw] {
            reject.kind = kind;
            assert_eq!(one(&reject).flags, Some(0x0020_0200), "{kind:?}");
        }
        assert_eq!(
            one(&v6("fd09::", 128, RouteType::Anycast)).flags,
            Some(0x0030_0001)
        );
        assert_eq!(one(&v6("ff00::", 8, RouteType::Multicast)).flags, Some(1));
        let mut gw = v6("fd15::", 64, RouteType::Unicast);
        gw.hop.gateway = Some("fd09::fe".parse().unwrap());
        gw.pref = 1;
        let r = one(&gw);
        assert_eq!(
            (r.flags, r.nexthop.as_deref()),
            (Some(0x0800_0003), Some("fd09::fe"))
        );
        gw.pref = 3;
        gw.expires = true;
        assert_eq!(one(&gw).flags, Some(0x1840_0003));
        // From a router advertisement: the default router, a route information option.
        let mut ra = v6("::", 0, RouteType::Unicast);
        ra.dst = None;
        ra.protocol = RouteProtocol::Ra;
        ra.expires = true;
        ra.hop.gateway = Some("fe80::1".parse().unwrap());
        let r = one(&ra);
        assert_eq!(
            (r.destination.as_str(), r.desprefixlen.as_deref(), r.flags),
            ("::", Some("0"), Some(0x0045_0003))
        );
        ra.prefix = 48;
        ra.dst = Some("2001:db8::".parse().unwrap());
        assert_eq!(one(&ra).flags, Some(0x00c4_0003));
        // A source-specific route.
        let mut ss = v6("fd20::", 64, RouteType::Unicast);
        (ss.src, ss.src_prefix) = (Some("fd30::".parse().unwrap()), 56);
        let r = one(&ss);
        assert_eq!(
            (r.source.as_deref(), r.srcprefixlen.as_deref()),
            (Some("fd30::"), Some("56"))
        );
        // Multipath: one route per hop; a hop without or with an unknown interface is
        // left out.
        let mut mp = v6("fd18::", 64, RouteType::Unicast);
        mp.hop.gateway = Some("fd09::2".parse().unwrap());
        mp.more_hops = vec![
            Hop {
                oif: Some(2),
                gateway: Some("fd09::3".parse().unwrap()),
            },
            Hop {
                oif: Some(9),
                gateway: None,
            },
        ];
        let hops: Vec<String> = ipv6_routes(&mp, &n)
            .map(|r| r.nexthop.unwrap())
            .collect();
        assert_eq!(hops, ["fd09::2", "fd09::3"]);
        mp.hop.oif = None;
        mp.more_hops.clear();
        assert_eq!(ipv6_routes(&mp, &n).count(), 0);
    }

    #[test]
    fn both_families_in_dump_order() {
        let dump = RouteDump {
            routes: vec![
                v4("10.0.0.0", 24),
                v6("fd00::", 64, RouteType::Unicast),
                v6("fd00::1", 128, RouteType::Local),
            ],
            names: std::sync::Arc::new(names()),
        };
        let versions: Vec<i64> = route_list(&dump).iter().map(|r| r.version).collect();
        assert_eq!(versions, [4, 6, 6]);
    }
}
