//! Through a real virtio-serial port in a QEMU guest (TCG here): ping round trip and
//! file transfers of both agents, each on its own port of the same guest, against the
//! raw port throughput measured in the same guest in the same run (`dd` of the same
//! tmpfs file through a third port, 32 KiB per write), so the agents' overhead shows as
//! a ratio to the raw byte rate.
//!
//! The guest comes from the e2e harness (crates/phoenix-e2e); qemu-ga is the host's
//! binary copied into the guest with its libraries.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use phoenix_client::{Client, Options};
use phoenix_e2e::{Guest, GuestOpts};
use serde_json::{json, Value};

use crate::harness::{quantile, sample, Better, Env, Report};

const QGA_PORT: &str = "org.qemu.guest_agent.0";
const RAW_PORT: &str = "org.phoenix-e2e.raw";
/// The guest's source file for downloads (tmpfs: the transport is measured, not a disk).
const SRC: &str = "/tmp/bench-src";
/// One `dd` block through the raw port: the most one write to a port carries.
const RAW_BLOCK: usize = 32 << 10;

/// Runs the guest section.
pub fn run(env: &Env, report: &mut Report) {
    let mut opts = GuestOpts::new(&env.agent);
    opts.memory_mib = 1024;
    opts.extra_ports = vec![QGA_PORT.into(), RAW_PORT.into()];
    opts.extra_binaries = vec![env.qemu_ga.clone()];
    let g = match Guest::boot(opts) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("guest section skipped: cannot boot the guest: {e}");
            return;
        }
    };
    println!("guest booted in {:.1} s", g.boot_time().as_secs_f64());
    g.sh_ok(&format!(
        "mkdir -p /run/qga && qemu-ga -d -m virtio-serial -p /dev/virtio-ports/{QGA_PORT} \
         -t /run/qga -f /run/qga.pid"
    ));
    let ours = Client::connect_with(g.host_socket(), Options::default()).expect("connect ours");
    let qga = Client::connect_with(
        g.port_socket(QGA_PORT),
        Options {
            tag_field: "id",
            ping_command: "guest-ping",
            resync_on_connect: false,
            ..Options::default()
        },
    )
    .expect("connect qemu-ga");

    // Ping round trip through the port.
    let n = env.pings.min(2000);
    let (o50, o99) = rtt(&ours, n);
    let (q50, q99) = rtt(&qga, n);
    report.add(
        format!("guest: ping RTT median over {n} (us)"),
        us(o50),
        Some(us(q50)),
        Better::Lower,
    );
    report.add(
        format!("guest: ping RTT p99 over {n} (us)"),
        us(o99),
        Some(us(q99)),
        Better::Lower,
    );

    // The raw port, both ways, copying the same tmpfs file the agents transfer: the
    // ceiling for any agent.
    let mib = env.guest_mib;
    g.sh_ok(&format!(
        "dd if=/dev/urandom of={SRC} bs=1M count={mib} 2>/dev/null"
    ));
    let raw_out = raw_guest_to_host(&g, mib);
    let raw_in = raw_host_to_guest(&g, mib);
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

    // File transfers with both agents.
    let has_files = ours
        .commands()
        .map(|c| c.iter().any(|n| n == "file-read"))
        .unwrap_or(false);
    if !has_files {
        println!("guest: file transfers skipped: this phoenix-ga has no file commands");
        return;
    }
    let src_md5 = md5_in_guest(&g, SRC);
    for (chunk, label, size_mib) in [(4 << 10, "4 KiB", mib.min(8)), (4 << 20, "4 MiB", mib)] {
        if size_mib < mib {
            g.sh_ok(&format!("head -c {} {SRC} > {SRC}.small", size_mib << 20));
        }
        let src = if size_mib < mib {
            format!("{SRC}.small")
        } else {
            SRC.to_string()
        };
        let md5 = if size_mib < mib {
            md5_in_guest(&g, &src)
        } else {
            src_md5.clone()
        };

        let (o, data) = timed(|| download(&ours, Agent::Ours, &src, chunk));
        assert_eq!(md5_of(&data), md5, "phoenix-ga download corrupted");
        let (q, data) = timed(|| download(&qga, Agent::QemuGa, &src, chunk));
        assert_eq!(md5_of(&data), md5, "qemu-ga download corrupted");
        transfer_rows(report, "download", label, size_mib, raw_out, o, q);

        let (o, ()) = timed(|| upload(&ours, Agent::Ours, "/tmp/bench-up", &data, chunk));
        assert_eq!(
            md5_in_guest(&g, "/tmp/bench-up"),
            md5,
            "phoenix-ga upload corrupted"
        );
        g.sh_ok("rm -f /tmp/bench-up");
        let (q, ()) = timed(|| upload(&qga, Agent::QemuGa, "/tmp/bench-up", &data, chunk));
        assert_eq!(
            md5_in_guest(&g, "/tmp/bench-up"),
            md5,
            "qemu-ga upload corrupted"
        );
        g.sh_ok("rm -f /tmp/bench-up");
        transfer_rows(report, "upload", label, size_mib, raw_in, o, q);
    }
}

/// Payload MiB/s of both agents, and each as a fraction of the raw port's rate.
fn transfer_rows(
    report: &mut Report,
    dir: &str,
    chunk: &str,
    mib: usize,
    raw: f64,
    ours: Duration,
    qga: Duration,
) {
    let (o, q) = (
        mib as f64 / ours.as_secs_f64(),
        mib as f64 / qga.as_secs_f64(),
    );
    report.add(
        format!("guest: {dir} {mib} MiB, {chunk} chunks (MiB/s)"),
        o,
        Some(q),
        Better::Higher,
    );
    report.add(
        format!("guest: {dir} {chunk} chunks / raw port rate"),
        o / raw,
        Some(q / raw),
        Better::Higher,
    );
}

