//! The network commands against the real binary, each test in a network namespace of
//! its own (the agent runs under `ip netns exec`), checked with `ip -j` in that
//! namespace. Needs root and iproute2; veth and bridge links only.

use std::sync::atomic::{AtomicU32, Ordering};

use phoenix_testkit::{
    call, cidrs, fails, must, must_json, quiet, ret, Launch, RawConn, TestAgent,
};
use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");

/// A network namespace deleted on drop (its links go with it), even when a test fails.
struct Netns {
    name: String,
}

impl Netns {
    /// A fresh namespace with `lo` up and IPv6 duplicate address detection off, so
    /// that addresses are usable at once instead of "tentative".
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "phx-net-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        must("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&[
            "sh",
            "-c",
            "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && \
             echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad",
        ]);
        ns.ip("link set lo up");
        ns
    }

    /// Runs a command inside the namespace.
    fn exec(&self, cmd: &[&str]) {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        must("ip", &args);
    }

    /// `ip -n NS ARGS`, which must succeed.
    fn ip(&self, args: &str) {
        let mut all = vec!["-n", &self.name];
        all.extend(args.split_whitespace());
        must("ip", &all);
    }

    /// `ip -n NS -j ARGS`, parsed.
    fn json(&self, args: &str) -> Value {
        let mut all = vec!["-n", &self.name, "-j"];
        all.extend(args.split_whitespace());
        must_json("ip", &all)
    }

    /// A veth pair `a`/`b`, both up.
    fn veth(&self, a: &str, b: &str) {
        self.ip(&format!("link add {a} type veth peer name {b}"));
        self.ip(&format!("link set {a} up"));
        self.ip(&format!("link set {b} up"));
    }

    /// Waits until each of `devs` has its IPv6 link-local address, which the kernel adds
    /// shortly after the carrier comes up (the link watcher runs deferred), so that the
    /// agent and `ip` see the same addresses and routes.
    fn wait_link_local(&self, devs: &[&str]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let v = self.json("-6 addr show scope link");
            let ready = devs.iter().all(|d| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["ifname"] == *d && !l["addr_info"].as_array().unwrap().is_empty())
            });
            if ready {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no link-local address on {devs:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// How to start the agent inside the namespace.
    fn launch(&self) -> Launch {
        Launch::new(AGENT).wrapper(&["ip", "netns", "exec", &self.name])
    }

    /// The agent, started inside the namespace.
    fn agent(&self) -> TestAgent {
        self.launch().start(&[])
    }

    /// Addresses of `dev` as "ADDR/PREFIX", from `ip -j addr`.
    fn addrs(&self, dev: &str) -> Vec<String> {
        cidrs(&self.json(&format!("addr show dev {dev}"))[0])
    }

    /// Whether `dev` is administratively up, from `ip -j link`.
    fn is_up(&self, dev: &str) -> bool {
        let v = self.json(&format!("link show dev {dev}"));
        v[0]["flags"].as_array().unwrap().contains(&json!("UP"))
    }

    /// The main table's routes of one family as `ip -j route` shows them.
    fn ip_routes(&self, family: &str) -> Vec<Value> {
        let v = self.json(&format!("{family} route show table main"));
        v.as_array().unwrap().clone()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        quiet("ip", &["netns", "del", &self.name]);
    }
}

/// A namespace with veth pair v0/v1 up, v0 holding 10.9.0.1/24 and fd09::1/64, and
/// the agent running inside.
fn setup() -> (TestAgent, Netns) {
    let ns = Netns::new();
    ns.veth("v0", "v1");
    ns.ip("addr add 10.9.0.1/24 dev v0");
    ns.ip("addr add fd09::1/64 dev v0 nodad");
    ns.wait_link_local(&["v0", "v1"]);
    let agent = ns.agent();
    (agent, ns)
}

// ---------------------------------------------------------------- get-netifaces

/// What get-netifaces must say, computed from `ip -j addr`.
fn expected_ifaces(ns: &Netns) -> Value {
    let links = ns.json("addr show");
    let names = [
        ("UP", "up"),
        ("BROADCAST", "broadcast"),
        ("LOOPBACK", "loopback"),
        ("POINTOPOINT", "pointtopoint"),
        ("MULTICAST", "multicast"),
    ];
    let mut out: Vec<Value> = links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let set = l["flags"].as_array().unwrap();
            let flags: Vec<String> = names
                .iter()
                .filter(|(ip_name, _)| set.contains(&json!(ip_name)))
                .map(|(_, wire)| wire.to_string())
                .collect();
            let hw = l["address"].as_str().unwrap_or("");
            let ips = cidrs(l);
            json!({
                "index": l["ifindex"],
                "name": l["ifname"],
                "hwaddr": if hw.bytes().all(|b| b == b'0' || b == b':') { "" } else { hw },
                "flags": if flags.is_empty() { "0".to_string() } else { flags.join("|") },
                "ips": ips,
            })
        })
        .collect();
    out.sort_by_key(|v| v["index"].as_u64());
    Value::Array(out)
}

