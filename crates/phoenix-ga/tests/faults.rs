//! Injected faults against the real binary: signal storms, a host that vanishes
//! mid-reply, a full disk, files and directories pulled away under open handles,
//! descriptor exhaustion, and arguments of every wrong type and size. Each test checks
//! what the OS shows afterwards, not only the replies.

mod faults_support;

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use faults_support::*;
use phoenix_testkit::{
    b64, call, err, fails, md5_of, ok, path_str as s, random_bytes, ret, unb64, Launch, RawConn,
    MIB,
};
use serde_json::json;

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");

#[test]
fn signal_storm_during_transfers_and_sysinfo() {
    let mut agent = Launch::new(AGENT).start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    let dst = dir.path().join("dst.bin");
    let data = random_bytes(32 * MIB, 0x5157);
    fs::write(&src, &data).unwrap();
    let mut c = agent.raw();
    let storm = SignalStorm::start(agent.pid(), storm_signals());
    // sysinfo on a second connection all along the transfers.
    let release = nix::sys::utsname::uname().unwrap();
    let release = release.release().to_str().unwrap().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sysinfo_loop = {
        let (mut c2, stop, release) = (agent.raw(), stop.clone(), release.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 5 {
                sysinfo_ok(&mut c2, &format!("bg{i}"), &release);
                i += 1;
            }
            i
        })
    };

    // Download in 4 MiB chunks.
    let h = ok(&mut c, "file-open", json!({"path": s(&src), "mode": "r"}));
    let mut got = Vec::with_capacity(data.len());
    loop {
        let r = ok(
            &mut c,
            "file-read",
            json!({"handle_id": h, "count": 4 * MIB}),
        );
        got.extend_from_slice(&unb64(&r["bufb64"]));
        ping(&mut c, &format!("dl{}", got.len()));
        if r["eof"] == json!(true) {
            break;
        }
    }
    assert_eq!(got.len(), data.len());
    assert_eq!(md5_of(&got), md5_of(&data), "download corrupted");

    // Upload in 4 MiB writes, the last with eof.
    let h = ok(&mut c, "file-open", json!({"path": s(&dst), "mode": "w"}));
    let chunks: Vec<&[u8]> = data.chunks(4 * MIB).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let r = ok(
            &mut c,
            "file-write",
            json!({"handle_id": h, "bufb64": b64(chunk), "eof": last}),
        );
        assert_eq!(r, json!(true));
    }
    assert_eq!(md5_of(&fs::read(&dst).unwrap()), md5_of(&data), "upload");
    let sum = ok(&mut c, "get-file-md5sum", json!({"path": s(&dst)}));
    assert_eq!(sum, json!(md5_of(&data)));

    // And sysinfo alone under the storm.
    for i in 0..30 {
        sysinfo_ok(&mut c, &format!("si{i}"), &release);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let background = sysinfo_loop.join().expect("sysinfo thread");
    assert!(background >= 5);

    let sent = storm.stop();
    assert!(sent > 100, "the storm sent only {sent} signals");
    assert!(alive(&mut agent.child), "the agent died under signals");
    ping(&mut c, "after");
}

