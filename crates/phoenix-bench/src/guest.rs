//! Through a real virtio-serial port in a QEMU guest (TCG here): ping round trip and
//! file transfers of both agents, each on its own port of the same guest, against the
//! raw port throughput measured in the same guest in the same run (`dd` of the same
//! tmpfs file through another port), so the agents' overhead shows as a ratio to the
//! raw byte rate. Our agent is measured in both dialects: on its Phoenix port (rows
//! `guest:`) and on `org.qemu.guest_agent.0` in the qemu-ga dialect (rows `guest qga:`),
//! which it serves at the same time; qemu-ga's figures are the same in both.
//!
//! Transfers run with one request in flight and with
//! [`phoenix_client::transfer::window`] requests in flight (as phoenix-ctl keeps them
//! with agents that run a handle's requests in order; qemu-ga runs every request in
//! order), through the same client doing the same work for both agents (each chunk
//! decoded into one reused buffer and compared with the source; upload chunks encoded
//! before the clock starts), as in the files section.
//!
//! The machine is shared and TCG's speed follows its load, so the raw port and our
//! transfers are measured [`RUNS`] times, interleaved, and the best of each is kept;
//! qemu-ga, several times slower, once. After each of our 4 MiB-chunk transfers a line
//! says where the CPU time went: the agent in the guest (user and system), the guest
//! as a whole, QEMU's threads on the host (the vCPUs and the rest: main loop, chardev
//! sockets) and this client.
//!
//! The guest comes from the e2e harness (crates/phoenix-e2e); qemu-ga is the host's
//! binary copied into the guest with its libraries. `PHOENIX_BENCH_GUEST_PROBE=FILE`
//! copies one more (static) program into the guest and prints its output before the
//! measurements (used to time base64 codecs under TCG).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use phoenix_client::{transfer, Client, Options, Report as ErrorReport};
use phoenix_e2e::{Guest, GuestOpts};
use serde_json::value::RawValue;

use crate::harness::{quantile, sample, Better, Env, Kind, OrPanic, Report};
use crate::transfers::{self, label};

/// Downloads the guest file `path` through `peer` (see [`transfers::download`]).
pub(crate) fn download(
    peer: &Peer<'_>,
    path: &str,
    chunk: usize,
    window: usize,
    want: &[u8],
) -> Duration {
    let path_json = serde_json::to_string(path).expect("json");
    transfers::download(
        peer.kind,
        peer.client,
        &path_json,
        chunk,
        window,
        want,
        Duration::from_secs(300),
    )
}

/// qemu-ga's port in the guest. Not `org.qemu.guest_agent.0` ([`OURS_QGA_PORT`]): our
/// agent, started without `-p`, serves that one (its qemu-ga dialect) beside its own.
const QGA_PORT: &str = "org.qemu.guest_agent.1";
/// Our agent's qemu-ga dialect port.
const OURS_QGA_PORT: &str = phoenix_e2e::QGA_PORT;
const RAW_PORT: &str = "org.phoenix-e2e.raw";
/// The guest's source file for downloads (tmpfs: the transport is measured, not a disk).
pub(crate) const SRC: &str = "/tmp/bench-src";
/// Where uploads go in the guest (tmpfs).
const DST: &str = "/tmp/bench-up";
/// One `dd` block through the raw port: the most one write to a port carries.
const RAW_BLOCK: usize = 32 << 10;
/// Runs of the raw port and of our transfers; the best is kept.
const RUNS: usize = 3;
const MIB: usize = 1 << 20;
/// How long an upload waits for one write's reply before calling it stalled.
const STALL: Duration = Duration::from_secs(10);

