//! The qemu-ga dialect's `guest-network-get-interfaces` and `guest-network-get-route`:
//! against `ip -j` in the namespace, and against Debian's qemu-ga started in the same
//! namespace.
//!
//! Namespace A holds the agent: `v0` (one end of a veth pair whose other end `v1` is in
//! namespace B, so that pings cross it), an IPv4 alias `v0:1`, a bridge and a tun
//! device without addresses, and routes of every kind. Traffic comes from busybox's
//! ping (busybox-static is a test dependency already).

use phoenix_testkit::{must, qga_fails, qga_ok, shape, QemuGa, TestAgent};
use serde_json::{json, Map, Value};

use crate::netns::Netns;

/// Namespace A (the agent's) and B (the far end of `v0`).
struct Net {
    a: Netns,
    b: Netns,
}

impl Net {
    fn new() -> Self {
        let a = Netns::new();
        let b = Netns::new();
        must(
            "ip",
            &[
                "link",
                "add",
                "v0",
                "netns",
                a.name(),
                "type",
                "veth",
                "peer",
                "name",
                "v1",
                "netns",
                b.name(),
            ],
        );
        for cmd in [
            "link set v0 up",
            "addr add 10.9.0.1/24 dev v0",
            "addr add 10.9.0.5/24 dev v0 label v0:1",
            "addr add fd09::1/64 dev v0 nodad",
            "link add br0 type bridge",
            "tuntap add dev t0 mode tun",
        ] {
            a.ip(cmd);
        }
        for cmd in [
            "link set v1 up",
            "addr add 10.9.0.2/24 dev v1",
            "addr add fd09::2/64 dev v1 nodad",
        ] {
            b.ip(cmd);
        }
        a.wait_link_local(&["v0"]);
        for cmd in [
            "route add default via 10.9.0.2",
            "route add 10.20.0.0/16 via 10.9.0.254 metric 5",
            "route add unreachable 10.30.0.0/16",
            "route add blackhole 10.31.0.0/16",
            "route add prohibit 10.32.0.0/16",
            "route add throw 10.33.0.0/16",
            "route add 10.40.0.1 dev v0 mtu lock 1400 advmss 1300 window 5000 rtt 100ms",
            "route add 10.60.0.0/16 via inet6 fd09::fe dev v0",
            "route add 10.70.0.0/16 nexthop via 10.9.0.3 nexthop via 10.9.0.4",
            "nexthop add id 5 via 10.9.0.6 dev v0",
            "route add 10.80.0.0/16 nhid 5",
            "route add 10.92.0.0/16 dev v0 metric 4294967295",
            "route add broadcast 10.99.0.255 dev v0 table main",
            "route add 10.50.0.0/16 via 10.9.0.2 table 100",
            "-6 route add fd10::/64 via fd09::fe metric 77",
            "-6 route add unreachable fd11::/64",
            "-6 route add blackhole fd12::/64",
            "-6 route add fd15::/64 via fd09::fe pref high",
            "-6 route add fd16::/64 via fd09::fe table 100",
            "-6 route add fd17::/64 dev v0 expires 3600",
            "-6 route add fd18::/64 nexthop via fd09::2 nexthop via fd09::3",
        ] {
            a.ip(cmd);
        }
        Net { a, b }
    }

    /// Our agent in namespace A, in the qemu-ga dialect.
    fn agent(&self) -> TestAgent {
        self.a.launch().start(&["--dialect", "qga"])
    }

    /// Debian's qemu-ga in namespace A.
    fn qemu_ga(&self) -> QemuGa {
        QemuGa::start(&["ip", "netns", "exec", self.a.name()], &[])
    }

    /// `n` pings from A to B, answered.
    fn ping(&self, n: u32) {
        let count = n.to_string();
        self.a
            .exec(&["busybox", "ping", "-A", "-q", "-c", &count, "10.9.0.2"]);
    }
}

/// The first six bytes of `ip`'s `address`, zero-padded (qemu-ga's hardware address).
fn hardware_address(ip_address: Option<&str>) -> String {
    let mut bytes: Vec<&str> = ip_address
        .unwrap_or("")
        .split(':')
        .filter(|b| !b.is_empty())
        .collect();
    bytes.resize(6, "00");
    bytes[..6].join(":")
}