#[test]
fn host_vanishing_mid_reply_leaves_a_clean_stream_and_the_handle() {
    let mut agent = Launch::new(AGENT).start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let data = random_bytes(37 * MIB, 0xdead);
    fs::write(&path, &data).unwrap();

    let h = {
        let mut c = agent.raw();
        let h = ok(&mut c, "file-open", json!({"path": s(&path)}));
        c.send(
            json!({"execute": "file-read", "arguments": {"handle_id": h, "count": 33554432},
                   "tag": "huge"})
            .to_string()
            .as_bytes(),
        );
        c.send(b"\n");
        let mut first = [0u8; 8192];
        c.stream.read_exact(&mut first).unwrap();
        assert!(first.starts_with(b"{\""), "{:?}", &first[..16]);
        h
        // Dropped here: the agent is still writing a 44 MiB line.
    };

    let mut c = agent.raw();
    let r = c.request(json!({"execute": "ping", "tag": "fresh"}));
    assert_eq!(
        r["tag"], "fresh",
        "first reply on the new stream is not ours"
    );
    assert!(r["return"].is_string());
    // The 32 MiB read happened (we saw its reply start); the handle goes on after it.
    let r = ok(
        &mut c,
        "file-read",
        json!({"handle_id": h, "count": 4 * MIB}),
    );
    assert_eq!(r["eof"], json!(false));
    assert_eq!(unb64(&r["bufb64"]), &data[32 * MIB..36 * MIB]);
    assert_eq!(
        ok(&mut c, "file-close", json!({"handle_id": h})),
        json!(true)
    );
    let (_, code) = fails(&mut c, "file-read", json!({"handle_id": h}));
    assert_eq!(code, 9);
    // Nothing stale follows.
    c.stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(c.stream.read(&mut buf).is_err(), "stale bytes");
    assert!(alive(&mut agent.child));
}

#[test]
fn host_vanishing_mid_request_executes_nothing() {
    let agent = Launch::new(AGENT).start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("up.bin");
    let data = random_bytes(8 * MIB, 0xabc);
    let h = {
        let mut c = agent.raw();
        let h = ok(&mut c, "file-open", json!({"path": s(&path), "mode": "w"}));
        ok(
            &mut c,
            "file-write",
            json!({"handle_id": h, "bufb64": b64(&data[..MIB])}),
        );
        // Half of a 4 MiB write, then gone.
        let line = json!({"execute": "file-write",
                          "arguments": {"handle_id": h, "bufb64": b64(&data[MIB..5 * MIB])}})
        .to_string();
        c.send(&line.as_bytes()[..line.len() / 2]);
        h
    };
    let mut c = agent.raw();
    ping(&mut c, "fresh");
    // The cut request wrote nothing; the handle goes on from where the last whole one left.
    assert_eq!(fs::read(&path).unwrap(), &data[..MIB]);
    ok(
        &mut c,
        "file-write",
        json!({"handle_id": h, "bufb64": b64(&data[MIB..]), "eof": true}),
    );
    assert_eq!(md5_of(&fs::read(&path).unwrap()), md5_of(&data));
    assert_eq!(fails(&mut c, "file-close", json!({"handle_id": h})).1, 9);
}

#[test]
fn disk_full_gives_enospc_keeps_the_bytes_and_the_handle() {
    let fsys = LoopExt4::new(2 * MIB as u64);
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let path = fsys.mnt.join("fill.bin");
    let data = random_bytes(8 * MIB, 0xf11);
    let h = ok(&mut c, "file-open", json!({"path": s(&path), "mode": "w"}));
    let chunk = 64 * 1024;
    let mut written = 0;
    let (msg, code) = loop {
        assert!(written < data.len(), "2 MiB filesystem took 8 MiB");
        let r = call(
            &mut c,
            "file-write",
            json!({"handle_id": h, "bufb64": b64(&data[written..written + chunk])}),
        );
        if r.get("error").is_some() {
            break err(&r);
        }
        assert_eq!(ret(&r), &json!(true));
        written += chunk;
    };
    assert_eq!(code, 28, "{msg}");
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(written > 0, "nothing fit before ENOSPC");
    let on_disk = fs::read(&path).unwrap();
    assert!(on_disk.len() >= written, "{} < {written}", on_disk.len());
    assert!(
        on_disk == data[..on_disk.len()],
        "bytes on disk are not what was written"
    );
    assert_eq!(
        ok(&mut c, "file-close", json!({"handle_id": h})),
        json!(true)
    );
    let (_, code) = fails(&mut c, "file-close", json!({"handle_id": h}));
    assert_eq!(code, 9, "the handle outlived its close");
    // After freeing space the filesystem takes writes again through a new handle.
    fs::remove_file(&path).unwrap();
    let h = ok(&mut c, "file-open", json!({"path": s(&path), "mode": "w"}));
    ok(
        &mut c,
        "file-write",
        json!({"handle_id": h, "bufb64": b64(&data[..chunk]), "eof": true}),
    );
    assert_eq!(fs::read(&path).unwrap(), &data[..chunk]);
    ping(&mut c, "alive");
}

