//! Soak: a long run of mixed requests against our agent alone, in pipelined bursts,
//! checking that every reply comes back once, to its tag, with the expected outcome,
//! and that RSS and open descriptors stay flat; in each dialect on a listener of its
//! own (Phoenix first, then qemu-ga's with ids instead of tags).
//!
//! The mix uses every command family the agent lists (`get-commands`, `guest-info`),
//! plus errors of every kind (malformed JSON, unknown command, missing and wrongly
//! typed arguments).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use serde_json::{json, Value};

use crate::harness::{open_fds, Better, Env, OrPanic, Report};

/// Requests in one write.
const BURST: usize = 100;

/// What a request in the mix must get back.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// A `return`.
    Ok,
    /// An `error` with this code (Phoenix).
    Err(i64),
    /// An `error` of this class (qemu-ga).
    Class(&'static str),
}

/// One request of the mix: JSON without the tag, and the expected outcome.
struct Item {
    request: Value,
    expect: Expect,
}

/// Builds the mix from what the agent answers.
fn mix(commands: &[String], scratch: &std::path::Path) -> Vec<Item> {
    let has = |n: &str| commands.iter().any(|c| c == n);
    let mut m = vec![
        Item {
            request: json!({"execute": "ping"}),
            expect: Expect::Ok,
        },
        Item {
            request: json!({"execute": "ping", "arguments": {"x": 1}}),
            expect: Expect::Ok,
        },
        Item {
            request: json!({"execute": "get-commands"}),
            expect: Expect::Ok,
        },
        Item {
            request: json!({"execute": "no-such-command"}),
            expect: Expect::Err(-1),
        },
        Item {
            request: json!({"execute": 5}),
            expect: Expect::Err(-1),
        },
        Item {
            request: json!({"arguments": {}}),
            expect: Expect::Err(-1),
        },
    ];
    let small = scratch.join("small");
    std::fs::write(&small, vec![b'x'; 10_000]).expect("scratch file");
    let s = small.display().to_string();
    if has("file-stat") {
        m.push(Item {
            request: json!({"execute": "file-stat", "arguments": {"path": s}}),
            expect: Expect::Ok,
        });
        m.push(Item {
            request: json!({"execute": "file-stat", "arguments": {"path": "/nonexistent/x"}}),
            expect: Expect::Err(2),
        });
        m.push(Item {
            request: json!({"execute": "file-stat", "arguments": {}}),
            expect: Expect::Err(-1),
        });
    }
    if has("get-file-md5sum") {
        m.push(Item {
            request: json!({"execute": "get-file-md5sum", "arguments": {"path": s}}),
            expect: Expect::Ok,
        });
    }
    if has("file-chmod") {
        m.push(Item {
            request: json!({"execute": "file-chmod", "arguments": {"path": s, "perm": "644"}}),
            expect: Expect::Err(-1),
        });
    }
    if has("file-read") {
        m.push(Item {
            request: json!({"execute": "file-read", "arguments": {"handle_id": 999_999_999}}),
            expect: Expect::Err(9),
        });
    }
    if has("directory-list") {
        m.push(Item { request: json!({"execute": "directory-list", "arguments": {"path": scratch.display().to_string()}}), expect: Expect::Ok });
    }
    if has("get-netifaces") {
        m.push(Item {
            request: json!({"execute": "get-netifaces"}),
            expect: Expect::Ok,
        });
    }
    if has("get-route-list") {
        m.push(Item {
            request: json!({"execute": "get-route-list"}),
            expect: Expect::Ok,
        });
    }
    if has("sysinfo") {
        m.push(Item {
            request: json!({"execute": "sysinfo"}),
            expect: Expect::Ok,
        });
    }
    if has("get-freeze-status") {
        m.push(Item {
            request: json!({"execute": "get-freeze-status"}),
            expect: Expect::Ok,
        });
    }
    m
}

/// The mix of the qemu-ga dialect, from what `guest-info` lists.
fn qga_mix(commands: &[String], scratch: &std::path::Path) -> Vec<Item> {
    let has = |n: &str| commands.iter().any(|c| c == n);
    let generic = Expect::Class("GenericError");
    let mut m = vec![
        Item {
            request: json!({"execute": "guest-ping"}),
            expect: Expect::Ok,
        },
        Item {
            request: json!({"execute": "guest-sync", "arguments": {"id": 42}}),
            expect: Expect::Ok,
        },
        Item {
            request: json!({"execute": "guest-info"}),
            expect: Expect::Ok,
        },
        Item {
            request: json!({"execute": "guest-no-such-command"}),
            expect: Expect::Class("CommandNotFound"),
        },
        Item {
            request: json!({"execute": 5}),
            expect: generic,
        },
        Item {
            request: json!({"arguments": {}}),
            expect: generic,
        },
        Item {
            request: json!({"execute": "guest-ping", "arguments": {"x": 1}}),
            expect: generic,
        },
        Item {
            request: json!({"execute": "guest-sync", "arguments": {"id": "x"}}),
            expect: generic,
        },
    ];
    let small = scratch.join("small-qga");
    std::fs::write(&small, vec![b'x'; 10_000]).expect("scratch file");
    let s = small.display().to_string();
    let listings = [
        "guest-get-time",
        "guest-get-osinfo",
        "guest-get-host-name",
        "guest-get-timezone",
        "guest-get-users",
        "guest-get-vcpus",
        "guest-get-load",
        "guest-get-fsinfo",
        "guest-get-disks",
        "guest-network-get-interfaces",
        "guest-network-get-route",
        "guest-fsfreeze-status",
    ];
    for name in listings.into_iter().filter(|n| has(n)) {
        m.push(Item {
            request: json!({"execute": name}),
            expect: Expect::Ok,
        });
    }
    if has("guest-file-open") {
        m.push(Item {
            request: json!({"execute": "guest-file-open", "arguments": {"path": "/nonexistent/x"}}),
            expect: generic,
        });
        m.push(Item {
            request: json!({"execute": "guest-file-read", "arguments": {"handle": 999_999_999}}),
            expect: generic,
        });
        m.push(Item {
            request: json!({"execute": "guest-file-open", "arguments": {"path": s, "mode": "q"}}),
            expect: generic,
        });
    }
    m
}

