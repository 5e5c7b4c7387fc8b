//! net-iface-up and net-iface-down.

use phoenix_testkit::{call, fails, ret};
use serde_json::json;

use crate::netns::setup;

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
