//! File figures: download and upload of a 64 MiB file with 4 KiB and 4 MiB chunks
//! (ours: `file-read` with `count`, `file-write`; qemu-ga: `guest-file-read` with
//! `count`, `guest-file-write`), md5 of a 512 MiB file against `md5sum`, and RSS.
//!
//! Both agents go through the same client, and the client does the same work for
//! both (base64 is decoded after every read, with SIMD as phoenix-client does; upload
//! chunks are encoded before the clock starts), so the figures differ only by the
//! agents.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use phoenix_client::{transfer, Client, Dialect};
use serde_json::value::RawValue;

use crate::harness::{random_file, Better, Env, OrPanic, Peer, Report};
use crate::transfers::{self, download, label};

/// Time allowed for one request.
const T: Duration = Duration::from_secs(60);

const MIB: usize = 1 << 20;
/// Size of the transferred file.
pub const TRANSFER: usize = 64 * MIB;
/// Size of the hashed file.
const HASHED: usize = 512 * MIB;
/// Runs of each measurement, alternating between the agents; the best of each is
/// reported (the machine is shared, and load comes and goes).
const RUNS: usize = 4;

/// Runs the files section.
pub fn run(env: &Env, report: &mut Report) {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    random_file(&src, TRANSFER);
    let data = std::fs::read(&src).expect("read source");

    let ours = env.start_ours(&[]);
    let peer = env.start_qemu_ga(&[]);
    let (ours_start, peer_start) = (ours.rss_kib(), peer.rss_kib());
    report.add(
        "files: RSS after start (KiB)",
        ours_start as f64,
        Some(peer_start as f64),
        Better::Lower,
    );
    let (oc, pc) = (ours.client(), peer.client());

    // Window 1: one request at a time. Window w (phoenix_client::transfer::window):
    // w requests in flight, as phoenix-ctl keeps them with agents that run a
    // handle's requests in order; qemu-ga runs every request in order.
    for chunk in [4 << 10, 4 * MIB] {
        for window in [1, transfer::window(chunk)] {
            let label = label(chunk, window);
            let (o, p) = best_pair(
                || download(ours.kind, &oc, &json_str(&src), chunk, window, &data, T),
                || download(peer.kind, &pc, &json_str(&src), chunk, window, &data, T),
            );
            report.add(
                format!("download 64 MiB, {label} (MiB/s)"),
                mib_s(o),
                Some(mib_s(p)),
                Better::Higher,
            );
        }
    }
    for chunk in [4 << 10, 4 * MIB] {
        let chunks: Vec<String> = data.chunks(chunk).map(|c| STANDARD.encode(c)).collect();
        let dst = work.path().join("dst");
        for window in [1, transfer::window(chunk)] {
            let label = label(chunk, window);
            let (o, p) = best_pair(
                || upload(&ours, &oc, &dst, &chunks, window, false, &data),
                || upload(&peer, &pc, &dst, &chunks, window, false, &data),
            );
            report.add(
                format!("upload 64 MiB, {label} (MiB/s)"),
                mib_s(o),
                Some(mib_s(p)),
                Better::Higher,
            );
            // The compatible way to finish an upload: eof true, which fsyncs;
            // qemu-ga's guest-file-close does not fsync, so this row has no peer.
            let o = best(|| upload(&ours, &oc, &dst, &chunks, window, true, &data));
            report.add(
                format!("upload 64 MiB, {label}, eof+fsync (MiB/s)"),
                mib_s(o),
                None,
                Better::Higher,
            );
        }
    }
    // Both agents settle first: ours keeps a transfer buffer for 250 ms after the
    // last chunk, for the next one.
    std::thread::sleep(Duration::from_secs(1));
    report.add(
        "files: RSS after transfers (KiB)",
        ours.rss_kib() as f64,
        Some(peer.rss_kib() as f64),
        Better::Lower,
    );
    report.add(
        "files: RSS after transfers / after start",
        ours.rss_kib() as f64 / ours_start as f64,
        Some(peer.rss_kib() as f64 / peer_start as f64),
        Better::Lower,
    );
    drop(data);

    // md5 of a big file, page cache warm for both.
    let big = work.path().join("big");
    random_file(&big, HASHED);
    let want = md5sum(&big).1;
    let (mut ours_t, mut tool_t) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let (t, sum) = md5sum(&big);
        assert_eq!(sum, want);
        tool_t = tool_t.min(t);
        let t0 = Instant::now();
        let sum: String = oc
            .call_raw(
                "get-file-md5sum",
                Some(&raw(&format!(r#"{{"path":{}}}"#, json_str(&big)))),
                Some(Duration::from_secs(120)),
            )
            .map(|v| serde_json::from_str(v.get()).expect("md5 reply"))
            .or_panic("get-file-md5sum");
        ours_t = ours_t.min(t0.elapsed());
        assert_eq!(sum, want, "get-file-md5sum differs from md5sum");
    }
    let rate = |t: Duration| HASHED as f64 / MIB as f64 / t.as_secs_f64();
    println!("   (peer of the md5 row: coreutils md5sum on the same file)");
    report.add(
        "get-file-md5sum 512 MiB vs md5sum (MiB/s)",
        rate(ours_t),
        Some(rate(tool_t)),
        Better::Higher,
    );
    report.add(
        "files: RSS after md5 (KiB)",
        ours.rss_kib() as f64,
        Some(peer.rss_kib() as f64),
        Better::Lower,
    );
}

fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..RUNS).map(|_| f()).min().expect("runs")
}

