//! `time`, `shutdown`/`reboot`/`halt`, `vcpus` and `fstrim`: qemu-ga's control
//! commands, which phoenix-ga answers in both dialects (and qemu-ga in its own), so
//! these work on either port.

use chrono::{DateTime, Local, Utc};
use phoenix_client::api::control::PowerMode;
use phoenix_client::{Client, ClientError, Dialect};
use phoenix_proto::types::control::GuestLogicalProcessorArg;
use phoenix_proto::types::system::qga::GuestLogicalProcessor;

use crate::output::{self, Align, Table};
use crate::{Result, Usage};

const NS: i64 = 1_000_000_000;

/// qemu-ga's port, where phoenix-ga answers the qemu-ga dialect.
const QGA_PORT: &str = "org.qemu.guest_agent.0";

/// What `time` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    /// Only print the guest's time.
    Show,
    /// The clock (then the RTC) to this many nanoseconds since the epoch.
    At(i64),
    /// The clock from the guest's RTC.
    Sync,
}

/// `--set TIME`: `now` (this host's clock), seconds since the epoch with an optional
/// fraction (`1796530886`, `@1796530886.25`), or RFC 3339 (`2026-12-06T06:43:13Z`,
/// `2026-12-06 08:43:13+02:00`). Nanoseconds since the epoch.
pub fn parse_time(text: &str) -> std::result::Result<i64, String> {
    if text == "now" {
        return Utc::now()
            .timestamp_nanos_opt()
            .ok_or_else(|| "this host's clock is out of range".to_string());
    }
    let secs = text.strip_prefix('@').unwrap_or(text);
    if !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
        if whole.is_empty() || frac.contains('.') || frac.len() > 9 {
            return Err(format!("invalid time {text:?}"));
        }
        let whole: i64 = whole
            .parse()
            .map_err(|_| format!("invalid time {text:?}"))?;
        let frac: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}")
                .parse()
                .map_err(|_| format!("invalid time {text:?}"))?
        };
        return whole
            .checked_mul(NS)
            .and_then(|n| n.checked_add(frac))
            .ok_or_else(|| format!("time {text:?} out of range"));
    }
    DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1))
        .map_err(|e| {
            format!(
                "invalid time {text:?} ({e}): give `now`, seconds since the epoch or RFC 3339 \
                 (2026-12-06T06:43:13Z)"
            )
        })?
        .timestamp_nanos_opt()
        .ok_or_else(|| format!("time {text:?} out of range"))
}

/// The guest's time as `2026-12-06 07:43:13.123456789 +01:00` (this host's zone).
fn show(ns: i64) -> String {
    let t = DateTime::from_timestamp(ns.div_euclid(NS), 0)
        .map(|t| t.with_timezone(&Local))
        .map(|t| {
            let frac = ns.rem_euclid(NS);
            format!(
                "{}.{frac:09} {}",
                t.format("%Y-%m-%d %H:%M:%S"),
                t.format("%:z")
            )
        });
    t.unwrap_or_else(|| ns.to_string())
}

/// `time [--set TIME | --sync]`: sets the guest's clock if asked, then prints it (with
/// `--json`, nanoseconds since the epoch).
pub fn time(client: &Client, set: SetTime, json: bool) -> Result {
    match set {
        SetTime::Show => {}
        SetTime::At(ns) => client.set_time(Some(ns))?,
        SetTime::Sync => client.set_time(None)?,
    }
    let ns = client.guest_time()?;
    if json {
        output::json(&ns)?;
    } else {
        println!("{}", show(ns));
    }
    Ok(())
}

/// `shutdown`, `reboot`, `halt`: returns once the agent took the request (an error
/// comes back if it could not be made); the guest goes down afterwards.
pub fn power(client: &Client, mode: PowerMode, json: bool) -> Result {
    client.shutdown(mode)?;
    if json {
        output::json(&true)?;
    }
    Ok(())
}

fn print_vcpus(cpus: &[GuestLogicalProcessor], json: bool) -> Result {
    if json {
        return Ok(output::json(cpus)?);
    }
    let mut t = Table::new(
        &["CPU", "ONLINE", "CAN-OFFLINE"],
        &[Align::Right, Align::Left, Align::Left],
    );
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    for c in cpus {
        t.row(vec![
            c.logical_id.to_string(),
            yes(c.online),
            c.can_offline.map_or_else(|| "-".to_string(), yes),
        ]);
    }
    Ok(t.print()?)
}

/// The switches that leave the `n` lowest-numbered CPUs online and the others
/// offline; an error when `n` is 0 or more than there are, or a CPU that would have to
/// go offline cannot.
pub fn plan_vcpus(
    cpus: &[GuestLogicalProcessor],
    n: usize,
) -> std::result::Result<Vec<GuestLogicalProcessorArg>, String> {
    if n == 0 || n > cpus.len() {
        return Err(format!(
            "--online {n}: the guest has {} logical processors (1 to {} may be online)",
            cpus.len(),
            cpus.len()
        ));
    }
    let mut sorted: Vec<&GuestLogicalProcessor> = cpus.iter().collect();
    sorted.sort_by_key(|c| c.logical_id);
    let mut plan = Vec::new();
    for (i, c) in sorted.iter().enumerate() {
        let want = i < n;
        if c.online == want {
            continue;
        }
        if !want && c.can_offline == Some(false) {
            return Err(format!(
                "--online {n}: CPU {} cannot go offline",
                c.logical_id
            ));
        }
        plan.push(GuestLogicalProcessorArg {
            logical_id: c.logical_id,
            online: want,
            can_offline: None,
        });
    }
    Ok(plan)
}

