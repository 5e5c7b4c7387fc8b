//! Core figures: ping round trip, start-up, RSS after start, idle CPU.

use std::time::Duration;

use crate::harness::{ping, quantile, sample, Better, Env, OrPanic, Peer, Report};

/// Runs the core section.
pub fn run(env: &Env, report: &mut Report) {
    // Start-up: median of several fresh starts, each to its first ping reply.
    let mut ours_start = Vec::new();
    let mut peer_start = Vec::new();
    for _ in 0..15 {
        ours_start.push(env.start_ours(&[]).startup);
        peer_start.push(env.start_qemu_ga(&[]).startup);
    }
    ours_start.sort_unstable();
    peer_start.sort_unstable();
    report.add(
        "exec to first reply, median (ms)",
        ms(quantile(&ours_start, 0.5)),
        Some(ms(quantile(&peer_start, 0.5))),
        Better::Lower,
    );

    let ours = env.start_ours(&[]);
    let peer = env.start_qemu_ga(&[]);
    report.add(
        "RSS after start (KiB)",
        ours.rss_kib() as f64,
        Some(peer.rss_kib() as f64),
        Better::Lower,
    );

    let (o50, o99) = ping_rtt(&ours, env.pings);
    let (p50, p99) = ping_rtt(&peer, env.pings);
    report.add(
        format!("ping RTT median over {} (us)", env.pings),
        us(o50),
        Some(us(p50)),
        Better::Lower,
    );
    report.add(
        format!("ping RTT p99 over {} (us)", env.pings),
        us(o99),
        Some(us(p99)),
        Better::Lower,
    );

    // Idle: CPU ticks over the idle period, first with a client connected, then none.
    let idle = Duration::from_secs(env.idle_secs);
    let (oc, pc) = (ours.client(), peer.client());
    let (o0, p0) = (ours.cpu_ticks(), peer.cpu_ticks());
    std::thread::sleep(idle);
    let (o1, p1) = (ours.cpu_ticks(), peer.cpu_ticks());
    drop((oc, pc));
    std::thread::sleep(idle);
    let (o2, p2) = (ours.cpu_ticks(), peer.cpu_ticks());
    let secs = env.idle_secs;
    report.add(
        format!("CPU ticks idle {secs}s, client connected"),
        (o1 - o0) as f64,
        Some((p1 - p0) as f64),
        Better::Lower,
    );
    report.add(
        format!("CPU ticks idle {secs}s, no client"),
        (o2 - o1) as f64,
        Some((p2 - p1) as f64),
        Better::Lower,
    );
    report.add(
        "RSS after pings and idle (KiB)",
        ours.rss_kib() as f64,
        Some(peer.rss_kib() as f64),
        Better::Lower,
    );
}

/// Median and p99 of `n` sequential pings on one connection (after a warm-up).
fn ping_rtt(peer: &Peer, n: usize) -> (Duration, Duration) {
    let client = peer.client();
    for _ in 0..200 {
        ping(&client).or_panic("ping");
    }
    let v = sample(n, || {
        ping(&client).or_panic("ping");
    });
    (quantile(&v, 0.5), quantile(&v, 0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
