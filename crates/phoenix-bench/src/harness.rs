//! Shared benchmark machinery: starting both agents on UNIX sockets, connecting our
//! client to either, reading their RSS and CPU time, statistics and the report table.

// Helpers shared by the sections; not every section uses every one.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use phoenix_client::{Client, Dialect, Options};

use crate::Opts;

/// What every section gets: the binaries and the options.
pub struct Env {
    /// Our agent.
    pub agent: PathBuf,
    /// qemu-ga.
    pub qemu_ga: PathBuf,
    /// Sequential pings for round-trip figures.
    pub pings: usize,
    /// Seconds per idle measurement.
    pub idle_secs: u64,
    /// Requests of the soak.
    pub soak_requests: usize,
    /// MiB per direction in the guest section.
    pub guest_mib: usize,
}

impl Env {
    /// Resolves the binaries; exits with a message when one is missing.
    pub fn new(opts: &Opts) -> Self {
        let agent = opts.agent.clone().unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("current_exe");
            exe.with_file_name("phoenix-ga")
        });
        for bin in [&agent, &opts.qemu_ga] {
            if !bin.exists() {
                eprintln!(
                    "phoenix-bench: {} not found (build phoenix-ga with --release; \
                     apt-get install qemu-guest-agent)",
                    bin.display()
                );
                std::process::exit(2);
            }
        }
        Self {
            agent,
            qemu_ga: opts.qemu_ga.clone(),
            pings: opts.pings,
            idle_secs: opts.idle_secs,
            soak_requests: opts.soak_requests,
            guest_mib: opts.guest_mib,
        }
    }

    /// Starts our agent on a fresh socket, with extra arguments.
    pub fn start_ours(&self, extra: &[&str]) -> Peer {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("phoenix.sock");
        let mut cmd = Command::new(&self.agent);
        cmd.args(["-m", "unix-listen", "-p"]).arg(&sock).args(extra);
        Peer::start(Kind::Ours, cmd, dir, sock)
    }

    /// Starts our agent on a fresh socket in the qemu-ga dialect, with extra arguments.
    pub fn start_ours_qga(&self, extra: &[&str]) -> Peer {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("phoenix-qga.sock");
        let mut cmd = Command::new(&self.agent);
        cmd.args(["-m", "unix-listen", "--dialect", "qga", "-p"])
            .arg(&sock)
            .args(extra);
        Peer::start(Kind::OursQga, cmd, dir, sock)
    }

    /// Starts qemu-ga on a fresh socket, with extra arguments (e.g. `-b LIST`).
    pub fn start_qemu_ga(&self, extra: &[&str]) -> Peer {
        // Never let the peer freeze this machine's filesystems.
        self.qemu_ga_blocking("guest-fsfreeze-freeze,guest-fsfreeze-freeze-list", extra)
    }

    /// Starts qemu-ga with only the freeze-everything command blocked, for the freeze
    /// section, which sends `guest-fsfreeze-freeze-list` with a non-empty list of its
    /// own loop mounts (an empty or absent list would freeze everything).
    pub fn start_qemu_ga_freeze_list(&self) -> Peer {
        self.qemu_ga_blocking("guest-fsfreeze-freeze", &[])
    }

    /// qemu-ga on a fresh socket and state directory, with the commands `blocked`
    /// (comma-separated) refused.
    fn qemu_ga_blocking(&self, blocked: &str, extra: &[&str]) -> Peer {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("qga.sock");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("state dir");
        let mut cmd = Command::new(&self.qemu_ga);
        cmd.args(["-m", "unix-listen", "-p"])
            .arg(&sock)
            .arg("-t")
            .arg(&state)
            .args(["-b", blocked])
            .args(extra);
        Peer::start(Kind::QemuGa, cmd, dir, sock)
    }
}

/// Which agent a peer is, speaking which dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// phoenix-ga, in the Phoenix dialect.
    Ours,
    /// phoenix-ga, in the qemu-ga dialect.
    OursQga,
    /// QEMU's guest agent.
    QemuGa,
}

impl Kind {
    /// The agent's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours | Kind::OursQga => "phoenix-ga",
            Kind::QemuGa => "qemu-ga",
        }
    }

    /// The dialect the client speaks to it.
    pub fn dialect(self) -> Dialect {
        match self {
            Kind::Ours => Dialect::Phoenix,
            Kind::OursQga | Kind::QemuGa => Dialect::Qga,
        }
    }
}

/// A running agent on a UNIX socket; killed on drop.
pub struct Peer {
    /// Which agent.
    pub kind: Kind,
    /// The process.
    pub child: Child,
    /// Its socket.
    pub sock: PathBuf,
    /// Time from exec to the first ping reply.
    pub startup: Duration,
    /// Holds the socket directory.
    pub dir: tempfile::TempDir,
}