/// `vcpus [--online N]`: lists the logical processors; with `--online N`, first
/// leaves the N lowest-numbered online and the others offline.
pub fn vcpus(client: &Client, online: Option<usize>, json: bool) -> Result {
    if let Some(n) = online {
        let plan = plan_vcpus(&client.vcpus()?, n).map_err(Usage)?;
        if !plan.is_empty() {
            let done = client.set_vcpus(&plan)?;
            let done_n = usize::try_from(done).unwrap_or(0);
            if done_n < plan.len() {
                let failed = &plan[done_n];
                return Err(format!(
                    "{done} of {} switches done; CPU {} did not go {} (the agent's log says why)",
                    plan.len(),
                    failed.logical_id,
                    if failed.online { "online" } else { "offline" }
                )
                .into());
            }
        }
    }
    print_vcpus(&client.vcpus()?, json)
}

/// `fstrim [--minimum BYTES]`: discards the unused blocks of the guest's filesystems;
/// one line per filesystem (what was trimmed, or why not).
pub fn fstrim(client: &Client, minimum: Option<u64>, json: bool) -> Result {
    let minimum = minimum
        .map(i64::try_from)
        .transpose()
        .map_err(|_| Usage("--minimum is too large".into()))?;
    let reply = match client.fstrim(minimum) {
        Err(ClientError::Agent(e))
            if client.dialect() == Dialect::Phoenix && e.message.starts_with("unknown command") =>
        {
            return Err(format!(
                "{}: the agent has no guest-fstrim in the Phoenix dialect; phoenix-ga \
                 answers it on qemu-ga's port ({QGA_PORT})",
                e.message
            )
            .into())
        }
        other => other?,
    };
    if json {
        return Ok(output::json(&reply)?);
    }
    let mut t = Table::new(&["PATH", "TRIMMED"], &[Align::Left, Align::Right]);
    for p in &reply.paths {
        let what = match (&p.error, p.trimmed) {
            (Some(e), _) => e.clone(),
            (None, Some(n)) => output::size(u64::try_from(n).unwrap_or(0)),
            (None, None) => "-".to_string(),
        };
        t.row(vec![p.path.clone(), what]);
    }
    Ok(t.print()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1796530886"), Ok(1_796_530_886 * NS));
        assert_eq!(
            parse_time("@1796530886.25"),
            Ok(1_796_530_886 * NS + 250_000_000)
        );
        assert_eq!(parse_time("0.000000001"), Ok(1));
        assert_eq!(parse_time("2026-12-06T06:43:13Z"), Ok(1_796_539_393 * NS));
        assert_eq!(
            parse_time("2026-12-06 08:43:13+02:00"),
            Ok(1_796_539_393 * NS)
        );
        assert_eq!(
            parse_time("2026-12-06T06:43:13.5Z"),
            Ok(1_796_539_393 * NS + 500_000_000)
        );
        let now = parse_time("now").unwrap();
        assert!(now > 1_700_000_000 * NS, "{now}");
        for bad in [
            "",
            "@",
            ".5",
            "1.2.3",
            "1.0000000001",
            "yesterday",
            "2026-12-06",
            "99999999999999999999",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }

    fn cpu(id: i64, online: bool, can_offline: Option<bool>) -> GuestLogicalProcessor {
        GuestLogicalProcessor {
            logical_id: id,
            online,
            can_offline,
        }
    }

    #[test]
    fn vcpu_plans() {
        let cpus = [
            cpu(2, true, Some(true)),
            cpu(0, true, Some(false)),
            cpu(1, false, Some(true)),
            cpu(3, true, Some(true)),
        ];
        let plan = plan_vcpus(&cpus, 2).unwrap();
        let got: Vec<(i64, bool)> = plan.iter().map(|a| (a.logical_id, a.online)).collect();
        assert_eq!(got, [(1, true), (2, false), (3, false)]);
        let got: Vec<(i64, bool)> = plan_vcpus(&cpus, 4)
            .unwrap()
            .iter()
            .map(|a| (a.logical_id, a.online))
            .collect();
        assert_eq!(got, [(1, true)]);
        plan_vcpus(&cpus, 0).unwrap_err();
        assert!(plan_vcpus(&cpus, 5).unwrap_err().contains("has 4"));
        // cpu0 cannot go offline: 1 online keeps it, whatever the order listed.
        let stuck = [cpu(1, true, Some(true)), cpu(0, true, Some(false))];
        let got: Vec<(i64, bool)> = plan_vcpus(&stuck, 1)
            .unwrap()
            .iter()
            .map(|a| (a.logical_id, a.online))
            .collect();
        assert_eq!(got, [(1, false)]);
        let odd = [cpu(0, true, Some(true)), cpu(1, true, Some(false))];
        assert!(plan_vcpus(&odd, 1)
            .unwrap_err()
            .contains("CPU 1 cannot go offline"));
    }
}