#[test]
fn netifaces_matches_ip_addr() {
    let (agent, ns) = setup();
    ns.ip("link add br0 type bridge");
    ns.ip("addr add 10.9.1.1/16 dev v1");
    ns.ip("addr add 10.9.2.1/32 dev v1");
    let mut c = agent.raw();
    let got = ret(&c.request(json!({"execute": "get-netifaces"}))).clone();
    assert_eq!(got, expected_ifaces(&ns));

    let list = got.as_array().unwrap();
    assert_eq!(
        list[0],
        json!({"index": 1, "name": "lo", "hwaddr": "", "flags": "up|loopback",
               "ips": ["127.0.0.1/8", "::1/128"]})
    );
    let v0 = list.iter().find(|i| i["name"] == "v0").unwrap();
    assert_eq!(v0["flags"], "up|broadcast|multicast");
    let ips = v0["ips"].as_array().unwrap();
    assert_eq!(ips[0], "10.9.0.1/24", "IPv4 first: {ips:?}");
    assert!(ips.contains(&json!("fd09::1/64")), "{ips:?}");
    assert!(ips
        .iter()
        .any(|i| i.as_str().unwrap().starts_with("fe80::")));
    let hw = v0["hwaddr"].as_str().unwrap();
    assert_eq!((hw.len(), hw.matches(':').count()), (17, 5), "{hw}");
    let br = list.iter().find(|i| i["name"] == "br0").unwrap();
    assert_eq!(br["flags"], "broadcast|multicast");
    assert_eq!(br["ips"], json!([]));
    let indexes: Vec<u64> = list.iter().map(|i| i["index"].as_u64().unwrap()).collect();
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");

    // Empty arguments are fine too.
    let again = ret(&call(&mut c, "get-netifaces", json!({}))).clone();
    assert_eq!(again, got);
}

#[test]
fn netifaces_point_to_point_and_down_links() {
    let ns = Netns::new();
    ns.ip("link set lo down");
    // A tun device: point-to-point, no link-layer address; multicast switched off.
    ns.ip("tuntap add dev t0 mode tun");
    ns.ip("link set t0 multicast off");
    let agent = ns.agent();
    let got = ret(&agent.raw().request(json!({"execute": "get-netifaces"}))).clone();
    // lo down keeps its IPv4 address (IPv6 ones go with the link).
    assert_eq!(
        got,
        json!([
            {"index": 1, "name": "lo", "hwaddr": "", "flags": "loopback", "ips": ["127.0.0.1/8"]},
            {"index": 2, "name": "t0", "hwaddr": "", "flags": "pointtopoint", "ips": []},
        ])
    );
    assert_eq!(got, expected_ifaces(&ns));
}

// ---------------------------------------------------------------- addresses

#[test]
fn ipaddr_add_and_del_ipv4_and_ipv6_through_both_names() {
    let (agent, ns) = setup();
    let mut c = agent.raw();
    let r = call(
        &mut c,
        "ipaddr-add",
        json!({"ip": "10.20.0.5/24", "ifname": "v0"}),
    );
    assert_eq!(ret(&r), &json!(true));
    let r = call(
        &mut c,
        "linux-ipaddr-add",
        json!({"ip": "fd20::5/64", "dev": "v0"}),
    );
    assert_eq!(ret(&r), &json!(true));
    let r = call(
        &mut c,
        "ipaddr-add",
        json!({"ip": "192.168.55.77/32", "ifname": "v1"}),
    );
    assert_eq!(ret(&r), &json!(true));
    let have = ns.addrs("v0");
    assert!(have.contains(&"10.20.0.5/24".into()), "{have:?}");
    assert!(have.contains(&"fd20::5/64".into()), "{have:?}");
    assert!(ns.addrs("v1").contains(&"192.168.55.77/32".into()));
    // The IPv4 address got its subnet's broadcast address, as with `ip addr add`.
    let info = ns.json("addr show dev v0");
    let a = info[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["local"] == "10.20.0.5")
        .unwrap()
        .clone();
    assert_eq!(a["broadcast"], "10.20.0.255");
    // get-netifaces sees them.
    let list = ret(&call(&mut c, "get-netifaces", json!({}))).clone();
    let v0 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "v0")
        .unwrap()
        .clone();
    assert!(v0["ips"].as_array().unwrap().contains(&json!("fd20::5/64")));

    let r = call(
        &mut c,
        "linux-ipaddr-del",
        json!({"ip": "10.20.0.5/24", "ifname": "v0"}),
    );
    assert_eq!(ret(&r), &json!(true));
    let r = call(
        &mut c,
        "ipaddr-del",
        json!({"ip": "fd20::5/64", "dev": "v0"}),
    );
    assert_eq!(ret(&r), &json!(true));
    let have = ns.addrs("v0");
    assert!(
        !have
            .iter()
            .any(|a| a == "10.20.0.5/24" || a == "fd20::5/64"),
        "{have:?}"
    );
    assert!(
        have.contains(&"10.9.0.1/24".into()),
        "others untouched: {have:?}"
    );
}