impl Peer {
    fn start(kind: Kind, mut cmd: Command, dir: tempfile::TempDir, sock: PathBuf) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t0 = Instant::now();
        let child = cmd.spawn().expect("spawn agent");
        let mut peer = Peer {
            kind,
            child,
            sock,
            startup: Duration::ZERO,
            dir,
        };
        // Poll for the socket as fast as possible: this is what we measure.
        loop {
            if let Ok(c) = peer.try_client() {
                if ping(&c).is_ok() {
                    break;
                }
            }
            if t0.elapsed() > Duration::from_secs(10) {
                panic!("{:?} did not start", kind);
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        peer.startup = t0.elapsed();
        peer
    }

    /// Client options matching the peer's protocol.
    pub fn options(&self) -> Options {
        Options {
            dialect: Some(self.kind.dialect()),
            resync_on_connect: false,
            ..Options::default()
        }
    }

    fn try_client(&self) -> Result<Client, phoenix_client::ClientError> {
        Client::connect_with(&self.sock, self.options())
    }

    /// A new client connection.
    pub fn client(&self) -> Client {
        self.try_client().or_panic("connect")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// utime + stime in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        cpu_ticks(self.pid())
    }

    /// CPU time used so far, all threads (see [`cpu_time`]).
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid())
    }

    /// The peer's name in the report.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `result.or_panic(what)`: the value, or a panic with `what` and the error's whole
/// chain, each source once (`connect: connect /tmp/.../ga.sock: Connection refused (os
/// error 111)`), where `expect` would print the error's Debug form.
pub trait OrPanic<T> {
    /// The value, or a panic naming `what` and the error chain.
    fn or_panic(self, what: &str) -> T;
}

impl<T, E: std::error::Error> OrPanic<T> for Result<T, E> {
    #[track_caller]
    fn or_panic(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: {}", phoenix_client::Report(&e)),
        }
    }
}

/// One ping with either agent's command name; the reply shape differs, so it is not decoded.
pub fn ping(client: &Client) -> Result<(), phoenix_client::ClientError> {
    let ping = client.ping_command();
    client
        .call_raw(ping, None, client.options().timeout)
        .map(drop)
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid` in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(end) = stat.rfind(')') else { return 0 };
    let f: Vec<&str> = stat[end + 2..].split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// CPU time `pid` has used so far, all its threads together, with nanosecond precision
/// (the sum of `/proc/PID/task/*/schedstat`; a thread that exits takes its share with
/// it, so measure across work done by long-lived threads).
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// Number of open descriptors of `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Times `n` runs of `f`, returning the sorted durations.
pub fn sample(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort_unstable();
    v
}

/// Times `n` runs of each of `fs`, taken in turns of `turn` runs each after a warm-up
/// of `turn` each, so that a drift of the machine's speed during the measurement
/// touches all of them alike; the sorted durations of each.
pub fn sample_interleaved(
    n: usize,
    turn: usize,
    fs: &mut [&mut dyn FnMut()],
) -> Vec<Vec<Duration>> {
    let turn = turn.max(1);
    for f in fs.iter_mut() {
        for _ in 0..turn {
            f();
        }
    }
    let mut all: Vec<Vec<Duration>> = fs.iter().map(|_| Vec::with_capacity(n)).collect();
    while all.iter().any(|v| v.len() < n) {
        for (f, v) in fs.iter_mut().zip(&mut all) {
            let k = turn.min(n - v.len());
            v.extend(sample(k, &mut **f));
        }
    }
    for v in &mut all {
        v.sort_unstable();
    }
    all
}

/// The `q` quantile (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let last = sorted.len() - 1;
    // A rank within 0..=last, so the cast neither truncates nor loses a sign.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = (last as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted[i.min(last)]
}

/// Creates a file of `size` pseudo-random bytes (cheap xorshift, not compressible).
pub fn random_file(path: &Path, size: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = size;
    let mut block = vec![0u8; 1 << 16];
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len());
        f.write_all(&block[..n]).expect("write");
        left -= n;
    }
    f.flush().expect("flush");
}

/// How a figure compares: lower or higher is better.
#[derive(Debug, Clone, Copy)]
pub enum Better {
    /// Times, sizes.
    Lower,
    /// Throughputs.
    Higher,
}

/// One figure, measured for both agents.
pub struct Row {
    /// What was measured, with its unit.
    pub metric: String,
    /// Our figure.
    pub ours: f64,
    /// qemu-ga's figure (None when it has no such command).
    pub peer: Option<f64>,
    /// Which direction is better.
    pub better: Better,
}

/// The table printed at the end.
#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// Adds a row and prints it at once.
    pub fn add(&mut self, metric: impl Into<String>, ours: f64, peer: Option<f64>, better: Better) {
        let row = Row {
            metric: metric.into(),
            ours,
            peer,
            better,
        };
        println!("{}", format_row(&row));
        self.rows.push(row);
    }

    /// Prints the whole table.
    pub fn print(&self) {
        println!(
            "{:<52} {:>12} {:>12} {:>16}",
            "metric", "phoenix-ga", "qemu-ga", "ratio"
        );
        for row in &self.rows {
            println!("{}", format_row(row));
        }
    }
}

fn format_row(row: &Row) -> String {
    let peer = row.peer.map_or("-".to_string(), |p| format!("{p:.2}"));
    let ratio = match row.peer {
        Some(p) if p > 0.0 && row.ours > 0.0 => match row.better {
            Better::Lower => format!("{:.2}x faster", p / row.ours),
            Better::Higher => format!("{:.2}x", row.ours / p),
        },
        Some(_) => "n/a".to_string(),
        None => "-".to_string(),
    };
    let ratio = match row.better {
        Better::Lower if row.metric.contains("RSS") || row.metric.contains("CPU") => {
            match row.peer {
                Some(p) if row.ours > 0.0 => format!("{:.2}x of peer", row.ours / p),
                _ => ratio,
            }
        }
        _ => ratio,
    };
    format!(
        "{:<52} {:>12.2} {:>12} {:>16}",
        row.metric, row.ours, peer, ratio
    )
}
