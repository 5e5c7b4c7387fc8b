//! The network family: interfaces, addresses, link state and routes, over rtnetlink.
//!
//! No `ip` subprocess and no ioctl: each command opens its own NETLINK_ROUTE socket
//! ([`netlink`]) and sends the request `ip` would. Listings take one dump per table
//! (links, addresses, routes), so their cost grows linearly with the number of
//! interfaces and routes; the route list keeps the interface names between calls
//! ([`names`]) and so dumps the links only once. Errors carry the kernel's errno (EEXIST, EADDRNOTAVAIL,
//! ENODEV, ESRCH, ...) and name the interface and address; malformed arguments (an
//! address not in CIDR form, a gateway of the wrong family, an unknown family) are
//! invalid-arguments errors, code -1.
//!
//! While the filesystems are frozen the two listings still answer: they read kernel
//! memory only. The commands that change the network are refused then, as the
//! original refuses them: they cannot hang on a frozen disk, but a host freezes to
//! take a consistent snapshot and does not expect the guest's configuration to change
//! under it.

use std::io;

use phoenix_proto::types::net::{IfaceArgs, IpAddrArgs, RouteArgs, RouteListArgs};

use super::{reply, Args, Command, Outcome, Run};
use crate::agent::Agent;
use crate::error::{Context, Error};

mod addrs;
pub(crate) mod links;
pub(crate) mod names;
pub(crate) mod netlink;
pub(crate) mod routes;

use addrs::Cidr;
use netlink::Netlink;
use netlink_packet_route::AddressFamily;
use routes::RouteSpec;

/// The network family's table.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "get-netifaces",
        run: Run::Worker,
        while_frozen: true,
        handler: get_netifaces,
    },
    Command {
        name: "ipaddr-add",
        run: Run::Worker,
        while_frozen: false,
        handler: ipaddr_add,
    },
    Command {
        name: "ipaddr-del",
        run: Run::Worker,
        while_frozen: false,
        handler: ipaddr_del,
    },
    Command {
        name: "linux-ipaddr-add",
        run: Run::Worker,
        while_frozen: false,
        handler: ipaddr_add,
    },
    Command {
        name: "linux-ipaddr-del",
        run: Run::Worker,
        while_frozen: false,
        handler: ipaddr_del,
    },
    Command {
        name: "net-iface-up",
        run: Run::Worker,
        while_frozen: false,
        handler: net_iface_up,
    },
    Command {
        name: "net-iface-down",
        run: Run::Worker,
        while_frozen: false,
        handler: net_iface_down,
    },
    Command {
        name: "get-route-list",
        run: Run::Worker,
        while_frozen: true,
        handler: get_route_list,
    },
    Command {
        name: "route-add",
        run: Run::Worker,
        while_frozen: false,
        handler: route_add,
    },
    Command {
        name: "route-del",
        run: Run::Worker,
        while_frozen: false,
        handler: route_del,
    },
];

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

fn open() -> Result<Netlink, Error> {
    Netlink::open().context(|| "open rtnetlink socket")
}

/// Refuses a name no interface can have with the kernel's own answer for an unknown
/// interface (ENODEV), before the kernel sees it.
fn check_ifname(name: &str, context: impl FnOnce() -> String) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_IFNAME || name.contains(['\0', '/']) {
        return Err(Error::os(
            context(),
            io::Error::from_raw_os_error(libc::ENODEV),
        ));
    }
    Ok(())
}

/// Every interface in index order with its flags, hardware address and addresses.
fn get_netifaces(_: &Agent, _: &Args<'_>) -> Outcome {
    let mut nl = open()?;
    reply(&links::interfaces(&mut nl).context(|| "list interfaces")?)
}

fn ipaddr_add(_: &Agent, args: &Args<'_>) -> Outcome {
    change_address(args, true)
}

fn ipaddr_del(_: &Agent, args: &Args<'_>) -> Outcome {
    change_address(args, false)
}

/// `ipaddr-add` / `ipaddr-del` and their `linux-` aliases.
fn change_address(args: &Args<'_>, add: bool) -> Outcome {
    let a: IpAddrArgs = args.parse()?;
    let cidr = Cidr::parse(&a.ip).ok_or_else(|| {
        args.invalid(format!(
            "ip \"{}\" is not an address in CIDR form (ADDR/PREFIX)",
            a.ip
        ))
    })?;
    let what = || match add {
        true => format!("add address {} to {}", a.ip, a.ifname),
        false => format!("delete address {} from {}", a.ip, a.ifname),
    };
    check_ifname(&a.ifname, what)?;
    let mut nl = open()?;
    let index = links::index(&mut nl, &a.ifname).context(what)?;
    match add {
        true => addrs::add(&mut nl, index, cidr),
        false => addrs::delete(&mut nl, index, cidr),
    }
    .context(what)?;
    reply(&true)
}

fn net_iface_up(_: &Agent, args: &Args<'_>) -> Outcome {
    set_link(args, true)
}

fn net_iface_down(_: &Agent, args: &Args<'_>) -> Outcome {
    set_link(args, false)
}

/// `net-iface-up` / `net-iface-down`: the administrative state (IFF_UP).
fn set_link(args: &Args<'_>, up: bool) -> Outcome {
    let a: IfaceArgs = args.parse()?;
    let what = || format!("set {} {}", a.ifname, if up { "up" } else { "down" });
    check_ifname(&a.ifname, what)?;
    let mut nl = open()?;
    links::set_up(&mut nl, &a.ifname, up).context(what)?;
    reply(&true)
}

/// The main table's routes; `arguments` may be absent (family 0).
fn get_route_list(_: &Agent, args: &Args<'_>) -> Outcome {
    let a: RouteListArgs = args.parse()?;
    let family = match a.family {
        0 => AddressFamily::Unspec,
        2 => AddressFamily::Inet,
        10 => AddressFamily::Inet6,
        n => {
            return Err(args.invalid(format!(
                "family {n} is not 0 (all), 2 (AF_INET) or 10 (AF_INET6)"
            )))
        }
    };
    let mut nl = open()?;
    reply(&routes::list(&mut nl, family).context(|| "list routes")?)
}

fn route_add(_: &Agent, args: &Args<'_>) -> Outcome {
    change_route(args, true)
}

fn route_del(_: &Agent, args: &Args<'_>) -> Outcome {
    change_route(args, false)
}

/// `route-add` / `route-del`.
fn change_route(args: &Args<'_>, add: bool) -> Outcome {
    let a: RouteArgs = args.parse()?;
    let spec = RouteSpec::parse(&a).map_err(|reason| args.invalid(reason))?;
    let what = || {
        let verb = if add { "add" } else { "delete" };
        format!("{verb} route {spec} dev {}", a.ifname)
    };
    check_ifname(&a.ifname, what)?;
    let mut nl = open()?;
    let index = links::index(&mut nl, &a.ifname).context(what)?;
    match add {
        true => routes::add(&mut nl, index, &spec),
        false => routes::delete(&mut nl, index, &spec),
    }
    .context(what)?;
    reply(&true)
}
