//! get-route-list against `ip -j route`, route-add and route-del in every spelling,
//! the kernel's errnos.

use phoenix_testkit::{call, fails, ret, RawConn};
use serde_json::{json, Value};

use crate::netns::{setup, Netns};

/// `ip -j route` entries in the wire shape of get-route-list.
pub(crate) fn wire_routes(ns: &Netns, family: &str) -> Vec<Value> {
    let v6 = family == "-6";
    ns.ip_routes(family)
        .iter()
        .map(|r| {
            let dst = r["dst"].as_str().unwrap();
            let dst = if dst == "default" {
                json!({"ip": "", "mask": ""})
            } else {
                let (ip, len) = match dst.split_once('/') {
                    Some((ip, len)) => (ip, len.parse::<u32>().unwrap()),
                    None => (dst, if v6 { 128 } else { 32 }),
                };
                let mask = if v6 {
                    std::net::Ipv6Addr::from(u128::MAX.checked_shl(128 - len).unwrap_or(0))
                        .to_string()
                } else {
                    std::net::Ipv4Addr::from(u32::MAX.checked_shl(32 - len).unwrap_or(0))
                        .to_string()
                };
                json!({"ip": ip, "mask": mask})
            };
            let scope = match r["scope"].as_str() {
                None | Some("global") => 0,
                Some("link") => 253,
                Some("host") => 254,
                Some(s) => panic!("scope {s}"),
            };
            // A multipath route: the agent shows its first hop.
            let hop = r.get("nexthops").map_or(r, |h| &h[0]);
            json!({
                "ifname": hop["dev"].as_str().unwrap_or(""),
                "scope": scope,
                "dst": dst,
                "src": r["prefsrc"].as_str().unwrap_or(""),
                "gateway": hop["gateway"].as_str().unwrap_or(""),
            })
        })
        .collect()
}

pub(crate) fn sorted(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v.as_array().unwrap().iter().map(Value::to_string).collect();
    s.sort();
    s
}

pub(crate) fn sorted_vec(v: Vec<Value>) -> Vec<String> {
    sorted(&Value::Array(v))
}

