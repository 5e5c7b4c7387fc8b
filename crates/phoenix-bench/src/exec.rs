//! The exec commands, our agent (`--dialect qga`) and qemu-ga through the same client
//! in one run:
//! - `/bin/true` to its exit status: ours with `guest-exec-status`'s `wait` (one
//!   request), qemu-ga's status polled as fast as the client can; beside them the
//!   machine's floor, the bench itself spawning `/bin/true` with its output piped and
//!   waiting for it (no agent can answer faster), and what each agent adds to it;
//! - the output of a command writing 64 MiB: ours streamed with `guest-exec-read`,
//!   qemu-ga's captured (it keeps 16 MiB): MiB/s of what each delivers, and how much.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use phoenix_client::Client;
use serde_json::{json, Value};

use crate::harness::{
    quantile, random_file, sample_interleaved, Better, Env, OrPanic, Peer, Report,
};

const MIB: usize = 1 << 20;
/// Bytes the command writes.
const OUTPUT: usize = 64 * MIB;
/// Execs of `/bin/true` per agent.
const EXECS: usize = 300;
/// Execs of each in a turn.
const TURN: usize = 25;

fn call(c: &Client, name: &str, args: &Value) -> Value {
    c.call::<_, Value>(name, args).or_panic(name)
}

/// Runs the section.
pub fn run(env: &Env, report: &mut Report) {
    let ours = env.start_ours_qga(&[]);
    let peer = env.start_qemu_ga(&[]);
    round_trip(&ours, &peer, report);
    output(&ours, &peer, report);
}

/// `guest-exec` of `/bin/true` and the status that reports its exit.
fn to_exit(c: &Client, wait: bool) {
    let pid = call(c, "guest-exec", &json!({"path": "/bin/true"}))["pid"].clone();
    let args = match wait {
        true => json!({"pid": pid, "wait": 10}),
        false => json!({"pid": pid}),
    };
    while call(c, "guest-exec-status", &args)["exited"] != true {}
}

/// The bench spawns `/bin/true` itself (posix_spawn, as std does), stdout and stderr
/// piped as the agents capture them, and reaps it.
fn bare_spawn() {
    let out = Command::new("/bin/true")
        .stdin(Stdio::null())
        .output()
        .or_panic("spawn /bin/true");
    assert!(out.status.success(), "/bin/true failed: {:?}", out.status);
}

fn round_trip(ours: &Peer, peer: &Peer, report: &mut Report) {
    let (oc, pc) = (ours.client(), peer.client());
    // In turns, so that the machine's drift in speed touches all three alike.
    let medians: Vec<f64> = sample_interleaved(
        EXECS,
        TURN,
        &mut [&mut || to_exit(&oc, true), &mut bare_spawn, &mut || {
            to_exit(&pc, false)
        }],
    )
    .iter()
    .map(|v| quantile(v, 0.5).as_secs_f64() * 1e6)
    .collect();
    let [o, floor, p] = medians[..] else {
        unreachable!("three samples")
    };
    report.add(
        format!("exec: /bin/true to its exit status, median of {EXECS} (us)"),
        o,
        Some(p),
        Better::Lower,
    );
    println!(
        "exec: floor, the bench itself spawning and reaping /bin/true: {floor:.0} us \
         (3x qemu-ga would need {:.0} us)",
        p / 3.0
    );
    report.add(
        "exec: /bin/true, time added to that floor (us)",
        (o - floor).max(1.0),
        Some((p - floor).max(1.0)),
        Better::Lower,
    );
}

/// Ours: streamed to its end; the bytes delivered.
fn streamed(c: &Client, path: &str) -> usize {
    let pid = call(
        c,
        "guest-exec",
        &json!({"path": "/bin/cat", "arg": [path], "stream": true}),
    )["pid"]
        .clone();
    let mut at = 0usize;
    loop {
        let r = call(
            c,
            "guest-exec-read",
            &json!({"pid": pid, "out-offset": at, "count": 16 * MIB, "wait": 10}),
        );
        at += STANDARD
            .decode(r["out-data"].as_str().unwrap_or(""))
            .or_panic("base64")
            .len();
        if r["exited"] == true && r["out-eof"] == true && r["err-eof"] == true {
            return at;
        }
    }
}

/// qemu-ga: captured, the status polled until the exit; the bytes delivered and
/// whether it said it truncated.
fn captured(c: &Client, path: &str) -> (usize, bool) {
    let pid = call(
        c,
        "guest-exec",
        &json!({"path": "/bin/cat", "arg": [path], "capture-output": true}),
    )["pid"]
        .clone();
    loop {
        let s = call(c, "guest-exec-status", &json!({"pid": pid}));
        if s["exited"] == true {
            let data = STANDARD
                .decode(s["out-data"].as_str().unwrap_or(""))
                .or_panic("base64");
            return (data.len(), s["out-truncated"] == true);
        }
    }
}

fn output(ours: &Peer, peer: &Peer, report: &mut Report) {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("out");
    random_file(&src, OUTPUT);
    let path = src.to_str().expect("utf-8 path");
    let (oc, pc) = (ours.client(), peer.client());
    let timed = |f: &mut dyn FnMut() -> usize| {
        let t0 = Instant::now();
        let n = f();
        (n, t0.elapsed())
    };
    let best = |f: &mut dyn FnMut() -> usize| {
        (0..3)
            .map(|_| timed(f))
            .min_by_key(|&(_, t)| t)
            .unwrap_or((0, Duration::MAX))
    };
    let (o_n, o_t) = best(&mut || streamed(&oc, path));
    let mut truncated = false;
    let (p_n, p_t) = best(&mut || {
        let (n, cut) = captured(&pc, path);
        truncated |= cut;
        n
    });
    let mib = |n: usize| n as f64 / MIB as f64;
    report.add(
        "exec: output of a 64 MiB writer, MiB delivered",
        mib(o_n),
        Some(mib(p_n)),
        Better::Higher,
    );
    report.add(
        "exec: output of a 64 MiB writer, delivered MiB/s",
        mib(o_n) / o_t.as_secs_f64(),
        Some(mib(p_n) / p_t.as_secs_f64()),
        Better::Higher,
    );
    println!("exec: qemu-ga said out-truncated: {truncated}");
}
