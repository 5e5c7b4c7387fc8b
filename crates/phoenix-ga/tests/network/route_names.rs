//! get-route-list names interfaces from a cache kept between calls: it must follow
//! renamed and deleted links, reused indexes and lost link notifications.

use phoenix_testkit::{call, ret, RawConn};
use serde_json::{json, Value};

use crate::netns::{setup, Netns};
use crate::routes::{sorted, sorted_vec, wire_routes};

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