/// What `guest-network-get-interfaces` must say, statistics aside, computed from
/// `ip -j addr`: every link, then every IPv4 label that is not a link's name.
fn expected_interfaces(ns: &Netns) -> Vec<Value> {
    let links = ns.json("addr show");
    let mut out: Vec<Value> = Vec::new();
    let mut aliases: Vec<Value> = Vec::new();
    for l in links.as_array().unwrap() {
        let name = l["ifname"].as_str().unwrap();
        let hw = hardware_address(l["address"].as_str());
        let mut own = Vec::new();
        for a in l["addr_info"].as_array().unwrap() {
            let ip = json!({
                "ip-address": a["local"],
                "ip-address-type": if a["family"] == "inet" { "ipv4" } else { "ipv6" },
                "prefix": a["prefixlen"],
            });
            match a["label"].as_str() {
                Some(label) if label != name => {
                    match aliases.iter_mut().find(|x| x["name"] == label) {
                        Some(x) => x["ip-addresses"].as_array_mut().unwrap().push(ip),
                        None => aliases.push(json!({
                            "name": label, "hardware-address": hw, "ip-addresses": [ip],
                        })),
                    }
                }
                _ => own.push(ip),
            }
        }
        let mut entry = json!({"name": name, "hardware-address": hw});
        if !own.is_empty() {
            entry["ip-addresses"] = Value::Array(own);
        }
        out.push(entry);
    }
    out.extend(aliases);
    out
}

/// The reply without its `statistics` members.
fn without_statistics(list: &Value) -> Vec<Value> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i.as_object_mut().unwrap().remove("statistics");
            i
        })
        .collect()
}

#[test]
fn interfaces_as_ip_addr_shows_them() {
    let net = Net::new();
    let agent = net.agent();
    let got = qga_ok(
        &mut agent.raw(),
        "guest-network-get-interfaces",
        Value::Null,
    );
    let expected = expected_interfaces(&net.a);
    assert_eq!(without_statistics(&got), expected);

    let list = got.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["lo", "v0", "br0", "t0", "v0:1"]);
    assert_eq!(list[0]["hardware-address"], "00:00:00:00:00:00");
    let v0 = &list[1];
    let ips: Vec<&str> = v0["ip-addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip-address"].as_str().unwrap())
        .collect();
    assert_eq!(&ips[..2], ["10.9.0.1", "fd09::1"], "{ips:?}");
    assert!(ips[2].starts_with("fe80::"), "link-local last: {ips:?}");
    // Statistics with the first address; none without addresses, none for a label.
    for i in list {
        let is_link = i["name"] != "v0:1";
        let has_ips = i.get("ip-addresses").is_some();
        assert_eq!(i.get("statistics").is_some(), is_link && has_ips, "{i}");
    }
    assert_eq!(
        list[3]["hardware-address"], "00:00:00:00:00:00",
        "tun: none"
    );
    assert_eq!(list[4]["hardware-address"], v0["hardware-address"]);
    // `{}` as arguments is fine; anything in it is refused as qemu-ga refuses it.
    let again = qga_ok(&mut agent.raw(), "guest-network-get-interfaces", json!({}));
    assert_eq!(without_statistics(&again), expected);
    assert_eq!(
        qga_fails(
            &mut agent.raw(),
            "guest-network-get-interfaces",
            json!({"all": true})
        ),
        (
            "GenericError".into(),
            "Parameter 'all' is unexpected".into()
        )
    );
}

/// The counters of `dev` as `ip -s -s link` shows them, under qemu-ga's names.
fn ip_counters(ns: &Netns, dev: &str) -> Value {
    let s = &ns.json(&format!("-s -s link show dev {dev}"))[0]["stats64"];
    let n = |v: &Value| v.as_u64().unwrap();
    json!({
        "rx-bytes": s["rx"]["bytes"], "rx-packets": s["rx"]["packets"],
        "rx-errs": s["rx"]["errors"],
        "rx-dropped": n(&s["rx"]["dropped"]) + n(&s["rx"]["missed_errors"]),
        "tx-bytes": s["tx"]["bytes"], "tx-packets": s["tx"]["packets"],
        "tx-errs": s["tx"]["errors"], "tx-dropped": s["tx"]["dropped"],
    })
}

