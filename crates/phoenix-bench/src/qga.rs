//! The qemu-ga dialect on both sides: our agent started with `--dialect qga` and
//! qemu-ga, through the same client speaking the same requests, in one run:
//! - `guest-file-read` downloads and `guest-file-write` uploads of 64 MiB with 4 KiB and
//!   4 MiB counts, one request at a time and with a window in flight, each with the
//!   agent's own CPU time for the transfer (from /proc, independent of the client);
//! - `guest-info` and `guest-get-fsinfo` round trips;
//! - `guest-network-get-interfaces` at 3, 201 and 2,001 links (network namespaces);
//! - RSS after start and after the transfers.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use phoenix_client::transfer;

use crate::files::{upload, TRANSFER};
use crate::harness::{quantile, random_file, sample, Better, Env, OrPanic, Peer, Report};
use crate::network::{time_listing, Netns};
use crate::transfers::{download, label};

const T: Duration = Duration::from_secs(60);
const MIB: usize = 1 << 20;
const RUNS: usize = 3;

/// Runs the section.
pub fn run(env: &Env, report: &mut Report) {
    let ours = env.start_ours_qga(&[]);
    let peer = env.start_qemu_ga(&[]);
    let (ours_start, peer_start) = (ours.rss_kib(), peer.rss_kib());
    report.add(
        "qga: RSS after start (KiB)",
        ours_start as f64,
        Some(peer_start as f64),
        Better::Lower,
    );
    round_trips(&ours, &peer, report);
    transfers(&ours, &peer, report);
    std::thread::sleep(Duration::from_secs(1));
    report.add(
        "qga: RSS after the transfers (KiB)",
        ours.rss_kib() as f64,
        Some(peer.rss_kib() as f64),
        Better::Lower,
    );
    drop((ours, peer));
    interfaces(env, report);
}

/// Median round trips of the protocol and inventory commands.
fn round_trips(ours: &Peer, peer: &Peer, report: &mut Report) {
    for (command, n) in [("guest-info", 500), ("guest-get-fsinfo", 200)] {
        let median = |p: &Peer| {
            let c = p.client();
            c.call_raw(command, None, Some(T)).or_panic(command);
            let v = sample(n, || {
                c.call_raw(command, None, Some(T)).or_panic(command);
            });
            quantile(&v, 0.5).as_secs_f64() * 1e6
        };
        report.add(
            format!("qga: {command}, median of {n} (us)"),
            median(ours),
            Some(median(peer)),
            Better::Lower,
        );
    }
}

/// One transfer's time and the agent's CPU time for it.
fn timed(peer: &Peer, f: impl FnOnce() -> Duration) -> (Duration, Duration) {
    let cpu0 = peer.cpu_time();
    let t = f();
    (t, peer.cpu_time().saturating_sub(cpu0))
}

/// The best of [`RUNS`] transfers of each agent, alternating: the time, and the CPU
/// time of the run with that time.
fn best_pair(
    mut ours: impl FnMut() -> (Duration, Duration),
    mut peer: impl FnMut() -> (Duration, Duration),
) -> ((Duration, Duration), (Duration, Duration)) {
    let max = (Duration::MAX, Duration::MAX);
    (0..RUNS).fold((max, max), |(o, p), _| {
        let (a, b) = (ours(), peer());
        (if a.0 < o.0 { a } else { o }, if b.0 < p.0 { b } else { p })
    })
}

fn transfers(ours: &Peer, peer: &Peer, report: &mut Report) {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    random_file(&src, TRANSFER);
    let data = std::fs::read(&src).expect("read source");
    let path = serde_json::to_string(src.to_str().expect("utf-8")).expect("json");
    let (oc, pc) = (ours.client(), peer.client());
    let mib_s = |t: Duration| TRANSFER as f64 / MIB as f64 / t.as_secs_f64();
    let ms = |t: Duration| t.as_secs_f64() * 1e3;
    let mut row = |what: String, o: (Duration, Duration), p: (Duration, Duration)| {
        report.add(
            format!("qga: {what} (MiB/s)"),
            mib_s(o.0),
            Some(mib_s(p.0)),
            Better::Higher,
        );
        report.add(
            format!("qga: {what}, agent CPU per 64 MiB (ms)"),
            ms(o.1),
            Some(ms(p.1)),
            Better::Lower,
        );
    };
    for chunk in [4 << 10, 4 * MIB] {
        for window in [1, transfer::window(chunk)] {
            let (o, p) = best_pair(
                || {
                    timed(ours, || {
                        download(ours.kind, &oc, &path, chunk, window, &data, T)
                    })
                },
                || {
                    timed(peer, || {
                        download(peer.kind, &pc, &path, chunk, window, &data, T)
                    })
                },
            );
            row(format!("download 64 MiB, {}", label(chunk, window)), o, p);
        }
    }
    let dst = work.path().join("dst");
    for chunk in [4 << 10, 4 * MIB] {
        let chunks: Vec<String> = data.chunks(chunk).map(|c| STANDARD.encode(c)).collect();
        for window in [1, transfer::window(chunk)] {
            let (o, p) = best_pair(
                || {
                    timed(ours, || {
                        upload(ours, &oc, &dst, &chunks, window, false, &data)
                    })
                },
                || {
                    timed(peer, || {
                        upload(peer, &pc, &dst, &chunks, window, false, &data)
                    })
                },
            );
            row(format!("upload 64 MiB, {}", label(chunk, window)), o, p);
        }
    }
}

/// `guest-network-get-interfaces` of both agents at 3, 201 and 2,001 links.
fn interfaces(env: &Env, report: &mut Report) {
    for pairs in [1, 100, 1000] {
        let ns = Netns::with_pairs(pairs);
        let links = 1 + 2 * pairs;
        let (ours, peer) = ns.start_with(|| (env.start_ours_qga(&[]), env.start_qemu_ga(&[])));
        let runs = if pairs >= 1000 { 5 } else { 20 };
        let o = time_listing(&ours, "guest-network-get-interfaces", 4 * runs, links);
        let p = time_listing(&peer, "guest-network-get-interfaces", runs, links);
        o.report(
            report,
            &format!("qga: guest-network-get-interfaces, {links} links"),
            Some(p),
        );
    }
}