/// Runs the guest section.
pub fn run(env: &Env, report: &mut Report) {
    let probe = std::env::var_os("PHOENIX_BENCH_GUEST_PROBE").map(PathBuf::from);
    let mut opts = GuestOpts::new(&env.agent);
    opts.memory_mib = 1024;
    opts.extra_ports = vec![OURS_QGA_PORT.into(), QGA_PORT.into(), RAW_PORT.into()];
    opts.extra_binaries = vec![env.qemu_ga.clone()];
    opts.extra_binaries.extend(probe.clone());
    let g = match Guest::boot(opts) {
        Ok(g) => g,
        Err(e) => {
            eprintln!(
                "guest section skipped: cannot boot the guest: {}",
                ErrorReport(&e)
            );
            return;
        }
    };
    println!("guest booted in {:.1} s", g.boot_time().as_secs_f64());
    if let Some(name) = probe.as_ref().and_then(|p| p.file_name()) {
        let out = g.run(&format!("{} 2>&1", name.to_string_lossy()));
        println!("probe in the guest:\n{}", out.stdout);
    }
    g.sh_ok(&format!(
        "mkdir -p /run/qga && qemu-ga -d -m virtio-serial -p /dev/virtio-ports/{QGA_PORT} \
         -t /run/qga -f /run/qga.pid"
    ));
    let ours = Client::connect_with(g.host_socket(), Options::default()).or_panic("connect ours");
    let qga_options = || Options {
        dialect: Some(phoenix_client::Dialect::Qga),
        resync_on_connect: false,
        ..Options::default()
    };
    let ours_qga = Client::connect_with(g.port_socket(OURS_QGA_PORT), qga_options())
        .or_panic("connect ours (qemu-ga dialect)");
    let qga =
        Client::connect_with(g.port_socket(QGA_PORT), qga_options()).or_panic("connect qemu-ga");

    // Ping round trip through the port.
    let n = env.pings.min(2000);
    let (q50, q99) = rtt(&qga, n);
    for (prefix, client) in [("guest", &ours), ("guest qga", &ours_qga)] {
        let (o50, o99) = rtt(client, n);
        report.add(
            format!("{prefix}: ping RTT median over {n} (us)"),
            us(o50),
            Some(us(q50)),
            Better::Lower,
        );
        report.add(
            format!("{prefix}: ping RTT p99 over {n} (us)"),
            us(o99),
            Some(us(q99)),
            Better::Lower,
        );
    }

    // The source file: random bytes made here, copied into the guest through the raw
    // port (its first host->guest measurement), md5-checked.
    let mib = env.guest_mib;
    let data = random_bytes(mib * MIB);
    raw_host_to_guest(&g, &data, Some(SRC));
    assert_eq!(
        md5_in_guest(&g, SRC),
        md5_of(&data),
        "raw port copy corrupted"
    );
    let has_files = ours
        .commands()
        .map(|c| c.iter().any(|n| n == "file-read"))
        .unwrap_or(false);
    if !has_files {
        println!("guest: file transfers skipped: this phoenix-ga has no file commands");
    }
    // Ours in each dialect, then qemu-ga.
    let peers = [
        Peer {
            kind: Kind::Ours,
            client: &ours,
        },
        Peer {
            kind: Kind::OursQga,
            client: &ours_qga,
        },
        Peer {
            kind: Kind::QemuGa,
            client: &qga,
        },
    ];
    let [ours_p, ours_qga_p, theirs] = &peers;
    let mine = [ours_p, ours_qga_p];

    // The raw port, both ways, copying the same tmpfs file the agents transfer (the
    // ceiling for any agent), interleaved with our 4 MiB-chunk transfers so that all
    // see the same load.
    let big = 4 * MIB;
    let chunks: Vec<String> = data.chunks(big).map(|c| STANDARD.encode(c)).collect();
    let windows = [1, transfer::window(big)];
    let (mut raw_out, mut raw_in) = (0f64, 0f64);
    let mut best = [[[Duration::MAX; 2]; 2]; 2]; // [dialect][download, upload][window]
    for _ in 0..RUNS {
        let cpu = Cpu::start(&g);
        let rate = raw_guest_to_host(&g, mib);
        cpu.print(&g, "raw port guest->host", mib, rate);
        raw_out = raw_out.max(rate);
        let cpu = Cpu::start(&g);
        let rate = raw_host_to_guest(&g, &data, None);
        cpu.print(&g, "raw port host->guest", mib, rate);
        raw_in = raw_in.max(rate);
        if !has_files {
            continue;
        }
        for (p, peer) in mine.iter().enumerate() {
            for (w, &window) in windows.iter().enumerate() {
                let dialect = peer.kind.dialect();
                let cpu = Cpu::start(&g);
                let t = download(peer, SRC, big, window, &data);
                let what = format!("{dialect:?} download, 4 MiB chunks, {window} in flight");
                cpu.print(&g, &what, mib, mib_s(mib, t));
                best[p][0][w] = best[p][0][w].min(t);
                let cpu = Cpu::start(&g);
                let t = upload(&g, peer, &chunks, window, &data).expect("upload");
                let what = format!("{dialect:?} upload, 4 MiB chunks, {window} in flight");
                cpu.print(&g, &what, mib, mib_s(mib, t));
                best[p][1][w] = best[p][1][w].min(t);
            }
        }
    }
    report.add(
        format!("guest: raw port guest->host, file {mib} MiB (MiB/s)"),
        raw_out,
        None,
        Better::Higher,
    );
    report.add(
        format!("guest: raw port host->guest, file {mib} MiB (MiB/s)"),
        raw_in,
        None,
        Better::Higher,
    );
    if !has_files {
        return;
    }
    let raw = Raw {
        out: raw_out,
        into: raw_in,
    };

    // 4 KiB chunks: at most 8 MiB, ours best of RUNS, qemu-ga once. qemu-ga's
    // pipelined uploads come last: over virtio-serial they may stall (see `upload`).
    let small_mib = mib.min(8);
    let small = &data[..small_mib * MIB];
    let small_src = format!("{SRC}.small");
    g.sh_ok(&format!("head -c {} {SRC} > {small_src}", small.len()));
    let small_chunks: Vec<String> = small.chunks(4 << 10).map(|c| STANDARD.encode(c)).collect();
    let mut later = Vec::new();
    for window in [1, transfer::window(4 << 10)] {
        let label = label(4 << 10, window);
        let best_of = |f: &dyn Fn() -> Duration| (0..RUNS).map(|_| f()).min().expect("runs");
        let o = mine.map(|p| best_of(&|| download(p, &small_src, 4 << 10, window, small)));
        let q = download(theirs, &small_src, 4 << 10, window, small);
        let rows = Rows::new(report, "download", &label, small_mib, raw);
        rows.add(o, Some(q));
        let o =
            mine.map(|p| best_of(&|| upload(&g, p, &small_chunks, window, small).expect("upload")));
        if window == 1 {
            let q = upload(&g, theirs, &small_chunks, window, small);
            Rows::new(report, "upload", &label, small_mib, raw).add(o, q);
        } else {
            later.push((&small_chunks, small, label, small_mib, o, window));
        }
    }
    g.sh_ok(&format!("rm -f {small_src}"));

    // 4 MiB chunks: ours measured above, qemu-ga once.
    for (w, &window) in windows.iter().enumerate() {
        let label = label(big, window);
        let q = download(theirs, SRC, big, window, &data);
        Rows::new(report, "download", &label, mib, raw).add(best.map(|b| b[0][w]), Some(q));
        let ours = best.map(|b| b[1][w]);
        if window == 1 {
            let q = upload(&g, theirs, &chunks, window, &data);
            Rows::new(report, "upload", &label, mib, raw).add(ours, q);
        } else {
            later.push((&chunks, &data, label, mib, ours, window));
        }
    }
    for (chunks, want, label, mib, o, window) in later {
        let q = upload(&g, theirs, chunks, window, want);
        Rows::new(report, "upload", &label, mib, raw).add(o, q);
    }
}