fn rtt(client: &Client, n: usize) -> (Duration, Duration) {
    let ping = client.options().ping_command;
    for _ in 0..100 {
        client.call_raw(ping, None, None).expect("ping");
    }
    let v = sample(n, || {
        client.call_raw(ping, None, None).expect("ping");
    });
    (quantile(&v, 0.5), quantile(&v, 0.99))
}

/// `dd` of the source file into the raw port; MiB/s as the host receives it.
fn raw_guest_to_host(g: &Guest, mib: usize) -> f64 {
    let mut sock = UnixStream::connect(g.port_socket(RAW_PORT)).expect("connect raw port");
    let blocks = (mib << 20) / RAW_BLOCK;
    let t0 = Instant::now();
    g.sh_ok(&format!(
        "dd if={SRC} of=/dev/virtio-ports/{RAW_PORT} bs={RAW_BLOCK} count={blocks} \
         >/dev/null 2>&1 &"
    ));
    let mut buf = vec![0u8; 1 << 20];
    let mut left = mib << 20;
    while left > 0 {
        let n = sock.read(&mut buf).expect("read raw port");
        assert!(n > 0, "raw port closed early");
        left = left.saturating_sub(n);
    }
    let rate = mib as f64 / t0.elapsed().as_secs_f64();
    g.sh_ok("while pidof dd >/dev/null; do sleep 0.05; done");
    rate
}

/// The host writes into the raw port, the guest `dd`s it into a tmpfs file and answers
/// "done" through the same port; MiB/s from the first byte sent to the answer.
fn raw_host_to_guest(g: &Guest, mib: usize) -> f64 {
    let mut sock = UnixStream::connect(g.port_socket(RAW_PORT)).expect("connect raw port");
    let blocks = (mib << 20) / RAW_BLOCK;
    g.sh_ok(&format!(
        "sh -c 'exec 3<>/dev/virtio-ports/{RAW_PORT}; \
         dd of=/tmp/bench-raw-in bs={RAW_BLOCK} count={blocks} iflag=fullblock <&3 2>/dev/null; \
         echo done >&3' \
         >/dev/null 2>&1 &"
    ));
    let block = vec![0x5au8; 1 << 20];
    let t0 = Instant::now();
    for _ in 0..mib {
        sock.write_all(&block).expect("write raw port");
    }
    let mut ack = [0u8; 5];
    sock.read_exact(&mut ack).expect("read the guest's answer");
    assert_eq!(&ack, b"done\n");
    let rate = mib as f64 / t0.elapsed().as_secs_f64();
    g.sh_ok("rm -f /tmp/bench-raw-in");
    rate
}

#[derive(Clone, Copy)]
enum Agent {
    Ours,
    QemuGa,
}

fn call(c: &Client, name: &str, args: Value) -> Value {
    let args = serde_json::value::to_raw_value(&args).expect("args");
    let raw = c
        .call_raw(name, Some(&args), Some(Duration::from_secs(300)))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(raw.get()).expect("reply")
}

fn download(c: &Client, agent: Agent, path: &str, chunk: usize) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut data = Vec::new();
    match agent {
        Agent::Ours => {
            let h = call(c, "file-open", json!({"path": path, "mode": "r"}));
            loop {
                let r = call(c, "file-read", json!({"handle_id": h, "count": chunk}));
                data.extend(
                    b64.decode(r["bufb64"].as_str().expect("bufb64"))
                        .expect("b64"),
                );
                if r["eof"] == true {
                    break; // the agent closed the handle
                }
            }
        }
        Agent::QemuGa => {
            let h = call(c, "guest-file-open", json!({"path": path, "mode": "r"}));
            loop {
                let r = call(c, "guest-file-read", json!({"handle": h, "count": chunk}));
                data.extend(
                    b64.decode(r["buf-b64"].as_str().expect("buf-b64"))
                        .expect("b64"),
                );
                if r["eof"] == true {
                    break;
                }
            }
            call(c, "guest-file-close", json!({"handle": h}));
        }
    }
    data
}

fn upload(c: &Client, agent: Agent, path: &str, data: &[u8], chunk: usize) {
    let b64 = base64::engine::general_purpose::STANDARD;
    match agent {
        Agent::Ours => {
            let h = call(c, "file-open", json!({"path": path, "mode": "w"}));
            for part in data.chunks(chunk) {
                let args = json!({"handle_id": h, "bufb64": b64.encode(part), "eof": false});
                call(c, "file-write", args);
            }
            call(c, "file-close", json!({"handle_id": h}));
        }
        Agent::QemuGa => {
            let h = call(c, "guest-file-open", json!({"path": path, "mode": "w"}));
            for part in data.chunks(chunk) {
                call(
                    c,
                    "guest-file-write",
                    json!({"handle": h, "buf-b64": b64.encode(part)}),
                );
            }
            call(c, "guest-file-close", json!({"handle": h}));
        }
    }
}

fn md5_in_guest(g: &Guest, path: &str) -> String {
    let out = g.sh_ok(&format!("md5sum {path}"));
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn md5_of(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t0 = Instant::now();
    let v = f();
    (t0.elapsed(), v)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