/// Each counter of `low` at most the same counter of `high`.
fn at_most(low: &Value, high: &Value) -> bool {
    let (low, high) = (low.as_object().unwrap(), high.as_object().unwrap());
    low.len() == high.len() && low.iter().all(|(k, v)| v.as_u64() <= high[k].as_u64())
}

#[test]
fn statistics_count_the_traffic() {
    let net = Net::new();
    let agent = net.agent();
    let stats = |c: &mut phoenix_testkit::RawConn| {
        let list = qga_ok(c, "guest-network-get-interfaces", Value::Null);
        list.as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "v0")
            .unwrap()["statistics"]
            .clone()
    };
    let mut c = agent.raw();
    let before = stats(&mut c);
    net.ping(5);
    let ip_before = ip_counters(&net.a, "v0");
    let ours = stats(&mut c);
    let ip_after = ip_counters(&net.a, "v0");
    assert!(
        at_most(&ip_before, &ours),
        "ip {ip_before} then ours {ours}"
    );
    assert!(at_most(&ours, &ip_after), "ours {ours} then ip {ip_after}");
    let grew = |k: &str| ours[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert!(
        grew("tx-packets") >= 5 && grew("rx-packets") >= 5,
        "{before} -> {ours}"
    );
    // 5 echo requests of 84 bytes each way at least (20 + 8 + 56, plus the Ethernet
    // header the counters include).
    assert!(
        grew("tx-bytes") >= 5 * 84 && grew("rx-bytes") >= 5 * 84,
        "{before} -> {ours}"
    );
    // The far end saw the same packets.
    let b = ip_counters(&net.b, "v1");
    assert!(
        b["rx-packets"].as_u64() >= ours["tx-packets"].as_u64(),
        "{b} {ours}"
    );
}

/// `ip`'s destination, `default`, `a.b.c.d` or `ADDR/PREFIX`, as address and prefix.
fn dst_and_prefix(dst: &str, any: &str, host: u32) -> (String, u32) {
    match dst.split_once('/') {
        _ if dst == "default" => (any.to_string(), 0),
        Some((a, p)) => (a.to_string(), p.parse().unwrap()),
        None => (dst.to_string(), host),
    }
}

/// What `guest-network-get-route` must list for one IPv4 route of
/// `ip -j -4 route show table main`: a `/proc/net/route` line.
fn expected_ipv4(r: &Value) -> Option<Value> {
    let kind = r["type"].as_str().unwrap_or("unicast");
    if kind == "broadcast" || kind == "multicast" {
        return None;
    }
    let (dst, prefix) = dst_and_prefix(r["dst"].as_str().unwrap(), "0.0.0.0", 32);
    let hop = r.get("nexthops").map_or(r, |h| &h[0]);
    let gateway = hop["gateway"].as_str();
    let mut flags = 1;
    if gateway.is_some() || hop.get("via").is_some() {
        flags |= 2;
    }
    if prefix == 32 {
        flags |= 4;
    }
    if kind == "unreachable" || kind == "prohibit" {
        flags |= 0x200;
    }
    let m = &r["metrics"][0];
    let advmss = m["advmss"].as_u64().unwrap_or(0);
    let mask = std::net::Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0));
    Some(json!({
        "iface": hop["dev"].as_str().unwrap_or("*"),
        "destination": dst,
        "metric": r["metric"].as_u64().unwrap_or(0),
        "gateway": gateway.unwrap_or("0.0.0.0"),
        "mask": mask.to_string(),
        "irtt": m["rtt"].as_u64().unwrap_or(0),
        "flags": flags,
        "refcnt": 0,
        "use": 0,
        "window": m["window"].as_u64().unwrap_or(0),
        "mtu": if advmss == 0 { 0 } else { advmss + 40 },
        "version": 4,
    }))
}