#[test]
fn route_list_matches_ip_route() {
    let (agent, ns) = setup();
    ns.ip("addr add 10.8.0.1/24 dev v1");
    ns.ip("route add default via 10.9.0.254");
    ns.ip("route add 10.50.0.0/16 via 10.9.0.254 dev v0");
    ns.ip("route add 10.60.0.0/24 dev v0 scope link src 10.9.0.1");
    ns.ip("route add 10.61.0.0/24 dev v1 scope host");
    ns.ip("route add 10.62.0.7 via 10.8.0.254");
    ns.ip("route add 10.63.0.0/24 nexthop via 10.8.0.254 dev v1 nexthop via 10.9.0.254 dev v0");
    ns.ip("route add blackhole 10.64.0.0/24");
    ns.ip("-6 route add default via fd09::fe");
    ns.ip("-6 route add fd99::/64 via fd09::fe dev v0");
    ns.ip("-6 route add fd98::/48 dev v0 src fd09::1");
    // Other tables are not listed.
    ns.ip("route add 10.70.0.0/16 via 10.9.0.254 table 100");
    ns.ip("-6 route add fd70::/64 via fd09::fe table 100");

    let mut c = agent.raw();
    let v4 = ret(&call(&mut c, "get-route-list", json!({"family": 2}))).clone();
    let v6 = ret(&call(&mut c, "get-route-list", json!({"family": 10}))).clone();
    assert_eq!(sorted(&v4), sorted_vec(wire_routes(&ns, "-4")));
    assert_eq!(sorted(&v6), sorted_vec(wire_routes(&ns, "-6")));
    let mut both = wire_routes(&ns, "-4");
    both.extend(wire_routes(&ns, "-6"));
    let all = ret(&call(&mut c, "get-route-list", json!({"family": 0}))).clone();
    assert_eq!(sorted(&all), sorted_vec(both));
    // Without `arguments` at all (the original crashed here), and with `{}`.
    let bare = ret(&c.request(json!({"execute": "get-route-list"}))).clone();
    assert_eq!(sorted(&bare), sorted(&all));
    let empty = ret(&call(&mut c, "get-route-list", json!({}))).clone();
    assert_eq!(sorted(&empty), sorted(&all));

    // Spot checks of the exact shapes.
    let has = |list: &Value, r: Value| list.as_array().unwrap().contains(&r);
    assert!(
        has(
            &v4,
            json!({"ifname": "v0", "scope": 0, "dst": {"ip": "", "mask": ""},
                            "src": "", "gateway": "10.9.0.254"})
        ),
        "{v4}"
    );
    assert!(
        has(
            &v4,
            json!({"ifname": "v0", "scope": 253,
                            "dst": {"ip": "10.60.0.0", "mask": "255.255.255.0"},
                            "src": "10.9.0.1", "gateway": ""})
        ),
        "{v4}"
    );
    assert!(
        has(
            &v4,
            json!({"ifname": "v1", "scope": 254,
                            "dst": {"ip": "10.61.0.0", "mask": "255.255.255.0"},
                            "src": "", "gateway": ""})
        ),
        "{v4}"
    );
    assert!(
        has(
            &v4,
            json!({"ifname": "v1", "scope": 0,
                            "dst": {"ip": "10.62.0.7", "mask": "255.255.255.255"},
                            "src": "", "gateway": "10.8.0.254"})
        ),
        "{v4}"
    );
    assert!(
        has(
            &v4,
            json!({"ifname": "v1", "scope": 0,
                            "dst": {"ip": "10.63.0.0", "mask": "255.255.255.0"},
                            "src": "", "gateway": "10.8.0.254"})
        ),
        "{v4}"
    );
    assert!(
        has(
            &v4,
            json!({"ifname": "", "scope": 0,
                            "dst": {"ip": "10.64.0.0", "mask": "255.255.255.0"},
                            "src": "", "gateway": ""})
        ),
        "{v4}"
    );
    assert!(
        has(
            &v6,
            json!({"ifname": "v0", "scope": 0,
                            "dst": {"ip": "fd99::", "mask": "ffff:ffff:ffff:ffff::"},
                            "src": "", "gateway": "fd09::fe"})
        ),
        "{v6}"
    );
    assert!(
        has(
            &v6,
            json!({"ifname": "v0", "scope": 0,
                            "dst": {"ip": "fd98::", "mask": "ffff:ffff:ffff::"},
                            "src": "fd09::1", "gateway": ""})
        ),
        "{v6}"
    );
    assert!(
        has(
            &v6,
            json!({"ifname": "v0", "scope": 0, "dst": {"ip": "", "mask": ""},
                            "src": "", "gateway": "fd09::fe"})
        ),
        "{v6}"
    );
    assert!(!all.to_string().contains("10.70.0.0") && !all.to_string().contains("fd70::"));
    assert!(v4
        .as_array()
        .unwrap()
        .iter()
        .all(|r| !r["gateway"].as_str().unwrap().contains(':')));

    for family in [json!(1), json!(3), json!(-1), json!(99), json!(65538)] {
        let (msg, code) = fails(&mut c, "get-route-list", json!({"family": family}));
        assert_eq!(code, -1, "{family}: {msg}");
        assert!(msg.contains("family"), "{msg}");
    }
    let (_, code) = fails(&mut c, "get-route-list", json!({"family": "2"}));
    assert_eq!(code, -1);
}

/// Whether `ip -j route` of `family` holds a route to `dst` (as ip prints it) with
/// the given extra members.
fn ip_has_route(ns: &Netns, family: &str, dst: &str, with: &[(&str, &str)]) -> bool {
    ns.ip_routes(family)
        .iter()
        .any(|r| r["dst"] == dst && with.iter().all(|(k, v)| r[*k].as_str() == Some(*v)))
}

