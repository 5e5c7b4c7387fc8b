//! Network commands against the guest's virtio NIC: get-netifaces, addresses, link
//! state and routes, each checked with the guest's own `ip` and /sys.

use phoenix_e2e::{Guest, NIC};
use serde_json::{json, Value};

use crate::{call, family_guest};

/// Restores eth0 as /init configured it (up, with its default route), whatever happened.
struct Restore<'a>(&'a Guest);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let script = format!(
            "ip link set {NIC} up; ip addr del 192.0.2.10/24 dev {NIC} 2>/dev/null; \
             ip route del 198.51.100.0/24 2>/dev/null; \
             ip route add default via 10.0.2.2 2>/dev/null; true"
        );
        let _ = self.0.try_run(&script, std::time::Duration::from_secs(30));
    }
}

fn iface<'a>(ifaces: &'a Value, name: &str) -> &'a Value {
    ifaces
        .as_array()
        .expect("a list")
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {ifaces}"))
}

fn ips(iface: &Value) -> Vec<&str> {
    iface["ips"]
        .as_array()
        .expect("ips")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// IFF_UP in /sys/class/net/NIC/flags.
fn link_up(g: &Guest) -> bool {
    let flags = g.sh_ok(&format!("cat /sys/class/net/{NIC}/flags"));
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    flags & 1 == 1
}

#[test]
fn netifaces_show_eth0_and_lo() {
    let Some(g) = family_guest("network") else {
        return;
    };
    let c = g.client();
    let all = call(&c, "get-netifaces", json!({}));
    let eth0 = iface(&all, NIC);
    let mac = g.sh_ok(&format!("cat /sys/class/net/{NIC}/address"));
    assert_eq!(eth0["hwaddr"], mac.trim());
    let index = g.sh_ok(&format!("cat /sys/class/net/{NIC}/ifindex"));
    assert_eq!(eth0["index"], index.trim().parse::<u64>().unwrap());
    assert!(ips(eth0).contains(&"10.0.2.15/24"), "{eth0}");
    let flags: Vec<&str> = eth0["flags"].as_str().unwrap().split('|').collect();
    assert!(
        flags.contains(&"up") && flags.contains(&"broadcast"),
        "{eth0}"
    );
    let lo = iface(&all, "lo");
    assert_eq!(lo["hwaddr"], "");
    assert!(ips(lo).contains(&"127.0.0.1/8"), "{lo}");
    assert!(lo["flags"].as_str().unwrap().contains("loopback"), "{lo}");
}

#[test]
fn address_link_and_route_changes_show_in_the_guest() {
    let Some(g) = family_guest("network") else {
        return;
    };
    let _restore = Restore(&g);
    let c = g.client();
    let addr = |g: &Guest| g.sh_ok(&format!("ip -o addr show dev {NIC}"));

    // An address added and removed.
    let args = json!({"ip": "192.0.2.10/24", "ifname": NIC});
    assert_eq!(call(&c, "ipaddr-add", args.clone()), json!(true));
    assert!(addr(&g).contains("inet 192.0.2.10/24"), "{}", addr(&g));
    let eth0 = call(&c, "get-netifaces", json!({}));
    assert!(ips(iface(&eth0, NIC)).contains(&"192.0.2.10/24"));
    assert_eq!(call(&c, "ipaddr-del", args), json!(true));
    assert!(!addr(&g).contains("192.0.2.10"), "{}", addr(&g));

    // A route added and removed.
    let route = json!({"ifname": NIC, "dst": "198.51.100.0/24", "src": "", "gateway": "10.0.2.2"});
    assert_eq!(call(&c, "route-add", route.clone()), json!(true));
    let table = g.sh_ok("ip route show");
    assert!(
        table.contains("198.51.100.0/24 via 10.0.2.2 dev eth0"),
        "{table}"
    );
    let list = call(&c, "get-route-list", json!({"family": 2}));
    let found = list.as_array().expect("a list").iter().any(|r| {
        r["dst"] == json!({"ip": "198.51.100.0", "mask": "255.255.255.0"})
            && r["gateway"] == "10.0.2.2"
            && r["ifname"] == NIC
    });
    assert!(found, "route missing from get-route-list: {list}");
    assert_eq!(call(&c, "route-del", route), json!(true));
    assert!(!g.sh_ok("ip route show").contains("198.51.100.0"));

    // The link set down and up.
    assert_eq!(
        call(&c, "net-iface-down", json!({"ifname": NIC})),
        json!(true)
    );
    assert!(!link_up(&g), "{NIC} still up");
    assert_eq!(
        call(&c, "net-iface-up", json!({"ifname": NIC})),
        json!(true)
    );
    assert!(link_up(&g), "{NIC} still down");
}