#[test]
fn ipaddr_errors_carry_the_kernel_errno() {
    let (agent, ns) = setup();
    let mut c = agent.raw();
    let before = ns.addrs("v0");

    for ip in ["10.9.0.1/24", "fd09::1/64"] {
        let (msg, code) = fails(&mut c, "ipaddr-add", json!({"ip": ip, "ifname": "v0"}));
        assert_eq!(code, 17, "{msg}");
        assert!(msg.contains(ip) && msg.contains("v0"), "{msg}");
    }
    for (ip, name) in [
        ("10.9.0.7/24", "ipaddr-del"),
        ("fd09::7/64", "linux-ipaddr-del"),
    ] {
        let (msg, code) = fails(&mut c, name, json!({"ip": ip, "ifname": "v0"}));
        assert_eq!(code, 99, "{msg}");
        assert!(msg.contains(ip) && msg.contains("v0"), "{msg}");
    }
    // Right address, wrong prefix length: not the address that is there.
    let (msg, code) = fails(
        &mut c,
        "ipaddr-del",
        json!({"ip": "10.9.0.1/16", "ifname": "v0"}),
    );
    assert_eq!(code, 99, "{msg}");
    let (msg, code) = fails(
        &mut c,
        "ipaddr-del",
        json!({"ip": "fd09::1/96", "ifname": "v0"}),
    );
    assert_eq!(code, 99, "{msg}");

    for name in [
        "ipaddr-add",
        "ipaddr-del",
        "linux-ipaddr-add",
        "linux-ipaddr-del",
    ] {
        for dev in ["nope0", "", "a-name-far-too-long-for-linux"] {
            let (msg, code) = fails(&mut c, name, json!({"ip": "10.9.9.9/24", "ifname": dev}));
            assert_eq!(code, 19, "{name} {dev}: {msg}");
            assert!(msg.contains("10.9.9.9/24") && msg.contains(dev), "{msg}");
            assert!(msg.ends_with("No such device"), "{msg}");
        }
    }

    // Not CIDR: an invalid-arguments error (-1), before anything reaches the kernel.
    for ip in [
        "10.9.0.50",
        "10.9.0.50/33",
        "fd09::50/129",
        "garbage",
        "10.9.0.50/x",
        "",
    ] {
        let (msg, code) = fails(&mut c, "ipaddr-add", json!({"ip": ip, "ifname": "v0"}));
        assert_eq!(code, -1, "{ip}: {msg}");
        assert!(msg.contains("CIDR"), "{msg}");
    }
    let (msg, code) = fails(&mut c, "ipaddr-add", json!({"ifname": "v0"}));
    assert_eq!(code, -1);
    assert!(msg.contains("missing field `ip`"), "{msg}");
    let (msg, code) = fails(&mut c, "ipaddr-del", json!({"ip": "10.9.0.1/24"}));
    assert_eq!(code, -1);
    assert!(msg.contains("missing field `ifname`"), "{msg}");
    let (_, code) = fails(
        &mut c,
        "ipaddr-add",
        json!({"ip": 167772161, "ifname": "v0"}),
    );
    assert_eq!(code, -1);

    assert_eq!(ns.addrs("v0"), before, "failed requests changed nothing");
    assert!(ret(&c.request(json!({"execute": "ping"}))).is_string());
}

// ---------------------------------------------------------------- link state