#[test]
fn route_add_and_del_with_gateway_src_and_scope() {
    let (agent, ns) = setup();
    let mut c = agent.raw();
    let ok = |c: &mut RawConn, name: &str, args: Value| {
        let r = call(c, name, args.clone());
        assert_eq!(ret(&r), &json!(true), "{name} {args}");
    };

    // With a gateway; host bits of dst are cleared as the original did.
    ok(
        &mut c,
        "route-add",
        json!({"ifname": "v0", "dst": "10.30.1.2/16", "src": "",
                                   "gateway": "10.9.0.254"}),
    );
    assert!(ip_has_route(
        &ns,
        "-4",
        "10.30.0.0/16",
        &[("gateway", "10.9.0.254"), ("dev", "v0")]
    ));
    // With a source and scope link.
    ok(
        &mut c,
        "route-add",
        json!({"ifname": "v0", "dst": "10.31.0.0/24", "src": "10.9.0.1",
                                   "scope": 253}),
    );
    assert!(ip_has_route(
        &ns,
        "-4",
        "10.31.0.0/24",
        &[("prefsrc", "10.9.0.1"), ("scope", "link")]
    ));
    // Scope host.
    ok(
        &mut c,
        "route-add",
        json!({"ifname": "v1", "dst": "10.32.0.0/24", "scope": 254}),
    );
    assert!(ip_has_route(
        &ns,
        "-4",
        "10.32.0.0/24",
        &[("scope", "host"), ("dev", "v1")]
    ));
    // IPv6 with gateway and with source.
    ok(
        &mut c,
        "route-add",
        json!({"ifname": "v0", "dst": "fd30::/64", "gateway": "fd09::fe"}),
    );
    assert!(ip_has_route(
        &ns,
        "-6",
        "fd30::/64",
        &[("gateway", "fd09::fe")]
    ));
    ok(
        &mut c,
        "route-add",
        json!({"ifname": "v0", "dst": "fd31::/48", "src": "fd09::1"}),
    );
    assert!(ip_has_route(
        &ns,
        "-6",
        "fd31::/48",
        &[("prefsrc", "fd09::1")]
    ));

    // The listing shows what was added.
    let list = ret(&call(&mut c, "get-route-list", json!({}))).clone();
    assert!(list
        .as_array()
        .unwrap()
        .contains(&json!({"ifname": "v0", "scope": 253,
        "dst": {"ip": "10.31.0.0", "mask": "255.255.255.0"}, "src": "10.9.0.1", "gateway": ""})));

    // Delete: scope need not be repeated (any scope matches when it is absent).
    ok(
        &mut c,
        "route-del",
        json!({"ifname": "v0", "dst": "10.30.0.0/16", "src": "",
                                   "gateway": "10.9.0.254"}),
    );
    assert!(!ip_has_route(&ns, "-4", "10.30.0.0/16", &[]));
    ok(
        &mut c,
        "route-del",
        json!({"ifname": "v0", "dst": "10.31.0.0/24"}),
    );
    assert!(!ip_has_route(&ns, "-4", "10.31.0.0/24", &[]));
    ok(
        &mut c,
        "route-del",
        json!({"ifname": "v1", "dst": "10.32.0.0/24", "scope": 254}),
    );
    assert!(!ip_has_route(&ns, "-4", "10.32.0.0/24", &[]));
    ok(
        &mut c,
        "route-del",
        json!({"ifname": "v0", "dst": "fd30::/64", "gateway": "fd09::fe"}),
    );
    assert!(!ip_has_route(&ns, "-6", "fd30::/64", &[]));
    ok(
        &mut c,
        "route-del",
        json!({"dev": "v0", "dst": "fd31::/48"}),
    );
    assert!(!ip_has_route(&ns, "-6", "fd31::/48", &[]));
    assert!(
        ip_has_route(&ns, "-4", "10.9.0.0/24", &[]),
        "kernel routes untouched"
    );
}

#[test]
fn default_routes_in_every_spelling() {
    let (agent, ns) = setup();
    let mut c = agent.raw();
    let cases = [
        (
            "-4",
            json!({"ifname": "v0", "dst": "default", "gateway": "10.9.0.254"}),
        ),
        (
            "-4",
            json!({"ifname": "v0", "dst": "0.0.0.0/0", "gateway": "10.9.0.253"}),
        ),
        (
            "-6",
            json!({"ifname": "v0", "dst": "::/0", "gateway": "fd09::fe"}),
        ),
        (
            "-6",
            json!({"ifname": "v0", "dst": "default", "gateway": "fd09::fd"}),
        ),
        (
            "-4",
            json!({"ifname": "v0", "dst": "default", "src": "10.9.0.1"}),
        ),
    ];
    for (family, args) in cases {
        assert_eq!(
            ret(&call(&mut c, "route-add", args.clone())),
            &json!(true),
            "{args}"
        );
        let gw = args["gateway"].as_str();
        let with: Vec<(&str, &str)> = gw.map(|g| ("gateway", g)).into_iter().collect();
        assert!(
            ip_has_route(&ns, family, "default", &with),
            "{args}: {:?}",
            ns.ip_routes(family)
        );
        let list = ret(&call(&mut c, "get-route-list", json!({}))).clone();
        let shown = list.as_array().unwrap().iter().any(|r| {
            r["dst"] == json!({"ip": "", "mask": ""})
                && r["gateway"].as_str() == Some(gw.unwrap_or(""))
        });
        assert!(shown, "{args}: {list}");
        assert_eq!(
            ret(&call(&mut c, "route-del", args.clone())),
            &json!(true),
            "{args}"
        );
        assert!(!ip_has_route(&ns, family, "default", &[]), "{args}");
    }
}

