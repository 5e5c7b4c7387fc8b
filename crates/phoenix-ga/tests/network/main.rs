//! The network commands against the real binary, each test in a network namespace of
//! its own (the agent runs under `ip netns exec`), checked with `ip -j` in that
//! namespace. Needs root and iproute2; veth and bridge links only.

mod addresses;
mod interfaces;
mod links;
mod netns;
mod qga;
mod route_names;
mod routes;

use phoenix_testkit::ret;
use serde_json::json;

use netns::setup;

/// The agent binary under test.
const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");

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