#[test]
fn iface_up_and_down() {
    let (agent, ns) = setup();
    let mut c = agent.raw();
    ns.ip("link add br0 type bridge");
    assert!(!ns.is_up("br0"));
    assert_eq!(
        ret(&call(&mut c, "net-iface-up", json!({"ifname": "br0"}))),
        &json!(true)
    );
    assert!(ns.is_up("br0"));
    // Idempotent, as `ip link set up`.
    assert_eq!(
        ret(&call(&mut c, "net-iface-up", json!({"ifname": "br0"}))),
        &json!(true)
    );
    assert_eq!(
        ret(&call(&mut c, "net-iface-down", json!({"ifname": "v0"}))),
        &json!(true)
    );
    assert!(!ns.is_up("v0"));
    assert!(ns.is_up("v1"));
    let list = ret(&call(&mut c, "get-netifaces", json!({}))).clone();
    let flags = |n: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == n)
            .unwrap()["flags"]
            .clone()
    };
    assert_eq!(flags("v0"), "broadcast|multicast");
    assert_eq!(flags("br0"), "up|broadcast|multicast");
    assert_eq!(
        ret(&call(&mut c, "net-iface-up", json!({"dev": "v0"}))),
        &json!(true)
    );
    assert!(ns.is_up("v0"));

    for name in ["net-iface-up", "net-iface-down"] {
        let (msg, code) = fails(&mut c, name, json!({"ifname": "nope0"}));
        assert_eq!(code, 19, "{msg}");
        assert!(msg.contains("nope0"), "{msg}");
        let (msg, code) = fails(&mut c, name, json!({}));
        assert_eq!(code, -1);
        assert!(msg.contains("missing field `ifname`"), "{msg}");
    }
}

// ---------------------------------------------------------------- routes

/// `ip -j route` entries in the wire shape of get-route-list.
fn wire_routes(ns: &Netns, family: &str) -> Vec<Value> {
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

fn sorted(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v.as_array().unwrap().iter().map(Value::to_string).collect();
    s.sort();
    s
}

fn sorted_vec(v: Vec<Value>) -> Vec<String> {
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

#[test]
fn every_command_is_listed() {
    let (agent, _ns) = setup();
    let names = ret(&agent.raw().request(json!({"execute": "get-commands"}))).clone();
    for n in [
        "get-netifaces",
        "ipaddr-add",
        "ipaddr-del",
        "linux-ipaddr-add",
        "linux-ipaddr-del",
        "net-iface-up",
        "net-iface-down",
        "get-route-list",
        "route-add",
        "route-del",
    ] {
        assert!(names.as_array().unwrap().contains(&json!(n)), "{n}");
    }
}

// ------------------------------------------------- interface names kept between calls

/// get-route-list (both families) against `ip -j route` in the namespace.
fn assert_routes_match(c: &mut RawConn, ns: &Netns) -> Value {
    let mut want = wire_routes(ns, "-4");
    want.extend(wire_routes(ns, "-6"));
    let got = ret(&call(c, "get-route-list", json!({}))).clone();
    assert_eq!(sorted(&got), sorted_vec(want));
    got
}

/// The interface names the routes of a listing use.
fn route_ifnames(list: &Value) -> std::collections::BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["ifname"].as_str().unwrap().to_string())
        .collect()
}

fn ifindex(ns: &Netns, dev: &str) -> u64 {
    ns.json(&format!("link show dev {dev}"))[0]["ifindex"]
        .as_u64()
        .unwrap()
}

#[test]
fn route_list_follows_renamed_links() {
    let (agent, ns) = setup();
    ns.ip("addr add 10.8.0.1/24 dev v1");
    let mut c = agent.raw();
    // The first listing takes the names; the second must see them swapped.
    let first = assert_routes_match(&mut c, &ns);
    assert!(route_ifnames(&first).is_superset(&["v0".into(), "v1".into()].into()));
    let (i0, i1) = (ifindex(&ns, "v0"), ifindex(&ns, "v1"));
    for cmd in [
        "link set v0 down",
        "link set v1 down",
        "link set v0 name tmp0",
        "link set v1 name v0",
        "link set tmp0 name v1",
        "link set v0 up",
        "link set v1 up",
        "route add 10.40.0.0/24 dev v0",
        "route add 10.41.0.0/24 dev v1",
    ] {
        ns.ip(cmd);
    }
    ns.wait_link_local(&["v0", "v1"]);
    assert_eq!((ifindex(&ns, "v1"), ifindex(&ns, "v0")), (i0, i1));
    let after = assert_routes_match(&mut c, &ns);
    let r40 = after
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dst"]["ip"] == "10.40.0.0")
        .unwrap();
    assert_eq!(r40["ifname"], "v0");
    // And once more with nothing changed in between.
    assert_eq!(sorted(&assert_routes_match(&mut c, &ns)), sorted(&after));
}