#[test]
fn truncated_file_reads_eof_and_a_deleted_one_stays_readable() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(MIB, 7);

    // Truncated to nothing after the first read: the next read is an empty eof.
    let p = dir.path().join("t0");
    fs::write(&p, &data).unwrap();
    let h = ok(&mut c, "file-open", json!({"path": s(&p)}));
    let r = ok(&mut c, "file-read", json!({"handle_id": h, "count": 4096}));
    assert_eq!(unb64(&r["bufb64"]), &data[..4096]);
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    let r = ok(&mut c, "file-read", json!({"handle_id": h, "count": 4096}));
    assert_eq!(r, json!({"bufb64": "", "eof": true}));
    assert_eq!(fails(&mut c, "file-read", json!({"handle_id": h})).1, 9);

    // Truncated behind the offset's back to a middle size: the rest up to the new end.
    let p = dir.path().join("t1");
    fs::write(&p, &data).unwrap();
    let h = ok(&mut c, "file-open", json!({"path": s(&p)}));
    ok(&mut c, "file-read", json!({"handle_id": h, "count": 4096}));
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(10000)
        .unwrap();
    let r = ok(&mut c, "file-read", json!({"handle_id": h, "count": 65536}));
    assert_eq!(r["eof"], json!(true));
    assert_eq!(unb64(&r["bufb64"]), &data[4096..10000]);

    // Deleted while open: the open handle reads the whole file.
    let p = dir.path().join("gone");
    fs::write(&p, &data).unwrap();
    let h = ok(&mut c, "file-open", json!({"path": s(&p)}));
    let r = ok(&mut c, "file-read", json!({"handle_id": h, "count": 1000}));
    let mut got = unb64(&r["bufb64"]);
    fs::remove_file(&p).unwrap();
    assert!(!p.exists());
    loop {
        let r = ok(
            &mut c,
            "file-read",
            json!({"handle_id": h, "count": 300_000}),
        );
        got.extend_from_slice(&unb64(&r["bufb64"]));
        if r["eof"] == json!(true) {
            break;
        }
    }
    assert_eq!(got, data);
    // And get-file-md5sum of the name now says ENOENT.
    assert_eq!(
        fails(&mut c, "get-file-md5sum", json!({"path": s(&p)})).1,
        2
    );
    ping(&mut c, "alive");
}

#[test]
fn directory_removed_between_and_during_listing() {
    let mut agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let dir = tempfile::tempdir().unwrap();

    // Between calls.
    let d = dir.path().join("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("a"), b"a").unwrap();
    let list = ok(&mut c, "directory-list", json!({"path": s(&d)}));
    assert_eq!(list.as_array().unwrap().len(), 1);
    fs::remove_dir_all(&d).unwrap();
    let (msg, code) = fails(&mut c, "directory-list", json!({"path": s(&d)}));
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains(s(&d)), "{msg}");

    // Replaced by a file: ENOTDIR.
    fs::write(&d, b"x").unwrap();
    assert_eq!(
        fails(&mut c, "directory-list", json!({"path": s(&d)})).1,
        20
    );

    // Removed while it is being listed: either a partial list of real entries or
    // ENOENT, never a crash or an entry that never existed.
    for round in 0..3 {
        let big = dir.path().join(format!("big{round}"));
        fs::create_dir(&big).unwrap();
        for i in 0..2000 {
            fs::write(big.join(format!("e{i:05}")), b"").unwrap();
        }
        let remover = {
            let big = big.clone();
            std::thread::spawn(move || fs::remove_dir_all(&big).unwrap())
        };
        let r = call(&mut c, "directory-list", json!({"path": s(&big)}));
        remover.join().unwrap();
        if let Some(entries) = r.get("return") {
            for e in entries.as_array().unwrap() {
                let name = e["name"].as_str().unwrap();
                assert!(
                    name.len() == 6 && name.starts_with('e'),
                    "unknown entry {e}"
                );
            }
        } else {
            let (msg, code) = err(&r);
            assert_eq!(code, 2, "{msg}");
        }
        assert!(!big.exists());
        ping(&mut c, &format!("r{round}"));
    }
    assert!(alive(&mut agent.child));
}

