//! `ping`, `info`, `sysinfo` and `raw`.

use phoenix_client::Client;
use serde_json::value::RawValue;

use crate::output::{self, Align, Table};
use crate::{Result, Usage};

/// `ping`: the agent's version.
pub fn ping(client: &Client, json: bool) -> Result {
    let version = client.ping()?;
    if json {
        output::json(&version)?;
    } else {
        println!("{version}");
    }
    Ok(())
}

/// `info`: version and commands.
pub fn info(client: &Client, json: bool) -> Result {
    let info = client.info()?;
    if json {
        output::json(&serde_json::json!({
            "version": info.version,
            "dialect": client.dialect().name(),
            "commands": info.commands,
        }))?;
        return Ok(());
    }
    println!("version   {}", info.version);
    println!(
        "protocol  {}",
        match client.dialect() {
            phoenix_client::Dialect::Phoenix => "Phoenix",
            phoenix_client::Dialect::Qga if info.is_phoenix_rs() => "qemu-ga (phoenix-ga)",
            phoenix_client::Dialect::Qga => "qemu-ga",
        }
    );
    println!(
        "transfers {}",
        match (client.dialect(), info.large_chunks()) {
            (phoenix_client::Dialect::Qga, _) => "4 MiB chunks (guest-file-read count)",
            (_, true) => "large chunks (file-read count, 4 MiB file-write)",
            (_, false) => "4 KiB chunks",
        }
    );
    println!("commands  {}", info.commands.len());
    let mut t = Table::bare(&[Align::Left; 4]);
    for chunk in info.commands.chunks(4) {
        t.row(chunk.iter().map(|c| format!("  {c}")).collect());
    }
    t.print()?;
    Ok(())
}

/// `raw`: sends the request as given (its tag replaced by the client's own) and
/// prints the reply's value as JSON.
pub fn raw(client: &Client, request: &str) -> Result {
    let req: serde_json::Value = serde_json::from_str(request)
        .map_err(|e| Usage(format!("the request is not JSON: {e}")))?;
    let execute = req
        .get("execute")
        .and_then(|e| e.as_str())
        .ok_or_else(|| Usage("the request needs an \"execute\" string".into()))?;
    let args: Option<Box<RawValue>> = match req.get("arguments") {
        Some(a) => Some(serde_json::value::to_raw_value(a)?),
        None => None,
    };
    let value = client.call_raw(execute, args.as_deref(), client.options().timeout)?;
    println!("{}", value.get());
    Ok(())
}

/// `sysinfo`: a readable summary.
pub fn sysinfo(client: &Client, json: bool) -> Result {
    let s = client.sysinfo()?;
    if json {
        return Ok(output::json(&s)?);
    }
    let u = &s.uname;
    let mut t = Table::bare(&[Align::Left, Align::Left]);
    let mut row = |k: &str, v: String| t.row(vec![format!("{k}:"), v]);
    row("Host", format!("{} (domain {})", u.nodename, u.domain));
    row(
        "Kernel",
        format!(
            "{} {} {} ({}-bit)",
            u.sysname, u.release, u.machine, s.long_bit
        ),
    );
    row("Version", u.version.clone());
    row("Uptime", output::duration(s.uptime));
    row(
        "Load",
        format!(
            "{:.2} {:.2} {:.2}",
            s.loadavg.one, s.loadavg.five, s.loadavg.fifteen
        ),
    );
    row(
        "Memory",
        format!(
            "{} total, {} free, {} buffers",
            output::kib(s.ram.total),
            output::kib(s.ram.free),
            output::kib(s.ram.buffer)
        ),
    );
    row(
        "Swap",
        format!(
            "{} total, {} free",
            output::kib(s.swap.total),
            output::kib(s.swap.free)
        ),
    );
    t.print()?;

    println!();
    if s.users.is_empty() {
        println!("No users logged in.");
    } else {
        let mut t = Table::new(&["USER", "TTY", "FROM", "LOGIN"], &[Align::Left; 4]);
        for u in &s.users {
            t.row(vec![
                u.name.clone(),
                u.device.clone(),
                if u.host.is_empty() {
                    "-".into()
                } else {
                    u.host.clone()
                },
                output::time(u.login_time),
            ]);
        }
        t.print()?;
    }

    println!();
    let mut t = Table::new(
        &["DISK", "SIZE", "USED", "AVAIL", "USE%", "MOUNTED ON"],
        &[
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Left,
        ],
    );
    for d in &s.disks {
        if d.is_mounted {
            let pct = if d.size_total == 0 {
                "-".to_string()
            } else {
                format!("{}%", (d.size_used * 100).div_ceil(d.size_total))
            };
            t.row(vec![
                d.name.clone(),
                output::kib(d.size_total),
                output::kib(d.size_used),
                output::kib(d.size_avail),
                pct,
                d.mountpoint.clone(),
            ]);
        } else {
            t.row(vec![
                d.name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "(not mounted)".into(),
            ]);
        }
    }
    Ok(t.print()?)
}