/// Runs the soak section (`--soak-requests` requests in each dialect).
pub fn run(env: &Env, report: &mut Report) {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let agent = env.start_ours(&[]);
    let commands: Vec<String> = agent.client().commands().or_panic("get-commands");
    soak(
        env,
        report,
        &agent,
        "tag",
        "soak",
        &mix(&commands, scratch.path()),
    );
    drop(agent);
    let agent = env.start_ours_qga(&[]);
    let commands = agent
        .client()
        .info()
        .or_panic("guest-info")
        .commands
        .clone();
    soak(
        env,
        report,
        &agent,
        "id",
        "soak qga",
        &qga_mix(&commands, scratch.path()),
    );
}

/// Sends the mix in bursts on one connection, matching replies by `tag_field`.
fn soak(
    env: &Env,
    report: &mut Report,
    agent: &crate::harness::Peer,
    tag_field: &str,
    name: &str,
    items: &[Item],
) {
    let stream = UnixStream::connect(&agent.sock).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::with_capacity(1 << 20, stream);

    let total = env.soak_requests;
    let bursts = total.div_ceil(BURST);
    let (mut lost, mut wrong, mut sent) = (0usize, 0usize, 0usize);
    let mut samples = vec![("start", agent.rss_kib(), open_fds(agent.pid()))];
    let t0 = Instant::now();
    let mut line = String::new();
    for b in 0..bursts {
        let mut pending: HashMap<String, Expect> = HashMap::with_capacity(BURST);
        let mut buf = Vec::with_capacity(BURST * 96);
        for i in 0..BURST.min(total - sent) {
            let item = &items[(b * BURST + i) % items.len()];
            let tag = format!("s{b}-{i}");
            let mut req = item.request.clone();
            req[tag_field] = json!(tag);
            serde_json::to_writer(&mut buf, &req).expect("encode");
            buf.extend_from_slice(b"\r\n");
            pending.insert(tag, item.expect);
            sent += 1;
        }
        writer.write_all(&buf).expect("send burst");
        // Even the malformed requests of the mix carry a tag the agent can read.
        let mut replies = pending.len();
        while replies > 0 {
            line.clear();
            if reader.read_line(&mut line).expect("read") == 0 {
                panic!("agent closed the connection");
            }
            replies -= 1;
            let v: Value = serde_json::from_str(&line).expect("reply is JSON");
            let tag = v[tag_field].as_str().unwrap_or_default().to_string();
            let got = match (v.get("error"), pending.get(&tag)) {
                (None, _) => Expect::Ok,
                (Some(e), Some(Expect::Class(want))) if e["class"] == json!(want) => {
                    Expect::Class(want)
                }
                (Some(e), Some(Expect::Class(_))) => {
                    eprintln!("soak: {tag}: class {}", e["class"]);
                    Expect::Err(i64::MIN)
                }
                (Some(e), _) => Expect::Err(e["code"].as_i64().unwrap_or(i64::MIN)),
            };
            match pending.remove(&tag) {
                Some(want) if want == got => {}
                Some(want) => {
                    wrong += 1;
                    eprintln!("{name}: {tag}: expected {want:?}, got {line}");
                }
                None => wrong += 1,
            }
        }
        lost += pending.len();
        if b == bursts / 2 {
            samples.push(("middle", agent.rss_kib(), open_fds(agent.pid())));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    samples.push(("end", agent.rss_kib(), open_fds(agent.pid())));
    for (when, rss, fds) in &samples {
        println!("{name}: {when}: RSS {rss} KiB, {fds} descriptors");
    }
    report.add(
        format!("{name}: {sent} mixed requests, requests/s"),
        sent as f64 / secs,
        None,
        Better::Higher,
    );
    report.add(
        format!("{name}: lost replies"),
        lost as f64,
        None,
        Better::Lower,
    );
    report.add(
        format!("{name}: wrong or unmatched replies"),
        wrong as f64,
        None,
        Better::Lower,
    );
    let (mid, end) = (samples[1], samples[2]);
    report.add(
        format!("{name}: RSS end / middle"),
        end.1 as f64 / mid.1 as f64,
        None,
        Better::Lower,
    );
    report.add(
        format!("{name}: descriptors end / middle"),
        end.2 as f64 / mid.2 as f64,
        None,
        Better::Lower,
    );
}
