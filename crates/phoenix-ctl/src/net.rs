//! `ip addr`, `ip link` and `ip route`.

use std::net::IpAddr;

use phoenix_client::api::net::Family;
use phoenix_client::Client;
use phoenix_proto::types::net::{Route, RouteArgs};

use crate::cli::{scope_name, AddrCmd, IpCmd, LinkCmd, LinkState, RouteCmd, RouteSpec};
use crate::output::{self, Align, Table};
use crate::{Result, Usage};

/// Runs an `ip` command.
pub fn ip(client: &Client, cmd: &IpCmd, json: bool) -> Result {
    match cmd {
        IpCmd::Addr {
            cmd: None | Some(AddrCmd::Show),
        }
        | IpCmd::Link {
            cmd: None | Some(LinkCmd::Show),
        } => show_ifaces(client, json),
        IpCmd::Addr {
            cmd: Some(AddrCmd::Add(a)),
        } => {
            client.ipaddr_add(&a.addr, &a.ifname)?;
            done(json)
        }
        IpCmd::Addr {
            cmd: Some(AddrCmd::Del(a)),
        } => {
            client.ipaddr_del(&a.addr, &a.ifname)?;
            done(json)
        }
        IpCmd::Link {
            cmd: Some(LinkCmd::Set { ifname, state }),
        } => {
            match state {
                LinkState::Up => client.net_iface_up(ifname)?,
                LinkState::Down => client.net_iface_down(ifname)?,
            }
            done(json)
        }
        IpCmd::Route { cmd: None } => show_routes(client, Family::All, json),
        IpCmd::Route {
            cmd: Some(RouteCmd::Show { v4, v6 }),
        } => {
            let family = match (v4, v6) {
                (true, _) => Family::V4,
                (_, true) => Family::V6,
                _ => Family::All,
            };
            show_routes(client, family, json)
        }
        IpCmd::Route {
            cmd: Some(RouteCmd::Add(words)),
        } => {
            client.route_add(&route_args(words.parse().map_err(Usage)?))?;
            done(json)
        }
        IpCmd::Route {
            cmd: Some(RouteCmd::Del(words)),
        } => {
            client.route_del(&route_args(words.parse().map_err(Usage)?))?;
            done(json)
        }
    }
}

fn done(json: bool) -> Result {
    if json {
        output::json(&true)?;
    }
    Ok(())
}

fn route_args(spec: RouteSpec) -> RouteArgs {
    RouteArgs {
        ifname: spec.dev,
        dst: spec.dst,
        src: spec.src,
        gateway: spec.via,
        scope: spec.scope,
    }
}

/// `ip addr show`: one row per interface, as `ip -br addr` lays it out.
fn show_ifaces(client: &Client, json: bool) -> Result {
    let ifaces = client.get_netifaces()?;
    if json {
        return Ok(output::json(&ifaces)?);
    }
    let mut t = Table::new(
        &["IDX", "NAME", "FLAGS", "HWADDR", "ADDRESSES"],
        &[
            Align::Right,
            Align::Left,
            Align::Left,
            Align::Left,
            Align::Left,
        ],
    );
    for i in &ifaces {
        t.row(vec![
            i.index.to_string(),
            i.name.clone(),
            i.flags.clone(),
            if i.hwaddr.is_empty() {
                "-".into()
            } else {
                i.hwaddr.clone()
            },
            i.ips.join(" "),
        ]);
    }
    Ok(t.print()?)
}

/// `ip route show`: one line per route, in iproute2's words.
fn show_routes(client: &Client, family: Family, json: bool) -> Result {
    let routes = client.get_route_list(family)?;
    if json {
        return Ok(output::json(&routes)?);
    }
    for r in &routes {
        println!("{}", route_line(r));
    }
    Ok(())
}

/// `10.0.0.0/24 via 10.0.0.1 dev eth0 scope link src 10.0.0.2`.
fn route_line(r: &Route) -> String {
    let mut line = if r.dst.ip.is_empty() {
        "default".to_string()
    } else {
        match prefix_len(&r.dst.mask) {
            Some(len) => format!("{}/{len}", r.dst.ip),
            None => format!("{}/{}", r.dst.ip, r.dst.mask),
        }
    };
    if !r.gateway.is_empty() {
        line.push_str(&format!(" via {}", r.gateway));
    }
    if !r.ifname.is_empty() {
        line.push_str(&format!(" dev {}", r.ifname));
    }
    if r.scope != 0 {
        line.push_str(&format!(" scope {}", scope_name(r.scope)));
    }
    if !r.src.is_empty() {
        line.push_str(&format!(" src {}", r.src));
    }
    line
}

/// The prefix length of a mask written as an address; `None` unless its ones are
/// contiguous.
fn prefix_len(mask: &str) -> Option<u32> {
    let bits: u128 = match mask.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    };
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_proto::types::net::RouteDst;

    fn route(ip: &str, mask: &str, gw: &str, dev: &str, scope: u8, src: &str) -> Route {
        Route {
            ifname: dev.into(),
            scope,
            dst: RouteDst {
                ip: ip.into(),
                mask: mask.into(),
            },
            src: src.into(),
            gateway: gw.into(),
        }
    }

    #[test]
    fn routes_read_like_ip_route() {
        assert_eq!(
            route_line(&route("", "", "10.11.11.11", "eth0", 0, "")),
            "default via 10.11.11.11 dev eth0"
        );
        assert_eq!(
            route_line(&route(
                "10.0.0.0",
                "255.255.255.0",
                "",
                "eth0",
                253,
                "10.0.0.2"
            )),
            "10.0.0.0/24 dev eth0 scope link src 10.0.0.2"
        );
        assert_eq!(
            route_line(&route("fd00::", "ffff:ffff:ffff:ffff::", "", "eth0", 0, "")),
            "fd00::/64 dev eth0"
        );
    }

    #[test]
    fn prefix_lengths() {
        assert_eq!(prefix_len("255.255.255.255"), Some(32));
        assert_eq!(prefix_len("0.0.0.0"), Some(0));
        assert_eq!(prefix_len("255.255.0.0"), Some(16));
        assert_eq!(
            prefix_len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            Some(128)
        );
        assert_eq!(prefix_len("255.0.255.0"), None);
        assert_eq!(prefix_len("nonsense"), None);
    }
}