/// What `guest-network-get-route` must list for one IPv6 route of
/// `ip -j -6 route show table all`: a `/proc/net/ipv6_route` line per next hop.
fn expected_ipv6(r: &Value) -> Vec<Value> {
    let kind = r["type"].as_str().unwrap_or("unicast");
    let (dst, prefix) = dst_and_prefix(r["dst"].as_str().unwrap(), "::", 128);
    let hops: Vec<&Value> = match r.get("nexthops") {
        Some(h) => h.as_array().unwrap().iter().collect(),
        None => vec![r],
    };
    hops.into_iter()
        .map(|hop| {
            let mut flags: u64 = match kind {
                "unreachable" | "blackhole" | "prohibit" | "throw" => 0x0020_0200,
                "local" => 0x8020_0001,
                "anycast" => 0x0030_0001,
                _ => 1,
            };
            if hop.get("gateway").is_some() {
                flags |= 2;
            }
            if r.get("expires").is_some() {
                flags |= 0x0040_0000;
            }
            flags |= match r["pref"].as_str() {
                Some("high") => 0x0800_0000,
                Some("low") => 0x1800_0000,
                _ => 0,
            };
            json!({
                "iface": hop["dev"],
                "destination": dst,
                "metric": r["metric"].as_u64().unwrap_or(0),
                "flags": flags,
                "refcnt": 1,
                "use": 0,
                "desprefixlen": prefix.to_string(),
                "source": "::",
                "srcprefixlen": "0",
                "nexthop": hop["gateway"].as_str().unwrap_or("::"),
                "version": 6,
            })
        })
        .collect()
}

fn expected_routes(ns: &Netns) -> Vec<Value> {
    let v4 = ns.json("-4 route show table main");
    let v6 = ns.json("-6 route show table all");
    let mut out: Vec<Value> = v4
        .as_array()
        .unwrap()
        .iter()
        .filter_map(expected_ipv4)
        .collect();
    out.extend(v6.as_array().unwrap().iter().flat_map(expected_ipv6));
    out
}

#[test]
fn routes_as_ip_route_shows_them() {
    let net = Net::new();
    let agent = net.agent();
    let got = qga_ok(&mut agent.raw(), "guest-network-get-route", Value::Null);
    let expected = expected_routes(&net.a);
    let got = got.as_array().unwrap();
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "route {i}");
    }
    assert_eq!(got.len(), expected.len());

    let find = |dst: &str, version: i64| {
        got.iter()
            .filter(|r| r["destination"] == dst && r["version"] == version)
            .collect::<Vec<_>>()
    };
    // The IPv4 main table only; IPv6 from every table, local routes included.
    assert_eq!(find("10.50.0.0", 4).len(), 0, "table 100");
    assert_eq!(find("10.99.0.255", 4).len(), 0, "broadcast");
    assert_eq!(find("fd16::", 6).len(), 1, "table 100");
    assert_eq!(find("fd09::1", 6)[0]["flags"], 0x8020_0001_u64, "local");
    let default = find("0.0.0.0", 4);
    assert_eq!(
        (
            &default[0]["gateway"],
            &default[0]["mask"],
            &default[0]["flags"]
        ),
        (&json!("10.9.0.2"), &json!("0.0.0.0"), &json!(3))
    );
    let host = find("10.40.0.1", 4)[0];
    assert_eq!(
        (&host["mtu"], &host["window"], &host["irtt"], &host["flags"]),
        (&json!(1340), &json!(5000), &json!(100), &json!(5))
    );
    assert_eq!(find("10.30.0.0", 4)[0]["iface"], "*");
    assert_eq!(find("10.92.0.0", 4)[0]["metric"], 4_294_967_295_u64);
    let mp: Vec<&Value> = find("fd18::", 6)
        .into_iter()
        .map(|r| &r["nexthop"])
        .collect();
    assert_eq!(mp, [&json!("fd09::2"), &json!("fd09::3")]);
    assert_eq!(
        qga_fails(
            &mut agent.raw(),
            "guest-network-get-route",
            json!({"family": 2})
        ),
        (
            "GenericError".into(),
            "Parameter 'family' is unexpected".into()
        )
    );
}

