//! Network figures, each in a network namespace of its own holding 1, 100 or 1,000 veth
//! pairs (3, 201 and 2,001 links with `lo`), every pair up with an address on each end:
//! - get-netifaces against qemu-ga's guest-network-get-interfaces, both started in the
//!   namespace, both checked to list every link; the cost per link shows whether the
//!   time grows linearly;
//! - get-route-list listing 10,000 routes (static host routes added to the links' own)
//!   at 3 and at 2,001 links (the original dumped every link once per route), against
//!   qemu-ga's guest-network-get-route (it reads /proc/net/route and
//!   /proc/net/ipv6_route) for scale; the first call of a fresh agent apart from the
//!   series, since it alone lists the interfaces (the later calls keep the names).
//!
//! Links and routes are created with `ip -batch`; the agents are started from a thread
//! that joined the namespace (setns), so both run exactly as they would inside it.

use std::fs::File;
use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use serde_json::Value;

use crate::harness::{quantile, Better, Env, OrPanic, Peer, Report};

/// Routes for the route-list figures.
const ROUTES: usize = 10_000;

/// Runs the network section.
pub fn run(env: &Env, report: &mut Report) {
    let mut per_link = Vec::new();
    for pairs in [1, 100, 1000] {
        let ns = Netns::with_pairs(pairs);
        let links = 1 + 2 * pairs;
        let (ours, peer) = ns.start(env);
        let runs = if pairs >= 1000 { 5 } else { 20 };
        let o = time_listing(&ours, "get-netifaces", 4 * runs, links);
        let p = time_listing(&peer, "guest-network-get-interfaces", runs, links);
        o.report(report, &format!("get-netifaces, {links} links"), Some(p));
        per_link.push((links, o, p));
    }
    for (links, o, p) in &per_link {
        report.add(
            format!("get-netifaces per link at {links} links, best (us)"),
            us(o.best) / *links as f64,
            Some(us(p.best) / *links as f64),
            Better::Lower,
        );
    }
    if let [.., (l1, o1, p1), (l2, o2, p2)] = &per_link[..] {
        let grow = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
        println!(
            "   growth {l1} -> {l2} links ({:.1}x the links), best times: phoenix-ga {:.1}x, \
             qemu-ga {:.1}x; medians: {:.1}x, {:.1}x",
            *l2 as f64 / *l1 as f64,
            grow(o1.best, o2.best),
            grow(p1.best, p2.best),
            grow(o1.median, o2.median),
            grow(p1.median, p2.median),
        );
    }

    let mut route_times = Vec::new();
    for pairs in [1, 1000] {
        let ns = Netns::with_pairs(pairs);
        ns.fill_routes(pairs, ROUTES);
        let links = 1 + 2 * pairs;
        let (ours, peer) = ns.start(env);
        // The agent's first call, timed on its own: the later ones may answer from
        // state the first one built (the interface names).
        let (first, listed) = first_call(&ours, "get-route-list");
        assert_eq!(listed, ROUTES, "get-route-list listed {listed} routes");
        let o = time_calls(&ours, "get-route-list", 30);
        let p = peer_has(&peer, "guest-network-get-route").then(|| {
            let (first, n) = first_call(&peer, "guest-network-get-route");
            assert!(n >= ROUTES, "guest-network-get-route listed {n} routes");
            (first, time_calls(&peer, "guest-network-get-route", 10))
        });
        let what = format!("get-route-list, {listed} routes, {links} links");
        report.add(
            format!("{what}, first call (ms)"),
            ms(first),
            p.map(|(first, _)| ms(first)),
            Better::Lower,
        );
        o.report(report, &what, p.map(|(_, t)| t));
        route_times.push((first, o));
    }
    if let [(f1, a), (f2, b)] = &route_times[..] {
        println!(
            "   get-route-list at 2001 links / at 3 links: best {:.2}x, median {:.2}x, \
             first call {:.2}x (target: under 2x)",
            b.best.as_secs_f64() / a.best.as_secs_f64(),
            b.median.as_secs_f64() / a.median.as_secs_f64(),
            f2.as_secs_f64() / f1.as_secs_f64()
        );
    }
}

/// Median and best of a series of calls: the best is the cost without interference
/// from other processes on a busy machine, the median what a caller typically waits.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The median call.
    pub median: Duration,
    /// The fastest call.
    pub best: Duration,
}

impl Timing {
    /// Adds a median row and a best row, with the peer's figures when it has some.
    pub fn report(&self, report: &mut Report, what: &str, peer: Option<Timing>) {
        report.add(
            format!("{what}, median (ms)"),
            ms(self.median),
            peer.map(|p| ms(p.median)),
            Better::Lower,
        );
        report.add(
            format!("{what}, best (ms)"),
            ms(self.best),
            peer.map(|p| ms(p.best)),
            Better::Lower,
        );
    }
}