pub(crate) fn mib_s(mib: usize, t: Duration) -> f64 {
    mib as f64 / t.as_secs_f64()
}

/// The raw port's rates, guest to host and host to guest (MiB/s).
#[derive(Clone, Copy)]
struct Raw {
    out: f64,
    into: f64,
}

/// The rows of one transfer: payload MiB/s of ours (in each dialect) and of qemu-ga,
/// and each as a fraction of the raw port's rate in that direction.
struct Rows<'r> {
    report: &'r mut Report,
    dir: &'static str,
    label: String,
    mib: usize,
    raw: f64,
}

impl<'r> Rows<'r> {
    fn new(report: &'r mut Report, dir: &'static str, label: &str, mib: usize, raw: Raw) -> Self {
        let raw = if dir == "download" { raw.out } else { raw.into };
        Self {
            report,
            dir,
            label: label.to_string(),
            mib,
            raw,
        }
    }

    /// Adds the rows of ours in the Phoenix and the qemu-ga dialect against `qga`.
    fn add(self, ours: [Duration; 2], qga: Option<Duration>) {
        let Self {
            report,
            dir,
            label,
            mib,
            raw,
        } = self;
        let q = qga.map(|q| mib_s(mib, q));
        for (prefix, ours) in ["guest", "guest qga"].into_iter().zip(ours) {
            let o = mib_s(mib, ours);
            report.add(
                format!("{prefix}: {dir} {mib} MiB, {label} (MiB/s)"),
                o,
                q,
                Better::Higher,
            );
            report.add(
                format!("{prefix}: {dir} {label} / raw port rate"),
                o / raw,
                q.map(|q| q / raw),
                Better::Higher,
            );
        }
    }
}