#[test]
fn descriptor_exhaustion_gives_emfile_and_recovers() {
    let mut agent = Launch::new(AGENT)
        .wrapper(&["prlimit", "--nofile=32:32", "--"])
        .start(&[]);
    let mut c = agent.raw();
    ping(&mut c, "start");
    settle_sockets(agent.pid());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, b"hello\n").unwrap();

    let mut handles = Vec::new();
    let (msg, code) = loop {
        assert!(handles.len() < 64, "a limit of 32 descriptors never hit");
        let r = call(&mut c, "file-open", json!({"path": s(&f)}));
        match r.get("return") {
            Some(h) => handles.push(h.clone()),
            None => break err(&r),
        }
    };
    assert_eq!(code, 24, "{msg}");
    assert!(msg.contains("Too many open files"), "{msg}");
    assert!(msg.contains(s(&f)), "not the OS's EMFILE: {msg}");
    assert!(handles.len() >= 5, "only {} handles", handles.len());
    let (msg, code) = fails(&mut c, "get-file-md5sum", json!({"path": s(&f)}));
    assert_eq!(code, 24, "{msg}");
    for i in 0..5 {
        ping(&mut c, &format!("p{i}"));
    }
    assert!(alive(&mut agent.child));

    // A client that connects now is served later or refused (its connection closed);
    // never a wrong reply, and the first client goes on.
    let mut late = RawConn::connect(&agent.sock);
    // The agent may already have dropped it: a failed send is that outcome too.
    let _ = std::io::Write::write_all(
        &mut late.stream,
        b"{\"execute\":\"ping\",\"tag\":\"late\"}\n",
    );
    std::thread::sleep(Duration::from_millis(300));
    ping(&mut c, "still");

    // Close a few: open and md5 work again, new clients are served, and the other
    // handles still read.
    for h in handles.drain(..6) {
        assert_eq!(
            ok(&mut c, "file-close", json!({"handle_id": h})),
            json!(true)
        );
    }
    // A dropped client: see client_connecting_during_descriptor_exhaustion_is_served.
    if let Some(r) = late_reply(&mut late) {
        assert_eq!(r["tag"], "late", "{r}");
    }
    let mut fresh = agent.raw();
    ping(&mut fresh, "fresh");
    let sum = ok(&mut c, "get-file-md5sum", json!({"path": s(&f)}));
    assert_eq!(sum, json!(md5_of(b"hello\n")));
    let h = ok(&mut c, "file-open", json!({"path": s(&f)}));
    handles.push(h);
    for h in &handles {
        let r = ok(&mut c, "file-read", json!({"handle_id": h}));
        assert_eq!(unb64(&r["bufb64"]), b"hello\n");
    }
    ping(&mut c, "end");
}