/// Times `runs` calls of a listing, after checking it lists `links` links.
pub fn time_listing(peer: &Peer, command: &str, runs: usize, links: usize) -> Timing {
    let n = count(peer, command);
    assert_eq!(
        n,
        links,
        "{} {command} listed {n} of {links} links",
        peer.name()
    );
    time_calls(peer, command, runs)
}

/// Times `runs` calls of `command` without arguments, after one warm-up call.
pub fn time_calls(peer: &Peer, command: &str, runs: usize) -> Timing {
    let client = peer.client();
    let timeout = Some(Duration::from_secs(600));
    client.call_raw(command, None, timeout).or_panic(command);
    let mut v: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            client.call_raw(command, None, timeout).or_panic(command);
            t.elapsed()
        })
        .collect();
    v.sort_unstable();
    Timing {
        median: quantile(&v, 0.5),
        best: v[0],
    }
}

/// Entries in the array `command` returns.
fn count(peer: &Peer, command: &str) -> usize {
    let raw = peer
        .client()
        .call_raw(command, None, Some(Duration::from_secs(600)))
        .or_panic(command);
    entries(raw.get())
}

/// The time of one call of `command` on a new connection (the connection made and the
/// reply decoded outside the timing, as in [`time_calls`]), and the entries it returned.
fn first_call(peer: &Peer, command: &str) -> (Duration, usize) {
    let client = peer.client();
    let t = Instant::now();
    let raw = client
        .call_raw(command, None, Some(Duration::from_secs(600)))
        .or_panic(command);
    let elapsed = t.elapsed();
    (elapsed, entries(raw.get()))
}

fn entries(json: &str) -> usize {
    let v: Value = serde_json::from_str(json).expect("JSON reply");
    v.as_array().map_or(0, Vec::len)
}

/// Whether the peer answers `command` (qemu-ga got guest-network-get-route in 9.1).
fn peer_has(peer: &Peer, command: &str) -> bool {
    let timeout = Some(Duration::from_secs(600));
    peer.client().call_raw(command, None, timeout).is_ok()
}

/// A network namespace, deleted (with its links) on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// A namespace with `lo` up and `pairs` veth pairs aN/bN, both ends up, aN holding
    /// 10.H.L.1/24 and bN 10.H.L.2/24.
    pub fn with_pairs(pairs: usize) -> Self {
        let name = format!("phx-bench-{}-{pairs}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        // No IPv6 duplicate address detection: the link-local addresses settle at
        // once, and no dump is interrupted by them changing while it is timed.
        ip(&[
            "netns",
            "exec",
            &ns.name,
            "sh",
            "-c",
            "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && \
             echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad",
        ]);
        let mut batch = String::from("link set lo up\n");
        for i in 0..pairs {
            let (h, l) = (i / 256, i % 256);
            batch += &format!(
                "link add a{i} type veth peer name b{i}\n\
                 addr add 10.{h}.{l}.1/24 dev a{i}\naddr add 10.{h}.{l}.2/24 dev b{i}\n\
                 link set a{i} up\nlink set b{i} up\n"
            );
        }
        ns.batch(&batch);
        std::thread::sleep(Duration::from_secs(1));
        ns
    }

    /// Host routes 172.16.0.0 + i spread over the aN links, until the main tables
    /// (IPv4 and IPv6, the links' own routes included) hold `total` routes.
    fn fill_routes(&self, pairs: usize, total: usize) {
        let existing: usize = ["-4", "-6"]
            .iter()
            .map(|family| {
                let out = Command::new("ip")
                    .args(["-n", &self.name, family, "route", "show", "table", "main"])
                    .output()
                    .expect("ip route");
                out.stdout
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
            })
            .sum();
        let mut batch = String::new();
        for i in 0..total.saturating_sub(existing) {
            let dst = std::net::Ipv4Addr::from(
                0xac10_0000u32 + u32::try_from(i).expect("fewer than 2^20 routes"),
            );
            batch += &format!("route add {dst}/32 dev a{}\n", i % pairs);
        }
        self.batch(&batch);
    }

    /// Runs `ip -n NS -batch` on the commands.
    fn batch(&self, commands: &str) {
        let mut file = tempfile::NamedTempFile::new().expect("batch file");
        file.write_all(commands.as_bytes()).expect("write batch");
        ip(&["-n", &self.name, "-batch", file.path().to_str().unwrap()]);
    }

    /// Both agents, started inside the namespace.
    fn start(&self, env: &Env) -> (Peer, Peer) {
        self.start_with(|| (env.start_ours(&[]), env.start_qemu_ga(&[])))
    }

    /// Whatever `start` starts, started from a thread inside the namespace.
    pub fn start_with<T: Send>(&self, start: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = File::open(&path).expect("open netns");
                setns(fd, CloneFlags::CLONE_NEWNET).expect("setns");
                start()
            })
            .join()
            .expect("start agents")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.first().unwrap_or(&""),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