pub(crate) fn rtt(client: &Client, n: usize) -> (Duration, Duration) {
    let ping = client.ping_command();
    for _ in 0..100 {
        client.call_raw(ping, None, None).or_panic("ping");
    }
    let v = sample(n, || {
        client.call_raw(ping, None, None).or_panic("ping");
    });
    (quantile(&v, 0.5), quantile(&v, 0.99))
}

/// `dd` of the source file into the raw port; MiB/s as the host receives it, from
/// the first byte to the last (the shell's start is not counted).
fn raw_guest_to_host(g: &Guest, mib: usize) -> f64 {
    let mut sock = UnixStream::connect(g.port_socket(RAW_PORT)).expect("connect raw port");
    let blocks = (mib << 20) / RAW_BLOCK;
    g.sh_ok(&format!(
        "dd if={SRC} of=/dev/virtio-ports/{RAW_PORT} bs={RAW_BLOCK} count={blocks} \
         >/dev/null 2>&1 &"
    ));
    let mut buf = vec![0u8; MIB];
    let first = sock.read(&mut buf).expect("read raw port");
    assert!(first > 0, "raw port closed early");
    let t0 = Instant::now();
    let mut left = (mib << 20) - first;
    while left > 0 {
        let n = sock.read(&mut buf).expect("read raw port");
        assert!(n > 0, "raw port closed early");
        left = left.saturating_sub(n);
    }
    let rate = ((mib << 20) - first) as f64 / MIB as f64 / t0.elapsed().as_secs_f64();
    g.sh_ok("while pidof dd >/dev/null; do sleep 0.05; done");
    rate
}

