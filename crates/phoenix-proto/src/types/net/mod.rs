//! Network: `get-netifaces`, `ipaddr-add`, `ipaddr-del` (and the deprecated
//! `linux-ipaddr-add`, `linux-ipaddr-del`), `net-iface-up`, `net-iface-down`,
//! `get-route-list`, `route-add`, `route-del`.
//!
//! Addresses travel as text: `"ADDR/PREFIX"` for interface addresses and route
//! destinations, plain addresses for gateways and sources, IPv4 or IPv6 alike.
//!
//! The qemu-ga dialect's `guest-network-get-interfaces` and `guest-network-get-route`
//! are in [`qga`].

use serde::{Deserialize, Serialize};

pub mod qga;

/// One interface of `get-netifaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetIface {
    /// The kernel's interface index; the list is sorted by it.
    pub index: u32,
    /// The interface name (`eth0`).
    pub name: String,
    /// The link-layer address, `"aa:bb:cc:dd:ee:ff"`; `""` when the link has none
    /// (all zeroes, as `lo`).
    pub hwaddr: String,
    /// The set flags among up, broadcast, loopback, pointtopoint, multicast, in that
    /// order, joined by `|`; `"0"` when none is set.
    pub flags: String,
    /// Every address as `"ADDR/PREFIX"`, IPv4 first, in the kernel's order.
    pub ips: Vec<String>,
}

/// Arguments of `ipaddr-add`, `ipaddr-del` and their `linux-` aliases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAddrArgs {
    /// The address in CIDR form, `"192.168.55.77/24"` or `"fd00::1/64"`.
    pub ip: String,
    /// The interface; very old hosts sent it as `dev`.
    #[serde(alias = "dev")]
    pub ifname: String,
}

/// Arguments of `net-iface-up` and `net-iface-down`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfaceArgs {
    /// The interface (`dev` accepted as for the address commands).
    #[serde(alias = "dev")]
    pub ifname: String,
}

/// `get-route-list` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RouteListArgs {
    /// 0 (AF_UNSPEC: IPv4 and IPv6, the default), 2 (AF_INET) or 10 (AF_INET6); any
    /// other value is an error. Signed so that a negative value is reported as a bad
    /// family rather than a decoding error.
    #[serde(default)]
    pub family: i64,
}

/// A route destination as `get-route-list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDst {
    /// The network address; `""` for a default route.
    pub ip: String,
    /// The prefix written as an address (`"255.255.255.0"`, `"ffff:ffff::"`); `""`
    /// for a default route.
    pub mask: String,
}

/// One route of `get-route-list` (main table only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The output interface; `""` when the route has none (blackhole, unreachable).
    pub ifname: String,
    /// The route scope: 0 universe, 253 link, 254 host.
    pub scope: u8,
    /// The destination.
    pub dst: RouteDst,
    /// The preferred source address, or `""`.
    pub src: String,
    /// The next hop, or `""` for a directly connected route.
    pub gateway: String,
}

/// Arguments of `route-add` and `route-del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteArgs {
    /// The output interface.
    #[serde(alias = "dev")]
    pub ifname: String,
    /// The destination in CIDR form; `"default"`, `"0.0.0.0/0"` and `"::/0"` name a
    /// default route. Host bits are cleared (`10.1.2.3/24` is `10.1.2.0/24`).
    pub dst: String,
    /// The preferred source address; absent or `""` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    /// The next hop; absent or `""` for a directly connected route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The route scope. `route-add`: default 0 (universe). `route-del`: when absent,
    /// a route of any scope matches (as `ip route del`); when given, only that scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

/// The network family's commands.
pub mod cmd {
    use super::*;
    use crate::NoArgs;

    crate::commands! { Phoenix;
        /// `get-netifaces`: every interface with its addresses.
        GetNetifaces = "get-netifaces" (NoArgs) -> Vec<NetIface>;
        /// `ipaddr-add`.
        IpaddrAdd = "ipaddr-add" (IpAddrArgs) -> bool;
        /// `ipaddr-del`.
        IpaddrDel = "ipaddr-del" (IpAddrArgs) -> bool;
        /// `linux-ipaddr-add`: the original's older name of `ipaddr-add`.
        LinuxIpaddrAdd = "linux-ipaddr-add" (IpAddrArgs) -> bool;
        /// `linux-ipaddr-del`: the original's older name of `ipaddr-del`.
        LinuxIpaddrDel = "linux-ipaddr-del" (IpAddrArgs) -> bool;
        /// `net-iface-up`.
        NetIfaceUp = "net-iface-up" (IfaceArgs) -> bool;
        /// `net-iface-down`.
        NetIfaceDown = "net-iface-down" (IfaceArgs) -> bool;
        /// `get-route-list`: the main table.
        GetRouteList = "get-route-list" (RouteListArgs) -> Vec<Route>;
        /// `route-add`.
        RouteAdd = "route-add" (RouteArgs) -> bool;
        /// `route-del`.
        RouteDel = "route-del" (RouteArgs) -> bool;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_is_an_alias_of_ifname() {
        let a: IpAddrArgs = serde_json::from_str(r#"{"ip":"10.0.0.1/8","dev":"eth0"}"#).unwrap();
        assert_eq!(a.ifname, "eth0");
    }

    #[test]
    fn route_args_optional_fields() {
        let a: RouteArgs =
            serde_json::from_str(r#"{"ifname":"e","dst":"default","src":""}"#).unwrap();
        assert_eq!(
            (a.src.as_deref(), a.gateway, a.scope),
            (Some(""), None, None)
        );
        serde_json::from_str::<RouteArgs>(r#"{"ifname":"e"}"#).unwrap_err();
        serde_json::from_str::<RouteArgs>(r#"{"ifname":"e","dst":"x","scope":256}"#).unwrap_err();
    }

    #[test]
    fn family_defaults_to_unspec() {
        let a: RouteListArgs = serde_json::from_str("{}").unwrap();
        assert_eq!(a.family, 0);
    }
}
