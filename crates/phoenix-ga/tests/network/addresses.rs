//! ipaddr-add and ipaddr-del (and their linux- names): IPv4 and IPv6, the kernel's errnos.

use phoenix_testkit::{call, fails, ret};
use serde_json::json;

use crate::netns::setup;

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
