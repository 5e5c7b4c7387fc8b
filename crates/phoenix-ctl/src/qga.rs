//! What `phoenix-ctl` does against an agent speaking the qemu-ga dialect (qemu-ga
//! itself, or phoenix-ga on qemu-ga's port): `ip addr`/`link`/`route show` from
//! `guest-network-get-interfaces` and `guest-network-get-route`, `sysinfo` from the
//! inventory commands, `md5sum` by reading the file. The file transfers (`cat`, `cp`),
//! the freeze commands, `ping`, `info` and `raw` go through the client, which speaks
//! either dialect. What the dialect has no command for is refused with a clear error.

use phoenix_client::{Client, ClientError};
use phoenix_proto::types::net::qga::cmd::{GuestNetworkGetInterfaces, GuestNetworkGetRoute};
use phoenix_proto::types::net::qga::GuestNetworkInterface;
use phoenix_proto::types::system::qga::cmd::{
    GuestGetHostName, GuestGetLoad, GuestGetOsinfo, GuestGetTimezone, GuestGetUsers, GuestGetVcpus,
};

use crate::output::{self, Align, Table};
use crate::Result;

/// The error of a command the qemu-ga dialect has no command for.
pub fn unsupported(what: &str) -> ClientError {
    ClientError::Unsupported { what: what.into() }
}

/// `ip addr show` / `ip link show`: one row per interface.
pub fn show_ifaces(client: &Client, json: bool) -> Result {
    let ifaces: Vec<GuestNetworkInterface> =
        client.invoke_no_args::<GuestNetworkGetInterfaces>()?;
    if json {
        return Ok(output::json(&ifaces)?);
    }
    let mut t = Table::new(
        &["NAME", "HWADDR", "ADDRESSES"],
        &[Align::Left, Align::Left, Align::Left],
    );
    for i in &ifaces {
        let addrs: Vec<String> = i
            .ip_addresses
            .iter()
            .flatten()
            .map(|a| format!("{}/{}", a.ip_address, a.prefix))
            .collect();
        t.row(vec![
            i.name.clone(),
            i.hardware_address.clone().unwrap_or_else(|| "-".into()),
            addrs.join(" "),
        ]);
    }
    Ok(t.print()?)
}

/// `ip route show`: one line per route, in iproute2's words, IPv4 then IPv6 as the
/// agent lists them.
pub fn show_routes(client: &Client, json: bool) -> Result {
    let routes = client.invoke_no_args::<GuestNetworkGetRoute>()?;
    if json {
        return Ok(output::json(&routes)?);
    }
    for r in &routes {
        let dst = match (&r.mask, &r.desprefixlen) {
            (Some(mask), _) if r.destination == "0.0.0.0" && mask == "0.0.0.0" => {
                "default".to_string()
            }
            (Some(mask), _) => format!("{}/{}", r.destination, mask_len(mask)),
            (None, Some(len)) if r.destination == "::" && len == "0" => "default".into(),
            (None, Some(len)) => format!("{}/{len}", r.destination),
            (None, None) => r.destination.clone(),
        };
        let mut line = dst;
        if let Some(gw) = r
            .gateway
            .as_ref()
            .filter(|g| !matches!(g.as_str(), "0.0.0.0" | "::"))
        {
            line.push_str(&format!(" via {gw}"));
        }
        if r.iface != "*" && !r.iface.is_empty() {
            line.push_str(&format!(" dev {}", r.iface));
        }
        line.push_str(&format!(" metric {}", r.metric));
        println!("{line}");
    }
    Ok(())
}

/// The prefix length of a dotted IPv4 mask (`255.255.255.0` is 24).
fn mask_len(mask: &str) -> String {
    match mask.parse::<std::net::Ipv4Addr>() {
        Ok(m) => u32::from(m).count_ones().to_string(),
        Err(_) => mask.to_string(),
    }
}

/// `sysinfo`: the system, its users and its load, from the inventory commands.
pub fn sysinfo(client: &Client, json: bool) -> Result {
    let os = client.invoke_no_args::<GuestGetOsinfo>()?;
    let host = client.invoke_no_args::<GuestGetHostName>()?;
    let tz = client.invoke_no_args::<GuestGetTimezone>()?;
    let load = client.invoke_no_args::<GuestGetLoad>().ok();
    let vcpus = client.invoke_no_args::<GuestGetVcpus>().ok();
    let users = client.invoke_no_args::<GuestGetUsers>()?;
    if json {
        return Ok(output::json(&serde_json::json!({
            "osinfo": os,
            "host-name": host,
            "timezone": tz,
            "load": load,
            "vcpus": vcpus,
            "users": users,
        }))?);
    }
    let mut t = Table::bare(&[Align::Left, Align::Left]);
    let mut row = |k: &str, v: String| t.row(vec![format!("{k}:"), v]);
    row("Host", host.host_name.clone());
    row(
        "System",
        os.pretty_name
            .clone()
            .or(os.name.clone())
            .unwrap_or_else(|| "-".into()),
    );
    row(
        "Kernel",
        format!(
            "{} {}",
            os.kernel_release.clone().unwrap_or_default(),
            os.machine.clone().unwrap_or_default()
        ),
    );
    row(
        "Time zone",
        format!(
            "{} ({:+} s)",
            tz.zone.clone().unwrap_or_default(),
            tz.offset
        ),
    );
    if let Some(l) = &load {
        row(
            "Load",
            format!("{:.2} {:.2} {:.2}", l.load1m, l.load5m, l.load15m),
        );
    }
    if let Some(v) = &vcpus {
        let online = v.iter().filter(|c| c.online).count();
        row("vCPUs", format!("{} ({online} online)", v.len()));
    }
    t.print()?;
    println!();
    if users.is_empty() {
        println!("No users logged in.");
    } else {
        let mut t = Table::new(&["USER", "LOGIN"], &[Align::Left, Align::Left]);
        for u in &users {
            // login-time is seconds (with a fraction) since the epoch.
            #[allow(clippy::cast_possible_truncation)]
            let secs = u.login_time.trunc() as i64;
            t.row(vec![u.user.clone(), output::time(secs)]);
        }
        t.print()?;
    }
    Ok(())
}