#[test]
fn wrong_types_and_sizes_for_every_argument_of_every_command() {
    // In a network namespace of its own: route-add, ipaddr-add, net-iface-down are sent.
    let state = tempfile::tempdir().unwrap();
    let mut agent = Launch::new(AGENT)
        .wrapper(&["unshare", "-n", "--"])
        .start(&["--state-dir", s(state.path())]);
    let mut c = agent.raw();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, b"data").unwrap();
    fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let w = dir.path().join("w");
    let hr = ok(&mut c, "file-open", json!({"path": s(&f)}));
    let hw = ok(&mut c, "file-open", json!({"path": s(&w), "mode": "w"}));
    let q = |p: &std::path::Path| json!(s(p)).to_string();
    let (new, newdir, g) = (
        dir.path().join("new"),
        dir.path().join("newdir"),
        dir.path().join("g"),
    );
    use Kind::*;
    let st = |v: &str| json!(v).to_string();
    let table: Vec<(&str, Fields)> = vec![
        (
            "file-open",
            vec![
                ("path", Str, q(&new)),
                ("mode", Str, st("w")),
                ("perm", Int, "420".into()),
                ("force", Bool, "false".into()),
            ],
        ),
        (
            "file-read",
            vec![
                ("handle_id", Int, hr.to_string()),
                ("count", Int, "4096".into()),
            ],
        ),
        (
            "file-write",
            vec![
                ("handle_id", Int, hw.to_string()),
                ("bufb64", Str, st("QUJD")),
                ("eof", Bool, "false".into()),
            ],
        ),
        ("file-close", vec![("handle_id", Int, hr.to_string())]),
        ("get-file-md5sum", vec![("path", Str, q(&f))]),
        (
            "file-chown",
            vec![
                ("path", Str, q(&f)),
                ("uid", Int, "0".into()),
                ("gid", Int, "0".into()),
            ],
        ),
        (
            "file-chmod",
            vec![("path", Str, q(&f)), ("perm", Int, "420".into())],
        ),
        ("file-stat", vec![("path", Str, q(&f))]),
        (
            "directory-create",
            vec![("path", Str, q(&newdir)), ("perm", Int, "493".into())],
        ),
        (
            "directory-list",
            vec![("path", Str, q(dir.path())), ("n", Int, "0".into())],
        ),
        (
            "file-rename",
            vec![("src", Str, q(&f)), ("dst", Str, q(&g))],
        ),
        (
            "ipaddr-add",
            vec![("ip", Str, st("10.9.9.9/24")), ("ifname", Str, st("lo"))],
        ),
        (
            "ipaddr-del",
            vec![("ip", Str, st("10.9.9.9/24")), ("ifname", Str, st("lo"))],
        ),
        (
            "linux-ipaddr-add",
            vec![("ip", Str, st("10.9.9.9/24")), ("ifname", Str, st("lo"))],
        ),
        (
            "linux-ipaddr-del",
            vec![("ip", Str, st("10.9.9.9/24")), ("ifname", Str, st("lo"))],
        ),
        ("net-iface-up", vec![("ifname", Str, st("lo"))]),
        ("net-iface-down", vec![("ifname", Str, st("lo"))]),
        ("get-route-list", vec![("family", Int, "2".into())]),
        (
            "route-add",
            vec![
                ("ifname", Str, st("lo")),
                ("dst", Str, st("10.7.0.0/16")),
                ("gateway", Str, st("")),
                ("src", Str, st("")),
                ("scope", Int, "0".into()),
            ],
        ),
        (
            "route-del",
            vec![
                ("ifname", Str, st("lo")),
                ("dst", Str, st("10.7.0.0/16")),
                ("gateway", Str, st("")),
                ("src", Str, st("")),
                ("scope", Int, "0".into()),
            ],
        ),
    ];
    // Commands without arguments: wrong `arguments` may be ignored or refused (-1).
    let no_args = [
        "ping",
        "get-commands",
        "sysinfo",
        "get-netifaces",
        "get-freeze-status",
        "fs-sync",
        "fs-unfreeze",
    ];
    let commands = ok(&mut c, "get-commands", json!(null));
    let mut n = 0u64;
    for name in commands.as_array().unwrap() {
        let name = name.as_str().unwrap();
        if name == "agent-shutdown" || name == "fs-freeze" {
            continue; // shutdown would end the test; fs-freeze has its own list below
        }
        // `arguments` that are not an object.
        for raw in ["\"x\"", "[1]", "5", "true", "[{\"path\":\"/\"}]"] {
            n += 1;
            let tag = format!("t{n}");
            let r = send_text(&mut c, &request_text(name, raw, &tag), &tag);
            if no_args.contains(&name) && r.get("return").is_some() {
                continue;
            }
            let (msg, code) = err(&r);
            assert_eq!(code, -1, "{name} with arguments {raw}: {msg}");
            assert!(msg.contains("must be a JSON object"), "{name}: {msg}");
            ping(&mut c, &format!("{tag}p"));
        }
        if no_args.contains(&name) {
            continue;
        }
        let fields = &table
            .iter()
            .find(|(cmd, _)| *cmd == name)
            .unwrap_or_else(|| panic!("command {name} missing from this test's table"))
            .1;
        for (i, (field, kind, _)) in fields.iter().enumerate() {
            let values = match kind {
                Str => bad_strings(),
                Int => bad_ints(),
                Bool => bad_bools(),
            };
            for raw in &values {
                let args: Vec<String> = fields
                    .iter()
                    .enumerate()
                    .map(|(j, (k, _, base))| format!("\"{k}\":{}", if i == j { raw } else { base }))
                    .collect();
                let args = format!("{{{}}}", args.join(","));
                n += 1;
                let tag = format!("t{n}");
                let r = send_text(&mut c, &request_text(name, &args, &tag), &tag);
                let what = format!("{name} {field}={}", short(raw));
                if may_succeed(name, field, raw) {
                    ping(&mut c, &format!("{tag}p"));
                    continue;
                }
                assert!(r.get("error").is_some(), "{what}: success {r}");
                let (msg, code) = err(&r);
                assert!(
                    code == -1 || BAD_ARG_ERRNOS.contains(&code),
                    "{what}: code {code} {}",
                    short(&msg)
                );
                let pathlike = *kind == Str
                    && matches!(*field, "path" | "src" | "dst")
                    && name.starts_with(['f', 'd', 'g']);
                if pathlike && raw == "\"\"" {
                    assert_eq!(code, 2, "{what}: {msg}");
                }
                if pathlike && raw.len() > 100_000 {
                    assert_eq!(code, 36, "{what}: {}", short(&msg));
                }
                if pathlike && raw.contains("\\u0000") {
                    assert_eq!(code, -1, "{what}: {}", short(&msg));
                }
                // An interface name no interface can have is the kernel's ENODEV.
                if *field == "ifname" && raw.starts_with('"') {
                    assert_eq!(code, 19, "{what}: {}", short(&msg));
                }
                ping(&mut c, &format!("{tag}p"));
            }
        }
    }
    assert!(n > 500, "only {n} requests");

    // fs-freeze only with values refused before anything is frozen.
    let long = format!("\"{}\"", "a".repeat(100 * 1024));
    let refused = [
        "{\"mountpoints\":5}".to_string(),
        "{\"mountpoints\":\"/\"}".into(),
        "{\"mountpoints\":[]}".into(),
        "{\"mountpoints\":[\"relative\"]}".into(),
        "{\"mountpoints\":[\"\"]}".into(),
        "{\"mountpoints\":[1]}".into(),
        "{\"mountpoints\":{\"a\":1}}".into(),
        "{\"mountpoints\":true}".into(),
        "{\"mountpoints\":[\"a\\u0000b\"]}".into(),
        format!("{{\"mountpoints\":[{long}]}}"),
        "\"x\"".into(),
        "[\"/\"]".into(),
        "5".into(),
    ];
    for (i, args) in refused.iter().enumerate() {
        let tag = format!("fz{i}");
        let r = send_text(&mut c, &request_text("fs-freeze", args, &tag), &tag);
        let (msg, code) = err(&r);
        assert_eq!(code, -1, "fs-freeze {}: {msg}", short(args));
        assert_eq!(ok(&mut c, "get-freeze-status", json!(null)), json!(false));
        ping(&mut c, &format!("{tag}p"));
    }

    // Nothing happened on the OS.
    assert!(!new.exists(), "file-open created a file with bad arguments");
    assert!(!newdir.exists(), "directory-create with bad arguments");
    assert!(f.exists() && !g.exists(), "file-rename with bad arguments");
    let meta = fs::metadata(&f).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o644, "file-chmod with bad arguments");
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    assert_eq!(
        ok(&mut c, "file-close", json!({"handle_id": hw})),
        json!(true)
    );
    assert_eq!(
        fs::read(&w).unwrap(),
        b"",
        "file-write with bad arguments wrote"
    );
    let r = ok(&mut c, "file-read", json!({"handle_id": hr}));
    assert_eq!(
        unb64(&r["bufb64"]),
        b"data",
        "the read handle moved or closed"
    );
    let pid = agent.pid().to_string();
    let addrs = Command::new("nsenter")
        .args(["-t", &pid, "-n", "ip", "-o", "addr"])
        .output()
        .unwrap();
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(!addrs.contains("10.9.9.9"), "address added: {addrs}");
    assert!(alive(&mut agent.child));
    ping(&mut c, "end");
}