/// qemu-ga's per-table "null" route: the kernel's sentinel at the root of each IPv6
/// table (`::/0 dev lo`, metric 0xffffffff read as -1, flags REJECT|NONEXTHOP), which
/// rtnetlink never shows.
fn is_sentinel(r: &Value) -> bool {
    r["version"] == 6 && r["destination"] == "::" && r["desprefixlen"] == "0" && r["metric"] == -1
}

/// A route of qemu-ga's with its deliberate differences from ours undone: flags as the
/// kernel's 32 bits (qemu-ga sign-extends RTF_LOCAL's bit 31 to 64), a metric past
/// 2^31 as the kernel's unsigned value (qemu-ga reads it as -1), and no `refcnt` (the
/// kernel's reference count, which rtnetlink does not report).
fn normalised(r: &Value) -> Value {
    let mut r = r.clone();
    let o: &mut Map<String, Value> = r.as_object_mut().unwrap();
    o.remove("refcnt");
    let flags = o["flags"].as_u64().unwrap() & 0xffff_ffff;
    o.insert("flags".into(), json!(flags));
    if o["metric"] == -1 {
        o.insert("metric".into(), json!(4_294_967_295_u64));
    }
    r
}

#[test]
fn same_as_qemu_ga() {
    let net = Net::new();
    net.ping(3);
    let qga = net.qemu_ga();
    let ours = net.agent();
    let (mut q, mut p) = (qga.raw(), ours.raw());

    // Interfaces: the same entries in the same order, the same members; counters
    // read after qemu-ga's are at least its.
    let theirs = qga_ok(&mut q, "guest-network-get-interfaces", Value::Null);
    let mine = qga_ok(&mut p, "guest-network-get-interfaces", Value::Null);
    assert_eq!(without_statistics(&mine), without_statistics(&theirs));
    assert_eq!(shape(&mine), shape(&theirs));
    for (m, t) in mine
        .as_array()
        .unwrap()
        .iter()
        .zip(theirs.as_array().unwrap())
    {
        assert_eq!(
            m.get("statistics").is_some(),
            t.get("statistics").is_some(),
            "{m} {t}"
        );
        if let (Some(ms), Some(ts)) = (m.get("statistics"), t.get("statistics")) {
            assert!(
                at_most(ts, ms),
                "{}: theirs {ts}, ours after {ms}",
                m["name"]
            );
        }
    }

    // Routes: the same routes in the same order but for qemu-ga's sentinels.
    let theirs = qga_ok(&mut q, "guest-network-get-route", Value::Null);
    let mine = qga_ok(&mut p, "guest-network-get-route", Value::Null);
    let sentinels = theirs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| is_sentinel(r))
        .count();
    assert_eq!(
        sentinels, 3,
        "one per IPv6 table in use (100, main, local): {theirs}"
    );
    let theirs: Vec<&Value> = theirs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !is_sentinel(r))
        .collect();
    let mine: Vec<&Value> = mine.as_array().unwrap().iter().collect();
    for (i, (m, t)) in mine.iter().zip(&theirs).enumerate() {
        assert_eq!(normalised(m), normalised(t), "route {i}");
    }
    assert_eq!(mine.len(), theirs.len());
    // The same members and types, IPv4 and IPv6 routes apart.
    for version in [4, 6] {
        let of = |list: &[&Value]| {
            let v: Vec<Value> = list
                .iter()
                .filter(|r| r["version"] == version)
                .map(|r| (*r).clone())
                .collect();
            shape(&Value::Array(v))
        };
        assert_eq!(of(&mine), of(&theirs), "IPv{version}");
    }

    // The same refusal of arguments.
    for cmd in ["guest-network-get-interfaces", "guest-network-get-route"] {
        let args = json!({"x": 1});
        assert_eq!(
            qga_fails(&mut p, cmd, args.clone()),
            qga_fails(&mut q, cmd, args),
            "{cmd}"
        );
    }
    // Both list both commands.
    for c in [&mut p, &mut q] {
        let info = qga_ok(c, "guest-info", Value::Null);
        for cmd in ["guest-network-get-interfaces", "guest-network-get-route"] {
            let listed = info["supported_commands"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == cmd && e["enabled"] == true);
            assert!(listed, "{cmd}");
        }
    }
}
