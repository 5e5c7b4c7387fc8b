//! System figures: `sysinfo` latency against the qemu-ga calls a host needs for the
//! same facts (guest-get-osinfo + guest-get-users + guest-get-fsinfo), in one run.

use std::time::Duration;

use phoenix_client::Client;

use crate::harness::{quantile, sample, Better, Env, OrPanic, Report};

/// Sequential calls per figure.
const CALLS: usize = 500;
/// Calls before measuring (page cache, first thread spawns).
const WARMUP: usize = 20;
/// qemu-ga's nearest calls to one `sysinfo`.
const PEER_CALLS: [&str; 3] = ["guest-get-osinfo", "guest-get-users", "guest-get-fsinfo"];

/// Runs the system section.
pub fn run(env: &Env, report: &mut Report) {
    let ours = env.start_ours(&[]);
    let peer = env.start_qemu_ga(&[]);
    let (oc, pc) = (ours.client(), peer.client());

    let ours_bytes = call(&oc, "sysinfo");
    let peer_bytes: usize = PEER_CALLS.iter().map(|c| call(&pc, c)).sum();
    println!("reply bytes: sysinfo {ours_bytes}, qemu-ga's three calls {peer_bytes}");

    for _ in 0..WARMUP {
        call(&oc, "sysinfo");
        for c in PEER_CALLS {
            call(&pc, c);
        }
    }
    let o = sample(CALLS, || {
        call(&oc, "sysinfo");
    });
    let p = sample(CALLS, || {
        for c in PEER_CALLS {
            call(&pc, c);
        }
    });
    // The peer's three calls one by one, for the record.
    for c in PEER_CALLS {
        let v = sample(CALLS / 5, || {
            call(&pc, c);
        });
        println!("qemu-ga {c}: median {:.1} us", us(quantile(&v, 0.5)));
    }
    report.add(
        format!("sysinfo vs osinfo+users+fsinfo, median over {CALLS} (us)"),
        us(quantile(&o, 0.5)),
        Some(us(quantile(&p, 0.5))),
        Better::Lower,
    );
    report.add(
        format!("sysinfo vs osinfo+users+fsinfo, p99 over {CALLS} (us)"),
        us(quantile(&o, 0.99)),
        Some(us(quantile(&p, 0.99))),
        Better::Lower,
    );
    report.add(
        format!("RSS after {CALLS} sysinfo (KiB)"),
        ours.rss_kib() as f64,
        Some(peer.rss_kib() as f64),
        Better::Lower,
    );
}

/// One call; the size of its return value. Panics on an error reply: a benchmark of
/// failing calls would measure nothing.
fn call(client: &Client, name: &str) -> usize {
    let raw = client
        .call_raw(name, None, Some(Duration::from_secs(30)))
        .or_panic(name);
    raw.get().len()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