#[test]
// Regression: serve_client used to dup the socket and dropped this client at EMFILE.
fn client_connecting_during_descriptor_exhaustion_is_served() {
    let agent = Launch::new(AGENT)
        .wrapper(&["prlimit", "--nofile=32:32", "--"])
        .start(&[]);
    let mut c = agent.raw();
    ping(&mut c, "start");
    settle_sockets(agent.pid());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, b"x").unwrap();
    let mut handles = Vec::new();
    loop {
        assert!(handles.len() < 64, "a limit of 32 descriptors never hit");
        let r = call(&mut c, "file-open", json!({"path": s(&f)}));
        match r.get("return") {
            Some(h) => handles.push(h.clone()),
            None => {
                assert_eq!(err(&r).1, 24);
                break;
            }
        }
    }
    let mut late = RawConn::connect(&agent.sock);
    late.send(b"{\"execute\":\"ping\",\"tag\":\"late\"}\n");
    std::thread::sleep(Duration::from_millis(300));
    for h in handles.drain(..6) {
        ok(&mut c, "file-close", json!({"handle_id": h}));
    }
    // Served now that descriptors are free (or refused before being accepted, and
    // served on a retry): never accepted and then dropped.
    let r = late_reply(&mut late).expect("the client was accepted and then dropped");
    assert_eq!(r["tag"], "late", "{r}");
}