/// The host writes `data` into the raw port, the guest `dd`s it into a tmpfs file and
/// answers "done" through the same port; MiB/s from the first byte sent to the answer.
/// The file is kept as `keep_as` if given, else removed.
fn raw_host_to_guest(g: &Guest, data: &[u8], keep_as: Option<&str>) -> f64 {
    let mib = data.len() / MIB;
    let mut sock = UnixStream::connect(g.port_socket(RAW_PORT)).expect("connect raw port");
    let blocks = (mib << 20) / RAW_BLOCK;
    g.sh_ok(&format!(
        "sh -c 'exec 3<>/dev/virtio-ports/{RAW_PORT}; \
         dd of=/tmp/bench-raw-in bs={RAW_BLOCK} count={blocks} iflag=fullblock <&3 2>/dev/null; \
         echo done >&3' \
         >/dev/null 2>&1 &"
    ));
    let t0 = Instant::now();
    sock.write_all(data).expect("write raw port");
    let mut ack = [0u8; 5];
    sock.read_exact(&mut ack).expect("read the guest's answer");
    assert_eq!(&ack, b"done\n");
    let rate = mib as f64 / t0.elapsed().as_secs_f64();
    match keep_as {
        Some(path) => g.sh_ok(&format!("mv /tmp/bench-raw-in {path}")),
        None => g.sh_ok("rm -f /tmp/bench-raw-in"),
    };
    rate
}

/// An agent and the client connected to it.
pub(crate) struct Peer<'c> {
    pub(crate) kind: Kind,
    pub(crate) client: &'c Client,
}

impl Peer<'_> {
    fn name(&self) -> &'static str {
        self.kind.name()
    }
}

fn raw(text: String) -> Box<RawValue> {
    RawValue::from_string(text).expect("valid JSON")
}

fn call(c: &Client, name: &str, args: String) -> Box<RawValue> {
    c.call_raw(name, Some(&raw(args)), Some(Duration::from_secs(300)))
        .or_panic(name)
}