#[test]
fn route_errors_carry_the_kernel_errno() {
    let (agent, ns) = setup();
    let mut c = agent.raw();
    let before4 = ns.ip_routes("-4");

    // Deleting a missing route: ESRCH.
    for args in [
        json!({"ifname": "v0", "dst": "10.40.0.0/16"}),
        json!({"ifname": "v0", "dst": "fd40::/64"}),
        json!({"ifname": "v0", "dst": "default"}),
        json!({"ifname": "v0", "dst": "10.9.0.0/24", "gateway": "10.9.0.9"}),
    ] {
        let (msg, code) = fails(&mut c, "route-del", args.clone());
        assert_eq!(code, 3, "{args}: {msg}");
        assert!(msg.contains("v0"), "{msg}");
    }
    // Adding one twice: EEXIST.
    let add = json!({"ifname": "v0", "dst": "10.41.0.0/16", "gateway": "10.9.0.254"});
    assert_eq!(ret(&call(&mut c, "route-add", add.clone())), &json!(true));
    let (msg, code) = fails(&mut c, "route-add", add);
    assert_eq!(code, 17, "{msg}");
    assert!(
        msg.contains("10.41.0.0/16") && msg.contains("10.9.0.254"),
        "{msg}"
    );
    // Unknown interface: ENODEV.
    for name in ["route-add", "route-del"] {
        let (msg, code) = fails(
            &mut c,
            name,
            json!({"ifname": "nope0", "dst": "10.42.0.0/16"}),
        );
        assert_eq!(code, 19, "{msg}");
        assert!(msg.contains("nope0"), "{msg}");
    }
    // An unreachable gateway: the kernel's ENETUNREACH, passed through.
    let (msg, code) = fails(
        &mut c,
        "route-add",
        json!({"ifname": "v0", "dst": "10.43.0.0/16", "gateway": "172.31.0.1"}),
    );
    assert_eq!(code, 101, "{msg}");
    // A source address the guest does not own: the kernel's EINVAL.
    let (msg, code) = fails(
        &mut c,
        "route-add",
        json!({"ifname": "v0", "dst": "10.45.0.0/16", "src": "172.31.0.1"}),
    );
    assert_eq!(code, 22, "{msg}");
    assert!(msg.contains("src 172.31.0.1"), "{msg}");

    // Argument errors (-1): wrong-family gateway or source, bad dst, bad addresses.
    for args in [
        json!({"ifname": "v0", "dst": "10.44.0.0/16", "gateway": "fd09::fe"}),
        json!({"ifname": "v0", "dst": "fd44::/64", "gateway": "10.9.0.254"}),
        json!({"ifname": "v0", "dst": "fd44::/64", "src": "10.9.0.1"}),
        json!({"ifname": "v0", "dst": "::/0", "gateway": "10.9.0.254"}),
        json!({"ifname": "v0", "dst": "default", "gateway": "10.9.0.254", "src": "fd09::1"}),
        json!({"ifname": "v0", "dst": "10.44.0.1"}),
        json!({"ifname": "v0", "dst": "nowhere"}),
        json!({"ifname": "v0", "dst": "10.44.0.0/16", "gateway": "gw"}),
        json!({"ifname": "v0", "dst": "10.44.0.0/16", "scope": 300}),
        json!({"ifname": "v0"}),
        json!({"dst": "10.44.0.0/16"}),
    ] {
        for name in ["route-add", "route-del"] {
            let (msg, code) = fails(&mut c, name, args.clone());
            assert_eq!(code, -1, "{name} {args}: {msg}");
        }
    }
    let (msg, _) = fails(
        &mut c,
        "route-add",
        json!({"ifname": "v0", "dst": "10.44.0.0/16", "gateway": "fd09::fe"}),
    );
    assert_eq!(
        msg,
        "route-add: invalid arguments: gateway fd09::fe is IPv6 but dst 10.44.0.0/16 is IPv4"
    );

    let mut after = ns.ip_routes("-4");
    after.retain(|r| r["dst"] != "10.41.0.0/16");
    assert_eq!(after, before4, "failed requests changed nothing");
    assert!(ret(&c.request(json!({"execute": "ping"}))).is_string());
}