#[test]
fn signal_storm_during_a_read_blocked_on_a_pipe() {
    let mut agent = Launch::new(AGENT).start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // The writer end, opened once the agent opens the reader end.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::OpenOptions::new().write(true).open(fifo).unwrap())
    };
    let mut c = agent.raw();
    let h = ok(&mut c, "file-open", json!({"path": s(&fifo)}));
    let mut writer = writer.join().unwrap();
    // A read that blocks in read(2) while the storm goes on.
    let blocked = {
        let (mut c2, h) = (agent.raw(), h.clone());
        std::thread::spawn(move || {
            call(&mut c2, "file-read", json!({"handle_id": h, "count": 100}))
        })
    };
    let storm = SignalStorm::start(agent.pid(), storm_signals());
    for i in 0..20 {
        ping(&mut c, &format!("p{i}"));
        std::thread::sleep(Duration::from_millis(25));
    }
    std::io::Write::write_all(&mut writer, b"hello").unwrap();
    let r = blocked.join().unwrap();
    let sent = storm.stop();
    assert!(sent > 100, "only {sent} signals");
    // Not EINTR: the read waited through every signal and got the bytes.
    let got = ret(&r);
    assert_eq!(unb64(&got["bufb64"]), b"hello", "{r}");
    assert_eq!(got["eof"], json!(false));
    drop(writer);
    let r = ok(&mut c, "file-read", json!({"handle_id": h}));
    assert_eq!(r, json!({"bufb64": "", "eof": true}));
    assert!(alive(&mut agent.child));
}
