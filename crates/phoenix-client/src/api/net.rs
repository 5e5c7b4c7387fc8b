//! Network: `get-netifaces`, `ipaddr-add`, `ipaddr-del`, `net-iface-up`,
//! `net-iface-down`, `get-route-list`, `route-add`, `route-del`.

use phoenix_proto::types::net::cmd::{
    GetNetifaces, GetRouteList, IpaddrAdd, IpaddrDel, NetIfaceDown, NetIfaceUp, RouteAdd, RouteDel,
};
use phoenix_proto::types::net::{IfaceArgs, IpAddrArgs, NetIface, Route, RouteArgs, RouteListArgs};

use crate::{Client, ClientError};

/// Which routes `get-route-list` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// IPv4 and IPv6 (AF_UNSPEC, 0).
    #[default]
    All,
    /// IPv4 (AF_INET, 2).
    V4,
    /// IPv6 (AF_INET6, 10).
    V6,
}

impl Family {
    fn wire(self) -> i64 {
        match self {
            Family::All => 0,
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }
}

impl Client {
    /// `get-netifaces`: every interface with its addresses, in index order.
    pub fn get_netifaces(&self) -> Result<Vec<NetIface>, ClientError> {
        self.invoke_no_args::<GetNetifaces>()
    }

    /// `ipaddr-add`: `ip` in CIDR form (`10.0.0.2/24`).
    pub fn ipaddr_add(&self, ip: &str, ifname: &str) -> Result<(), ClientError> {
        self.true_call::<IpaddrAdd>(Some(&ip_args(ip, ifname)))
    }

    /// `ipaddr-del`: the prefix length must match the address's.
    pub fn ipaddr_del(&self, ip: &str, ifname: &str) -> Result<(), ClientError> {
        self.true_call::<IpaddrDel>(Some(&ip_args(ip, ifname)))
    }

    /// `net-iface-up`.
    pub fn net_iface_up(&self, ifname: &str) -> Result<(), ClientError> {
        self.true_call::<NetIfaceUp>(Some(&iface(ifname)))
    }

    /// `net-iface-down`.
    pub fn net_iface_down(&self, ifname: &str) -> Result<(), ClientError> {
        self.true_call::<NetIfaceDown>(Some(&iface(ifname)))
    }

    /// `get-route-list`: the main table's routes. `arguments` is always sent: the
    /// original agent crashes without it.
    pub fn get_route_list(&self, family: Family) -> Result<Vec<Route>, ClientError> {
        self.invoke::<GetRouteList>(&RouteListArgs {
            family: family.wire(),
        })
    }

    /// `route-add`.
    pub fn route_add(&self, route: &RouteArgs) -> Result<(), ClientError> {
        self.true_call::<RouteAdd>(Some(route))
    }

    /// `route-del`: without `scope`, a route of any scope matches (phoenix-rs).
    pub fn route_del(&self, route: &RouteArgs) -> Result<(), ClientError> {
        self.true_call::<RouteDel>(Some(route))
    }
}

fn ip_args(ip: &str, ifname: &str) -> IpAddrArgs {
    IpAddrArgs {
        ip: ip.to_string(),
        ifname: ifname.to_string(),
    }
}

fn iface(ifname: &str) -> IfaceArgs {
    IfaceArgs {
        ifname: ifname.to_string(),
    }
}
