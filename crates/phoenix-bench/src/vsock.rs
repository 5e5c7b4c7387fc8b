//! Through vsock and through a virtio-serial port of the same QEMU guest (TCG here), in
//! the same run: ping round trip, 4 MiB-chunk downloads and uploads, and requests per
//! second from eight host connections at once (vsock only: a port has one host end).
//!
//! The guest has a vhost-user-vsock device whose host end is rust-vmm's
//! `vhost-device-vsock` (this host has no /dev/vhost-vsock; see crates/phoenix-e2e),
//! reached through its hybrid vsock socket. Our agent serves its Phoenix port and the
//! qemu-ga dialect on `org.qemu.guest_agent.0` as in the guest section, and vsock
//! ports 1023 (Phoenix) and 1022 (qemu-ga dialect). Two qemu-ga processes (the host's
//! binary copied in): one on `org.qemu.guest_agent.1`, one with `-m vsock-listen -p
//! 4294967295:1024`. Rows `vsock:` and `port:` compare ours (Phoenix dialect), rows
//! `vsock qga:` and `port qga:` ours in the qemu-ga dialect, each against qemu-ga on the
//! same transport. Our transfers are the best of [`RUNS`]; qemu-ga's, slower, once and
//! last (a qemu-ga transfer through vsock can stall for good: vhost-device-vsock then
//! moves nothing more on that connection; the row shows `-`).
//!
//! The round trips come first, before any transfer has loaded the guest, each
//! transport's in turns of [`TURN`] pings with its floor: a bare echo in the guest
//! ([`echo`]). Rows `added to the echo floor` show what each agent adds to it.

use std::os::unix::net::UnixStream;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use phoenix_client::{transfer, Client, Dialect, Options, Report as ErrorReport, UploadOptions};
use phoenix_e2e::{Guest, GuestOpts};

use crate::echo;
use crate::guest::{download, md5_in_guest, md5_of, mib_s, random_bytes, upload, us, Peer, SRC};
use crate::harness::{self, Better, Env, Kind, OrPanic, Report};
use crate::transfers::{self, label};

/// Our vsock ports, per dialect, and qemu-ga's.
const OURS_PORT: u32 = 1023;
const OURS_QGA_PORT: u32 = 1022;
const QGA_PORT: u32 = 1024;
/// qemu-ga's virtio-serial port (our agent serves `org.qemu.guest_agent.0`).
const QGA_SERIAL: &str = "org.qemu.guest_agent.1";
const OURS_QGA_SERIAL: &str = phoenix_e2e::QGA_PORT;
/// The bare echo's vsock port and virtio-serial port ([`echo`]).
const ECHO_PORT: u32 = 1025;
const ECHO_SERIAL: &str = "org.phoenix.bench.echo";
/// Runs of our transfers; the best is kept.
const RUNS: usize = 2;
/// Host connections at once for the requests-per-second figure.
const CLIENTS: usize = 8;
/// Pings of each in a turn of the round-trip figures.
const TURN: usize = 50;
/// Requests each of them sends.
const REQUESTS: usize = 300;
/// How long a qemu-ga transfer may wait for one reply before it counts as stalled.
const QGA_STALL: Duration = Duration::from_secs(60);
const MIB: usize = 1 << 20;