/// Uploads pre-encoded `chunks` to [`DST`] in the guest, `window` writes in flight,
/// and closes the file; the time taken. Checks the guest's md5 of the result.
///
/// None when a write got no reply within [`STALL`]: qemu-ga (10.0 here), with
/// several writes in flight through a virtio-serial port, can lose a reply (its log says
/// "error writing to channel: Illegal seek": glib's buffered channel cannot write while
/// the next request's bytes sit in its read buffer). Its connection is then useless,
/// so its pipelined uploads run last.
pub(crate) fn upload(
    g: &Guest,
    peer: &Peer<'_>,
    chunks: &[String],
    window: usize,
    want: &[u8],
) -> Option<Duration> {
    let c = peer.client;
    g.sh_ok(&format!("rm -f {DST}"));
    let t0 = Instant::now();
    let (open, write, close, handle_key, data_key) = match peer.kind.dialect() {
        phoenix_client::Dialect::Phoenix => (
            "file-open",
            "file-write",
            "file-close",
            "handle_id",
            "bufb64",
        ),
        phoenix_client::Dialect::Qga => (
            "guest-file-open",
            "guest-file-write",
            "guest-file-close",
            "handle",
            "buf-b64",
        ),
    };
    let h = call(c, open, format!(r#"{{"path":"{DST}","mode":"w"}}"#));
    let h = h.get();
    let mut pending = VecDeque::new();
    for (i, b64) in chunks.iter().enumerate() {
        let args = raw(format!(r#"{{"{handle_key}":{h},"{data_key}":"{b64}"}}"#));
        pending.push_back(c.send_request(write, Some(&args)).or_panic(write));
        while pending.len() >= window || (i == chunks.len() - 1 && !pending.is_empty()) {
            let done = pending.pop_front().expect("a write in flight");
            match done.wait(Some(STALL)) {
                Ok(_) => {}
                Err(phoenix_client::ClientError::Timeout { .. }) => {
                    println!(
                        "   {}: upload with {window} writes in flight stalled: no reply \
                         within {} s (qemu-ga can drop replies to pipelined writes on a port)",
                        peer.name(),
                        STALL.as_secs()
                    );
                    return None;
                }
                Err(e) => panic!("{write}: {}", ErrorReport(&e)),
            }
        }
    }
    call(c, close, format!(r#"{{"{handle_key}":{h}}}"#));
    let t = t0.elapsed();
    assert_eq!(
        md5_in_guest(g, DST),
        md5_of(want),
        "{}: upload corrupted",
        peer.name()
    );
    g.sh_ok(&format!("rm -f {DST}"));
    Some(t)
}

/// `len` pseudo-random bytes (xorshift: incompressible, the same every run).
pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub(crate) fn md5_in_guest(g: &Guest, path: &str) -> String {
    let out = g.sh_ok(&format!("md5sum {path}"));
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

pub(crate) fn md5_of(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// CPU time counters at the start of a transfer, to say afterwards where the time
/// went. All in clock ticks (USER_HZ, 100 per second on Linux).
struct Cpu {
    agent: (u64, u64, u64),
    guest: (u64, u64),
    qemu: (u64, u64),
    client: u64,
}

const HZ: f64 = 100.0;

impl Cpu {
    fn start(g: &Guest) -> Self {
        Self {
            agent: agent_ticks(g),
            guest: guest_ticks(g),
            qemu: qemu_ticks(g.qemu_pid()),
            client: proc_ticks("/proc/self/stat").map_or(0, |(u, s, _)| u + s),
        }
    }

    /// Prints CPU seconds spent since `start`, beside the wall time of moving `mib`
    /// MiB at `rate` MiB/s.
    fn print(self, g: &Guest, what: &str, mib: usize, rate: f64) {
        let secs = |a: u64, b: u64| a.saturating_sub(b) as f64 / HZ;
        let (au, as_, af) = agent_ticks(g);
        let (gb, gi) = guest_ticks(g);
        let (qv, qo) = qemu_ticks(g.qemu_pid());
        let client = proc_ticks("/proc/self/stat").map_or(0, |(u, s, _)| u + s);
        println!(
            "   cpu {what}: {rate:.0} MiB/s, wall {:.2} s; agent {:.2} user + {:.2} sys, {} page faults; guest busy {:.2} \
             idle {:.2}; qemu vCPUs {:.2}, other threads {:.2}; client {:.2}",
            mib as f64 / rate,
            secs(au, self.agent.0),
            secs(as_, self.agent.1),
            af.saturating_sub(self.agent.2),
            secs(gb, self.guest.0),
            secs(gi, self.guest.1),
            secs(qv, self.qemu.0),
            secs(qo, self.qemu.1),
            secs(client, self.client),
        );
    }
}

/// The guest agent's (user, system) ticks and minor page faults.
fn agent_ticks(g: &Guest) -> (u64, u64, u64) {
    let pid = g.agent_pid();
    let stat = g.sh_ok(&format!("cat /proc/{pid}/stat"));
    stat_ticks(&stat).unwrap_or_default()
}

/// The guest's (busy, idle) ticks over all its CPUs.
fn guest_ticks(g: &Guest) -> (u64, u64) {
    let stat = g.sh_ok("head -1 /proc/stat");
    let f: Vec<u64> = stat
        .split_whitespace()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (f.iter().sum::<u64>() - idle, idle)
}

/// QEMU's (vCPU threads, other threads) ticks on the host.
fn qemu_ticks(pid: u32) -> (u64, u64) {
    let (mut vcpu, mut other) = (0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let ticks = proc_ticks(&task.path().join("stat").display().to_string())
            .map_or(0, |(u, s, _)| u + s);
        if comm.starts_with("CPU ") {
            vcpu += ticks;
        } else {
            other += ticks;
        }
    }
    (vcpu, other)
}

fn proc_ticks(path: &str) -> Option<(u64, u64, u64)> {
    stat_ticks(&std::fs::read_to_string(path).ok()?)
}

/// (utime, stime, minflt) from a /proc/PID/stat line.
fn stat_ticks(stat: &str) -> Option<(u64, u64, u64)> {
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state); minflt is field 10, utime 14, stime 15.
    let field = |n: usize| f.get(n - 3)?.parse().ok();
    Some((field(14)?, field(15)?, field(10)?))
}
