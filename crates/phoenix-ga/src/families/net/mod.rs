//! The network family: interfaces, addresses, link state and routes, over rtnetlink.
//!
//! No `ip` subprocess and no ioctl: each operation opens its own NETLINK_ROUTE socket
//! ([`netlink`]) and sends the request `ip` would. Listings take one dump per table
//! (links, addresses, routes), so their cost grows linearly with the number of
//! interfaces and routes; the route list keeps the interface names between calls
//! ([`names`], the family's state) and so dumps the links only once. Errors carry the
//! kernel's errno (EEXIST, EADDRNOTAVAIL, ENODEV, ESRCH, ...) and name the interface
//! and address.
//!
//! Both dialects' listings come from the same operations: [`links::listing`] (one link
//! dump, one address dump) for `get-netifaces` and `guest-network-get-interfaces`, and
//! [`routes::dump`] (one route dump per family) for `get-route-list` and
//! `guest-network-get-route`. The Phoenix commands are in [`phoenix`], the qemu-ga
//! dialect's in [`qga`].

use std::io;

use netlink_packet_route::AddressFamily;
use phoenix_proto::types::net::{cmd, qga::cmd as qga_cmd, NetIface, Route};

use super::{Family, Setup};
use crate::command::{entry, Entry};
use crate::error::{Context, Error};

mod addrs;
pub(crate) mod links;
pub(crate) mod names;
pub(crate) mod netlink;
mod phoenix;
mod qga;
pub(crate) mod routes;

use addrs::Cidr;
use links::{Listing, Stats};
use routes::{RouteDump, Tables};
use netlink::Netlink;
pub use routes::RouteSpec;

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// The network family: the interface names the route listing keeps.
#[derive(Debug, Default)]
pub struct Net {
    names: names::NameCache,
}

impl Family for Net {
    fn new(_: &Setup<'_>) -> Self {
        Self::default()
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 12] = [
            entry::<cmd::GetNetifaces>(),
            entry::<cmd::IpaddrAdd>(),
            entry::<cmd::IpaddrDel>(),
            entry::<cmd::LinuxIpaddrAdd>(),
            entry::<cmd::LinuxIpaddrDel>(),
            entry::<cmd::NetIfaceUp>(),
            entry::<cmd::NetIfaceDown>(),
            entry::<cmd::GetRouteList>(),
            entry::<cmd::RouteAdd>(),
            entry::<cmd::RouteDel>(),
            entry::<qga_cmd::GuestNetworkGetInterfaces>(),
            entry::<qga_cmd::GuestNetworkGetRoute>(),
        ];
        &COMMANDS
    }
}

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

/// Whether an operation adds or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Add.
    Add,
    /// Delete.
    Delete,
}

impl Net {
    /// Every interface in index order with its flags, hardware address and addresses.
    pub fn interfaces(&self) -> Result<Vec<NetIface>, Error> {
        Ok(links::netifaces(self.listing(Stats::Skip)?))
    }

    /// Every link (with its counters when `stats` asks for them) and every address,
    /// in the kernel's order.
    pub(crate) fn listing(&self, stats: Stats) -> Result<Listing, Error> {
        links::listing(&mut open()?, stats).context(|| "list interfaces")
    }

    /// Adds the address `ip` (`ADDR/PREFIX`, IPv4 or IPv6) to the interface `ifname`,
    /// or deletes it.
    pub fn change_address(&self, ifname: &str, ip: &str, change: Change) -> Result<(), Error> {
        let cidr = Cidr::parse(ip).ok_or_else(|| {
            Error::invalid(format!(
                "ip \"{ip}\" is not an address in CIDR form (ADDR/PREFIX)"
            ))
        })?;
        let what = || match change {
            Change::Add => format!("add address {ip} to {ifname}"),
            Change::Delete => format!("delete address {ip} from {ifname}"),
        };
        check_ifname(ifname, what)?;
        let mut nl = open()?;
        let index = links::index(&mut nl, ifname).context(what)?;
        match change {
            Change::Add => addrs::add(&mut nl, index, cidr),
            Change::Delete => addrs::delete(&mut nl, index, cidr),
        }
        .context(what)
    }

    /// Sets the administrative state (IFF_UP) of `ifname`.
    pub fn set_up(&self, ifname: &str, up: bool) -> Result<(), Error> {
        let what = || format!("set {ifname} {}", if up { "up" } else { "down" });
        check_ifname(ifname, what)?;
        links::set_up(&mut open()?, ifname, up).context(what)
    }

    /// The main table's routes of `family` (Unspec: IPv4 then IPv6).
    pub fn routes(&self, family: AddressFamily) -> Result<Vec<Route>, Error> {
        routes::list(&mut open()?, family, &self.names).context(|| "list routes")
    }

    /// The routes of each (family, tables) of `wanted`, and the interface names.
    pub(crate) fn route_dump(&self, wanted: &[(AddressFamily, Tables)]) -> Result<RouteDump, Error> {
        routes::dump(&mut open()?, wanted, &self.names).context(|| "list routes")
    }

    /// Adds the route `spec` through `ifname`, or deletes it.
    pub fn change_route(
        &self,
        ifname: &str,
        spec: &RouteSpec,
        change: Change,
    ) -> Result<(), Error> {
        let what = || {
            let verb = match change {
                Change::Add => "add",
                Change::Delete => "delete",
            };
            format!("{verb} route {spec} dev {ifname}")
        };
        check_ifname(ifname, what)?;
        let mut nl = open()?;
        let index = links::index(&mut nl, ifname).context(what)?;
        match change {
            Change::Add => routes::add(&mut nl, index, spec),
            Change::Delete => routes::delete(&mut nl, index, spec),
        }
        .context(what)
    }
}