/// Runs the vsock section.
pub fn run(env: &Env, report: &mut Report) {
    let mut opts = GuestOpts::new(&env.agent);
    opts.memory_mib = 1024;
    opts.vsock = Some(3);
    opts.extra_ports = vec![
        OURS_QGA_SERIAL.into(),
        QGA_SERIAL.into(),
        ECHO_SERIAL.into(),
    ];
    let bench = std::env::current_exe().or_panic("this program's path");
    opts.extra_binaries = vec![env.qemu_ga.clone(), bench.clone()];
    opts.agent_args = vec![
        "--vsock".into(),
        OURS_PORT.to_string(),
        "--vsock".into(),
        format!("{OURS_QGA_PORT}:qga"),
    ];
    opts.setup = Some("modprobe vmw_vsock_virtio_transport".into());
    let g = match Guest::boot(opts) {
        Ok(g) => g,
        Err(e) => {
            eprintln!(
                "vsock section skipped: cannot boot the guest: {}",
                ErrorReport(&e)
            );
            return;
        }
    };
    println!("guest booted in {:.1} s", g.boot_time().as_secs_f64());
    g.sh_ok(&format!(
        "mkdir -p /run/qga /run/qgav && \
         qemu-ga -d -m virtio-serial -p /dev/virtio-ports/{QGA_SERIAL} -t /run/qga -f /run/qga.pid && \
         qemu-ga -d -m vsock-listen -p 4294967295:{QGA_PORT} -t /run/qgav -f /run/qgav.pid"
    ));
    let bench_name = bench
        .file_name()
        .and_then(|n| n.to_str())
        .expect("this program's name is UTF-8");
    g.sh_ok(&format!(
        "{bench_name} --guest-echo vsock:{ECHO_PORT} >/dev/null 2>&1 &"
    ));

    let qga_options = || Options {
        dialect: Some(Dialect::Qga),
        resync_on_connect: false,
        timeout: Some(Duration::from_secs(300)),
        ..Options::default()
    };
    let phoenix_options = || Options {
        dialect: Some(Dialect::Phoenix),
        timeout: Some(Duration::from_secs(300)),
        ..Options::default()
    };
    let connect = |what: &str, target: String, opts: Options| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match Client::connect_with(&target, opts.clone()) {
                Ok(c) => return c,
                Err(e) if Instant::now() >= deadline => {
                    panic!("connect {what} ({target}): {}", ErrorReport(&e))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    };
    let path = |p: std::path::PathBuf| p.display().to_string();
    let port_clients = [
        connect("ours", path(g.host_socket()), phoenix_options()),
        connect(
            "ours (qga)",
            path(g.port_socket(OURS_QGA_SERIAL)),
            qga_options(),
        ),
        connect("qemu-ga", path(g.port_socket(QGA_SERIAL)), qga_options()),
    ];

    // The source file, uploaded once by our agent through its port.
    let mib = env.guest_mib.min(32);
    let data = random_bytes(mib * MIB);
    port_clients[0]
        .upload_from(
            &mut data.as_slice(),
            std::path::Path::new(SRC),
            UploadOptions::default(),
            &mut (),
        )
        .or_panic("upload the source file");
    assert_eq!(
        md5_in_guest(&g, SRC),
        md5_of(&data),
        "source file corrupted"
    );

    // Eight host connections at once, each sending REQUESTS pings one after another
    // (first, while no other vsock connection is open: qemu-ga serves one at a time).
    let q = requests_per_second(&g.vsock_target(QGA_PORT), &qga_options());
    for (prefix, target, opts) in [
        ("vsock", g.vsock_target(OURS_PORT), phoenix_options()),
        ("vsock qga", g.vsock_target(OURS_QGA_PORT), qga_options()),
    ] {
        let o = requests_per_second(&target, &opts);
        report.add(
            format!("{prefix}: pings/s, {CLIENTS} connections at once, {REQUESTS} each"),
            o,
            Some(q),
            Better::Higher,
        );
    }

    let transports = [
        ("port", port_clients),
        (
            "vsock",
            [
                connect("ours", g.vsock_target(OURS_PORT), phoenix_options()),
                connect("ours (qga)", g.vsock_target(OURS_QGA_PORT), qga_options()),
                connect("qemu-ga", g.vsock_target(QGA_PORT), qga_options()),
            ],
        ),
    ];
    let big = 4 * MIB;
    let chunks: Vec<String> = data.chunks(big).map(|c| STANDARD.encode(c)).collect();
    let src_json = serde_json::to_string(SRC).expect("json");
    let windows = [1, transfer::window(big)];

    // Round trips first, on a guest that no transfer has loaded yet.
    let n = env.pings.min(2000);
    for (transport, clients) in &transports {
        pings(&g, transport, clients, bench_name, n, report);
    }
    for (transport, [ours, ours_qga, qga]) in &transports {
        let peers = [
            Peer {
                kind: Kind::Ours,
                client: ours,
            },
            Peer {
                kind: Kind::OursQga,
                client: ours_qga,
            },
        ];
        let theirs = Peer {
            kind: Kind::QemuGa,
            client: qga,
        };
        let prefix = |p: &Peer<'_>| match p.kind {
            Kind::Ours => transport.to_string(),
            _ => format!("{transport} qga"),
        };

        // Ours first, best of RUNS; then qemu-ga once, each of its transfers given up
        // after QGA_STALL without progress (and the rest of its transfers on this
        // transport with it: its connection is then unusable).
        let mut ours_best = Vec::new();
        for &window in &windows {
            for p in &peers {
                let down = (0..RUNS)
                    .map(|_| download(p, SRC, big, window, &data))
                    .min()
                    .expect("runs");
                let up = (0..RUNS)
                    .filter_map(|_| upload(&g, p, &chunks, window, &data))
                    .min()
                    .expect("our uploads do not stall");
                ours_best.push((window, prefix(p), down, up));
            }
        }
        // qemu-ga's order: what may break its connection last. On a port its pipelined
        // uploads can lose a reply (see guest.rs); through vsock its downloads stall.
        let order: [(bool, usize); 4] = if *transport == "port" {
            [
                (true, 1),
                (false, 1),
                (false, windows[1]),
                (true, windows[1]),
            ]
        } else {
            [
                (true, 1),
                (true, windows[1]),
                (false, 1),
                (false, windows[1]),
            ]
        };
        let mut qga_figures: Vec<(bool, usize, Option<Duration>)> = Vec::new();
        let mut stalled = false;
        for (upload_dir, window) in order {
            let t = if stalled {
                None
            } else if upload_dir {
                upload(&g, &theirs, &chunks, window, &data)
            } else {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    transfers::download(Kind::QemuGa, qga, &src_json, big, window, &data, QGA_STALL)
                }))
                .ok()
            };
            if t.is_none() && !stalled {
                let what = if upload_dir { "upload" } else { "download" };
                println!(
                    "   qemu-ga: {transport} {what} with {window} in flight stalled; its \
                     other transfers there skipped"
                );
                stalled = true;
            }
            qga_figures.push((upload_dir, window, t));
        }
        let qga_figure = |upload_dir: bool, window: usize| {
            qga_figures
                .iter()
                .find(|(u, w, _)| *u == upload_dir && *w == window)
                .and_then(|(_, _, t)| *t)
        };
        for (window, prefix, down, up) in ours_best {
            let label = label(big, window);
            let (q_down, q_up) = (qga_figure(false, window), qga_figure(true, window));
            report.add(
                format!("{prefix}: download {mib} MiB, {label} (MiB/s)"),
                mib_s(mib, down),
                q_down.map(|q| mib_s(mib, q)),
                Better::Higher,
            );
            report.add(
                format!("{prefix}: upload {mib} MiB, {label} (MiB/s)"),
                mib_s(mib, up),
                q_up.map(|q| mib_s(mib, q)),
                Better::Higher,
            );
        }
    }
    g.sh_ok(&format!("rm -f {SRC}"));
}