/// Best times of `ours` and `peer`, run in turn.
fn best_pair(
    mut ours: impl FnMut() -> Duration,
    mut peer: impl FnMut() -> Duration,
) -> (Duration, Duration) {
    (0..RUNS).fold((Duration::MAX, Duration::MAX), |(o, p), _| {
        (o.min(ours()), p.min(peer()))
    })
}

fn mib_s(t: Duration) -> f64 {
    TRANSFER as f64 / MIB as f64 / t.as_secs_f64()
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_string()).expect("valid JSON")
}

fn json_str(p: &Path) -> String {
    serde_json::to_string(p.to_str().expect("utf-8 path")).expect("json")
}

fn call(c: &Client, name: &str, args: &str) -> Box<RawValue> {
    transfers::call(c, name, args, T)
}

/// Uploads pre-encoded `chunks` to `path`, `window` writes in flight; ours finishes
/// with `eof` (fsync) when `eof_sync`, else with a plain close, as qemu-ga does. The
/// time taken.
pub fn upload(
    peer: &Peer,
    c: &Client,
    path: &Path,
    chunks: &[String],
    window: usize,
    eof_sync: bool,
    want: &[u8],
) -> Duration {
    let _ = std::fs::remove_file(path);
    let p = json_str(path);
    let t0 = Instant::now();
    let (open, write, handle_key, data_key) = match peer.kind.dialect() {
        Dialect::Phoenix => ("file-open", "file-write", "handle_id", "bufb64"),
        Dialect::Qga => ("guest-file-open", "guest-file-write", "handle", "buf-b64"),
    };
    let h = call(c, open, &format!(r#"{{"path":{p},"mode":"w"}}"#));
    let h = h.get();
    let last = chunks.len() - 1;
    let mut pending = VecDeque::new();
    for (i, b64) in chunks.iter().enumerate() {
        let eof = match peer.kind.dialect() {
            Dialect::Phoenix => format!(r#","eof":{}"#, eof_sync && i == last),
            Dialect::Qga => String::new(),
        };
        let args = raw(&format!(
            r#"{{"{handle_key}":{h},"{data_key}":"{b64}"{eof}}}"#
        ));
        pending.push_back(c.send_request(write, Some(&args)).or_panic(write));
        while pending.len() >= window || (i == last && !pending.is_empty()) {
            let done = pending.pop_front().expect("a write in flight");
            done.wait(Some(Duration::from_secs(60))).or_panic(write);
        }
    }
    match peer.kind.dialect() {
        Dialect::Phoenix if eof_sync => {}
        Dialect::Phoenix => {
            call(c, "file-close", &format!(r#"{{"handle_id":{h}}}"#));
        }
        Dialect::Qga => {
            call(c, "guest-file-close", &format!(r#"{{"handle":{h}}}"#));
        }
    }
    let t = t0.elapsed();
    let on_disk = std::fs::read(path).expect("read upload");
    assert!(on_disk == want, "{}: uploaded bytes differ", peer.name());
    t
}

/// Time and result of coreutils `md5sum`.
fn md5sum(path: &Path) -> (Duration, String) {
    let t0 = Instant::now();
    let out = Command::new("md5sum").arg(path).output().expect("md5sum");
    let t = t0.elapsed();
    assert!(out.status.success(), "md5sum failed");
    (t, String::from_utf8_lossy(&out.stdout)[..32].to_string())
}
