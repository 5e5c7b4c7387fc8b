//! get-netifaces against `ip -j addr`.

use phoenix_testkit::{call, cidrs, ret};
use serde_json::{json, Value};

use crate::netns::{setup, Netns};

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