/// Ping round trips through `transport`: the bare echo (the floor), qemu-ga and ours
/// in both dialects (`clients`: ours, ours in the qemu-ga dialect, qemu-ga), in turns,
/// so that the guest's drift in speed (TCG on a busy host) touches them alike.
fn pings(
    g: &Guest,
    transport: &str,
    [ours, ours_qga, qga]: &[Client; 3],
    bench_name: &str,
    n: usize,
    report: &mut Report,
) {
    let mut echo = echo_pinger(g, transport, bench_name);
    let (mut q, mut o, mut oq) = (pinger(qga), pinger(ours), pinger(ours_qga));
    let medians: Vec<f64> =
        harness::sample_interleaved(n, TURN, &mut [&mut || echo.ping(), &mut q, &mut o, &mut oq])
            .iter()
            .map(|v| us(harness::quantile(v, 0.5)))
            .collect();
    let [floor, q50, o50, oq50] = medians[..] else {
        unreachable!("four samples")
    };
    println!(
        "{transport}: floor, a bare echo in the guest: {floor:.0} us round trip \
         (2x qemu-ga would need {:.0} us)",
        q50 / 2.0
    );
    for (prefix, ours50) in [
        (transport.to_string(), o50),
        (format!("{transport} qga"), oq50),
    ] {
        report.add(
            format!("{prefix}: ping RTT median over {n} (us)"),
            ours50,
            Some(q50),
            Better::Lower,
        );
        report.add(
            format!("{prefix}: ping RTT added to the echo floor (us)"),
            (ours50 - floor).max(1.0),
            Some((q50 - floor).max(1.0)),
            Better::Lower,
        );
    }
}

/// One ping through `c`.
fn pinger(c: &Client) -> impl FnMut() + '_ {
    let cmd = c.ping_command();
    move || {
        c.call_raw(cmd, None, None).or_panic("ping");
    }
}

/// A connection to the bare echo on `transport`. The port's echo starts once the host
/// end is connected, and ends when it leaves.
fn echo_pinger(g: &Guest, transport: &str, bench_name: &str) -> echo::Pinger {
    let stream = if transport == "port" {
        let s = UnixStream::connect(g.port_socket(ECHO_SERIAL)).or_panic("connect the echo port");
        g.sh_ok(&format!(
            "{bench_name} --guest-echo /dev/virtio-ports/{ECHO_SERIAL} >/dev/null 2>&1 &"
        ));
        s
    } else {
        echo::connect_vsock(&g.vsock_socket(), ECHO_PORT)
    };
    echo::Pinger::new(stream)
}

/// Pings per second over [`CLIENTS`] connections to `target` made at once, each sending
/// [`REQUESTS`] pings in turn and closing; from the start to the last reply, connects
/// included. qemu-ga serves one connection at a time and listens with a backlog of one:
/// a connection it refuses is retried until it is taken.
fn requests_per_second(target: &str, opts: &Options) -> f64 {
    let start = Barrier::new(CLIENTS + 1);
    let t = std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            let start = &start;
            s.spawn(move || {
                start.wait();
                let deadline = Instant::now() + Duration::from_secs(600);
                let c = loop {
                    match Client::connect_with(target, opts.clone()) {
                        Ok(c) => break c,
                        Err(e) if Instant::now() >= deadline => {
                            panic!("connect {target}: {}", ErrorReport(&e))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                };
                let ping = c.ping_command();
                for _ in 0..REQUESTS {
                    c.call_raw(ping, None, None).or_panic("ping");
                }
                // Closed at once: qemu-ga takes the next connection only then.
                drop(c);
            });
        }
        let t0 = Instant::now();
        start.wait();
        t0
    });
    (CLIENTS * REQUESTS) as f64 / t.elapsed().as_secs_f64()
}
