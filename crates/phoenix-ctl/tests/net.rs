//! ip addr, ip link and ip route, human and JSON output, in a network namespace of
//! the agent's own (only `lo`): checked with `ip -j` inside that namespace.

mod common;

use common::{fails, json, ok, TestAgent};
use phoenix_testkit::{cidrs, must_json};
use serde_json::Value;

/// `ip -j ARGS` in the agent's namespace, parsed.
fn ip_j(agent: &TestAgent, args: &[&str]) -> Value {
    let pid = agent.pid().to_string();
    let mut all = vec!["-t", &pid, "-n", "ip", "-j"];
    all.extend_from_slice(args);
    must_json("nsenter", &all)
}

fn lo_addrs(agent: &TestAgent) -> Vec<String> {
    cidrs(&ip_j(agent, &["addr", "show", "dev", "lo"])[0])
}

#[test]
fn link_and_addresses() {
    let agent = TestAgent::in_netns(&[]);
    assert!(!ip_j(&agent, &["link", "show", "lo"])[0]["flags"]
        .as_array()
        .unwrap()
        .contains(&"UP".into()));
    assert_eq!(ok(&agent, &["ip", "link", "set", "lo", "up"]), "");
    assert!(ip_j(&agent, &["link", "show", "lo"])[0]["flags"]
        .as_array()
        .unwrap()
        .contains(&"UP".into()));

    assert_eq!(
        ok(&agent, &["ip", "addr", "add", "10.9.0.1/24", "dev", "lo"]),
        ""
    );
    assert_eq!(
        json(&agent, &["ip", "addr", "add", "fd00:9::1/64", "dev", "lo"]),
        true
    );
    let addrs = lo_addrs(&agent);
    assert!(addrs.contains(&"10.9.0.1/24".to_string()), "{addrs:?}");
    assert!(addrs.contains(&"fd00:9::1/64".to_string()), "{addrs:?}");

    let text = ok(&agent, &["ip", "addr", "show"]);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("IDX  NAME  FLAGS"), "{text}");
    let lo = lines.next().unwrap();
    assert!(lo.contains(" lo ") && lo.contains("up|loopback"), "{text}");
    assert!(
        lo.contains("10.9.0.1/24") && lo.contains("fd00:9::1/64"),
        "{text}"
    );
    assert_eq!(
        ok(&agent, &["ip", "addr"]),
        text,
        "`ip addr` is `ip addr show`"
    );
    assert_eq!(ok(&agent, &["ip", "link"]), text);

    let v = json(&agent, &["ip", "addr", "show"]);
    let lo = &v.as_array().unwrap()[0];
    assert_eq!(lo["name"], "lo");
    assert_eq!(lo["hwaddr"], "");
    assert!(lo["ips"]
        .as_array()
        .unwrap()
        .contains(&"10.9.0.1/24".into()));

    assert_eq!(
        ok(&agent, &["ip", "addr", "del", "10.9.0.1/24", "dev", "lo"]),
        ""
    );
    assert!(!lo_addrs(&agent).contains(&"10.9.0.1/24".to_string()));
    let (code, err) = fails(&agent, &["ip", "addr", "del", "10.9.0.1/24", "dev", "lo"]);
    assert_eq!(code, 1);
    assert!(err.contains("(EADDRNOTAVAIL, 99)"), "{err}");
    let (code, err) = fails(&agent, &["ip", "link", "set", "nosuch0", "up"]);
    assert_eq!(code, 1);
    assert!(err.contains("(ENODEV, 19)"), "{err}");
    let (code, _) = fails(&agent, &["ip", "addr", "add", "10.9.0.1/24", "lo"]);
    assert_eq!(code, 2, "the word `dev` is required");

    assert_eq!(ok(&agent, &["ip", "link", "set", "lo", "down"]), "");
    assert!(!ip_j(&agent, &["link", "show", "lo"])[0]["flags"]
        .as_array()
        .unwrap()
        .contains(&"UP".into()));
}

#[test]
fn routes() {
    let agent = TestAgent::in_netns(&[]);
    ok(&agent, &["ip", "link", "set", "lo", "up"]);
    ok(&agent, &["ip", "addr", "add", "10.9.0.1/24", "dev", "lo"]);
    assert_eq!(
        ok(
            &agent,
            &[
                "ip",
                "route",
                "add",
                "10.20.0.0/16",
                "via",
                "10.9.0.2",
                "dev",
                "lo"
            ]
        ),
        ""
    );
    assert_eq!(
        json(
            &agent,
            &[
                "ip",
                "route",
                "add",
                "10.30.0.0/16",
                "dev",
                "lo",
                "scope",
                "link",
                "src",
                "10.9.0.1"
            ]
        ),
        true
    );
    let table = ip_j(&agent, &["route", "show", "table", "main"]);
    let dsts: Vec<&str> = table
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dst"].as_str().unwrap())
        .collect();
    assert!(
        dsts.contains(&"10.20.0.0/16") && dsts.contains(&"10.30.0.0/16"),
        "{dsts:?}"
    );

    let text = ok(&agent, &["ip", "route", "show", "-4"]);
    assert!(
        text.contains("10.20.0.0/16 via 10.9.0.2 dev lo\n"),
        "{text}"
    );
    assert!(
        text.contains("10.30.0.0/16 dev lo scope link src 10.9.0.1\n"),
        "{text}"
    );
    assert!(ok(&agent, &["ip", "route"]).lines().count() >= 2);

    let v = json(&agent, &["ip", "route", "show", "-4"]);
    let r = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dst"]["ip"] == "10.20.0.0")
        .unwrap();
    assert_eq!(r["dst"]["mask"], "255.255.0.0");
    assert_eq!(r["gateway"], "10.9.0.2");
    assert_eq!(r["ifname"], "lo");
    let v6 = json(&agent, &["ip", "route", "show", "-6"]);
    assert!(v6
        .as_array()
        .unwrap()
        .iter()
        .all(|r| !r["dst"]["ip"].as_str().unwrap().contains('.')));

    assert_eq!(
        ok(&agent, &["ip", "route", "del", "10.30.0.0/16", "dev", "lo"]),
        ""
    );
    let text = ok(&agent, &["ip", "route", "show", "-4"]);
    assert!(!text.contains("10.30.0.0/16"), "{text}");
    let (code, err) = fails(&agent, &["ip", "route", "del", "10.30.0.0/16", "dev", "lo"]);
    assert_eq!(code, 1);
    assert!(err.contains("(ESRCH, 3)"), "{err}");
    let (code, err) = fails(
        &agent,
        &["ip", "route", "add", "10.40.0.0/16", "via", "10.9.0.2"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("dev IFNAME"), "{err}");
    let (code, _) = fails(
        &agent,
        &[
            "ip",
            "route",
            "add",
            "10.40.0.0/16",
            "dev",
            "lo",
            "scope",
            "far",
        ],
    );
    assert_eq!(code, 2);
}
