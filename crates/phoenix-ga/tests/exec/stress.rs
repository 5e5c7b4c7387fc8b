//! The stress proof: 10,000 execs, some never asked about, leave no zombie,
//! no descriptor and no growth of the agent's resident set.

use std::thread;

use serde_json::json;

use crate::helpers::*;

/// Execs in all.
const TOTAL: usize = 10_000;
/// Connections running them at once.
const CONNS: usize = 4;
/// Execs before the descriptors and resident set are first measured.
const WARM_UP: usize = 1_000;

/// Runs `n` execs on a new connection of `ga`, the `i`-th of them by kind: captured
/// output, streamed output, one nobody ever asks about (forgotten by the table's
/// bound), and plain `/bin/true` waited for.
fn batch(ga: &Ga, n: usize) -> thread::JoinHandle<()> {
    let mut c = ga.conn();
    let dialect = ga.dialect;
    thread::spawn(move || {
        let mut call = |name: &str, args: serde_json::Value| {
            let reply = c.request(json!({"execute": name, "arguments": args.clone()}));
            match reply.get("return") {
                Some(v) => v.clone(),
                None => panic!("{name} {args}: {:?}", failure(dialect, &reply)),
            }
        };
        for i in 0..n {
            match i % 10 {
                0 => {
                    let pid = call(
                        "guest-exec",
                        json!({"path": "/bin/echo", "arg": [i.to_string()],
                                                        "capture-output": true}),
                    )["pid"]
                        .clone();
                    let s = call("guest-exec-status", json!({"pid": pid, "wait": WAIT}));
                    assert_eq!(data(&s, "out-data"), format!("{i}\n").into_bytes(), "{s}");
                }
                1 => {
                    call("guest-exec", json!({"path": "/bin/true"}));
                }
                2 => {
                    let pid = call(
                        "guest-exec",
                        json!({"path": "/bin/echo", "arg": ["x"],
                                                        "stream": true}),
                    )["pid"]
                        .clone();
                    let r = call("guest-exec-read", json!({"pid": pid, "wait": WAIT}));
                    if r["out-eof"] != true || r["exited"] != true {
                        let r = call(
                            "guest-exec-read",
                            json!({"pid": pid, "out-offset": 2,
                                                               "wait": WAIT}),
                        );
                        assert_eq!(
                            (r["out-eof"].clone(), r["exited"].clone()),
                            (json!(true), json!(true)),
                            "{r}"
                        );
                    }
                }
                _ => {
                    let pid = call("guest-exec", json!({"path": "/bin/true"}))["pid"].clone();
                    let s = call("guest-exec-status", json!({"pid": pid, "wait": WAIT}));
                    assert_eq!(s, json!({"exited": true, "exitcode": 0}));
                }
            }
        }
    })
}

/// Runs `n` execs over [`CONNS`] connections at once.
fn execs(ga: &Ga, n: usize) {
    let threads: Vec<_> = (0..CONNS).map(|_| batch(ga, n / CONNS)).collect();
    for t in threads {
        t.join().expect("a batch failed");
    }
}

/// Waits until the agent has no child left, living or zombie: the ones nobody asked
/// about are reaped as they exit too.
fn no_children(ga: &Ga) {
    let agent = ga.agent.pid();
    eventually("the agent has no child left", || children(agent).is_empty());
}

#[test]
fn ten_thousand_execs_leave_no_zombie_no_descriptor_and_no_growth() {
    let ga = Ga::start(Dialect::Qga);
    let agent = ga.agent.pid();
    execs(&ga, WARM_UP);
    no_children(&ga);
    let (fds, rss) = (fd_count(agent), rss_kib(agent));
    execs(&ga, TOTAL - WARM_UP);
    no_children(&ga);
    assert!(zombies(agent).is_empty());
    let (fds_after, rss_after) = (fd_count(agent), rss_kib(agent));
    eprintln!("descriptors {fds} -> {fds_after}, resident set {rss} -> {rss_after} KiB");
    assert_eq!(
        fds_after, fds,
        "descriptors after {WARM_UP} and after {TOTAL} execs"
    );
    assert!(
        rss_after <= rss + 1024,
        "resident set grew from {rss} to {rss_after} KiB over {} execs",
        TOTAL - WARM_UP
    );
}
