//! The Phoenix dialect's network commands: `get-netifaces`, `ipaddr-add`,
//! `ipaddr-del` (and the deprecated `linux-ipaddr-add`, `linux-ipaddr-del`),
//! `net-iface-up`, `net-iface-down`, `get-route-list`, `route-add`, `route-del`.
//!
//! Malformed arguments (an address not in CIDR form, a gateway of the wrong family, an
//! unknown family) are invalid-arguments errors, code -1.
//!
//! While the filesystems are frozen the two listings still answer: they read kernel
//! memory only. The commands that change the network are refused then, as the
//! original refuses them: they cannot hang on a frozen disk, but a host freezes to
//! take a consistent snapshot and does not expect the guest's configuration to change
//! under it.

use netlink_packet_route::AddressFamily;
use phoenix_proto::types::net::cmd::{
    GetNetifaces, GetRouteList, IpaddrAdd, IpaddrDel, LinuxIpaddrAdd, LinuxIpaddrDel, NetIfaceDown,
    NetIfaceUp, RouteAdd, RouteDel,
};
use phoenix_proto::types::net::{IfaceArgs, IpAddrArgs, RouteArgs, RouteListArgs};
use phoenix_proto::NoArgs;

use super::{Change, Net, RouteSpec};
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run};
use crate::error::Error;

/// Every interface in index order.
impl Command for GetNetifaces {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, _: NoArgs) -> Outcome {
        reply::<Self>(&agent.family::<Net>().interfaces()?)
    }
}

/// The address commands: `ipaddr-add`, `ipaddr-del` and their `linux-` aliases.
macro_rules! address_command {
    ($($marker:ident => $change:expr;)*) => {$(
        impl Command for $marker {
            const RUN: Run = Run::Pool;
            const WHILE_FROZEN: bool = false;

            fn run(agent: &Agent, a: IpAddrArgs) -> Outcome {
                agent.family::<Net>().change_address(&a.ifname, &a.ip, $change)?;
                reply::<Self>(&true)
            }
        }
    )*};
}

address_command! {
    IpaddrAdd => Change::Add;
    IpaddrDel => Change::Delete;
    LinuxIpaddrAdd => Change::Add;
    LinuxIpaddrDel => Change::Delete;
}

/// `net-iface-up`: the administrative state (IFF_UP).
impl Command for NetIfaceUp {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: IfaceArgs) -> Outcome {
        agent.family::<Net>().set_up(&a.ifname, true)?;
        reply::<Self>(&true)
    }
}

/// `net-iface-down`.
impl Command for NetIfaceDown {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: IfaceArgs) -> Outcome {
        agent.family::<Net>().set_up(&a.ifname, false)?;
        reply::<Self>(&true)
    }
}

/// The main table's routes; `arguments` may be absent (family 0).
impl Command for GetRouteList {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, a: RouteListArgs) -> Outcome {
        let family = match a.family {
            0 => AddressFamily::Unspec,
            2 => AddressFamily::Inet,
            10 => AddressFamily::Inet6,
            n => {
                return Err(Error::invalid(format!(
                    "family {n} is not 0 (all), 2 (AF_INET) or 10 (AF_INET6)"
                )))
            }
        };
        reply::<Self>(&agent.family::<Net>().routes(family)?)
    }
}

fn change_route(agent: &Agent, a: &RouteArgs, change: Change) -> Result<(), Error> {
    let spec = RouteSpec::parse(a).map_err(Error::invalid)?;
    agent.family::<Net>().change_route(&a.ifname, &spec, change)
}

/// `route-add`.
impl Command for RouteAdd {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: RouteArgs) -> Outcome {
        change_route(agent, &a, Change::Add)?;
        reply::<Self>(&true)
    }
}

/// `route-del`.
impl Command for RouteDel {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: RouteArgs) -> Outcome {
        change_route(agent, &a, Change::Delete)?;
        reply::<Self>(&true)
    }
}