#[test]
fn route_list_follows_deleted_links_and_reused_indexes() {
    let (agent, ns) = setup();
    let mut c = agent.raw();
    assert_routes_match(&mut c, &ns);
    let (i0, i1) = (ifindex(&ns, "v0"), ifindex(&ns, "v1"));
    ns.ip("link del v0");
    // Between the two calls the pair's indexes come back, crossed and under new names.
    ns.ip(&format!(
        "link add n0 index {i1} type veth peer name n1 index {i0}"
    ));
    assert_eq!((ifindex(&ns, "n0"), ifindex(&ns, "n1")), (i1, i0));
    ns.ip("link set n0 up");
    ns.ip("link set n1 up");
    ns.ip("addr add 10.9.0.1/24 dev n0");
    ns.ip("route add 10.43.0.0/24 dev n1");
    ns.wait_link_local(&["n0", "n1"]);
    let after = assert_routes_match(&mut c, &ns);
    let names = route_ifnames(&after);
    assert!(names.contains("n0") && names.contains("n1"), "{names:?}");
    assert!(!names.contains("v0") && !names.contains("v1"), "{names:?}");
}

#[test]
fn route_list_relists_links_after_lost_notifications() {
    let ns = Netns::new();
    ns.veth("v0", "v1");
    ns.ip("addr add 10.9.0.1/24 dev v0");
    ns.wait_link_local(&["v0", "v1"]);
    // No IPv6 on the links to come: their routes then settle at once.
    ns.exec(&[
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
    ]);
    let log = tempfile::NamedTempFile::new().unwrap();
    let log_path = log.path().to_str().unwrap();
    let agent = ns.launch().start(&["--debug", "--log-file", log_path]);
    let mut c = agent.raw();
    assert_routes_match(&mut c, &ns);

    // Far more link notifications than the subscription's receive buffer holds (each
    // is a few KiB): 300 pairs created, half deleted, the rest renamed, up, routed.
    let pairs = 300;
    let mut batch = String::new();
    for i in 0..pairs {
        batch += &format!("link add p{i} type veth peer name q{i}\n");
    }
    for i in (0..pairs).step_by(2) {
        batch += &format!("link del p{i}\n");
    }
    for i in (1..pairs).step_by(2) {
        batch += &format!(
            "link set q{i} name r{i}\nlink set p{i} up\nlink set r{i} up\n\
             route add 10.77.{}.{}/32 dev r{i}\n",
            i / 256,
            i % 256
        );
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, batch.as_bytes()).unwrap();
    ns.ip(&format!("-batch {}", file.path().display()));

    let after = assert_routes_match(&mut c, &ns);
    let names = route_ifnames(&after);
    assert!(names.contains("r1") && names.contains(&format!("r{}", pairs - 1)));
    assert!(!names.iter().any(|n| n.starts_with('q')), "{names:?}");
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        text.contains("link notifications overflowed the socket"),
        "the test did not overflow the subscription"
    );
    // The rebuilt cache follows later changes again.
    ns.ip("link set r1 down");
    ns.ip("link set r1 name s1");
    ns.ip("link set s1 up");
    ns.ip("route add 10.78.0.1/32 dev s1");
    let last = assert_routes_match(&mut c, &ns);
    assert!(route_ifnames(&last).contains("s1"));
}

#[test]
fn concurrent_route_lists_share_the_names() {
    let (agent, ns) = setup();
    ns.ip("route add 10.44.0.0/24 dev v1");
    let mut want = wire_routes(&ns, "-4");
    want.extend(wire_routes(&ns, "-6"));
    let want = sorted_vec(want);
    // Several first calls at once (each worker may find no names yet), then again.
    for round in 0..2 {
        let mut c = agent.raw();
        let mut batch = Vec::new();
        for i in 0..8 {
            let req = json!({"execute": "get-route-list", "tag": format!("r{round}-{i}")});
            batch.extend_from_slice(format!("{req}\r\n").as_bytes());
        }
        c.send(&batch);
        for _ in 0..8 {
            assert_eq!(sorted(ret(&c.recv())), want, "round {round}");
        }
    }
}
