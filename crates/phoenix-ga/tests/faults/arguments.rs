//! Arguments of every wrong type and size for every argument of every command: each
//! is refused with the right code, and nothing happens on the OS.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use phoenix_testkit::{err, ok, path_str as s, unb64, Launch, RawConn};
use serde_json::{json, Value};

use crate::helpers::{alive, ping};
use crate::AGENT;

/// Raw JSON texts of wrong values for a string argument.
fn bad_strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "123",
        "-1",
        "true",
        "[]",
        "[\"x\"]",
        "{}",
        "{\"a\":1}",
        "\"\"",
        "\"a\\u0000b\"",
    ]
    .map(String::from)
    .to_vec();
    v.push(format!("\"/{}\"", "a".repeat(100 * 1024)));
    v
}

/// Raw JSON texts of wrong values for an integer argument (2^63, 2^64, 2^40...).
fn bad_ints() -> Vec<String> {
    [
        "-1",
        "-9223372036854775808",
        "9223372036854775808",
        "18446744073709551616",
        "1099511627776",
        "1.5",
        "\"1\"",
        "true",
        "[]",
        "{}",
        "\"\"",
    ]
    .map(String::from)
    .to_vec()
}

/// Raw JSON texts of wrong values for a boolean argument.
fn bad_bools() -> Vec<String> {
    ["\"true\"", "1", "[]", "{}", "\"\""]
        .map(String::from)
        .to_vec()
}

/// The JSON type an argument expects.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Int,
    Bool,
}

/// A command's arguments: (name, kind, harmless baseline value as JSON text).
type Fields = Vec<(&'static str, Kind, String)>;

/// Whether `cmd` may legitimately succeed with `field` = `raw` (documented values).
fn may_succeed(cmd: &str, field: &str, raw: &str) -> bool {
    let int = raw.parse::<i64>().is_ok();
    match (cmd, field) {
        ("directory-list", "n") => int, // 0 or less means all; a large n is a cap
        ("file-chown", "uid" | "gid") => raw == "-1", // -1 leaves it unchanged
        ("file-write", "bufb64") => raw == "\"\"", // nothing to append
        ("route-add" | "route-del", "gateway" | "src") => raw == "\"\"", // none
        _ => false,
    }
}

/// The errnos a wrong argument may get besides -1.
const BAD_ARG_ERRNOS: &[i64] = &[2, 9, 19, 20, 22, 36];

/// A request line with `args` as raw JSON text.
fn request_text(cmd: &str, args: &str, tag: &str) -> String {
    format!("{{\"execute\":\"{cmd}\",\"arguments\":{args},\"tag\":\"{tag}\"}}\r\n")
}

/// Sends a raw request line; its reply, which must carry `tag`.
fn send_text(c: &mut RawConn, text: &str, tag: &str) -> Value {
    c.send(text.as_bytes());
    let r = c.recv();
    assert_eq!(r["tag"], tag, "reply to another request: {r}");
    r
}

/// The first 40 bytes, for messages about 100 KiB values.
fn short(raw: &str) -> &str {
    &raw[..raw.len().min(40)]
}

/// qemu-ga's commands the Phoenix envelope offers too that act on the machine (its clock,
/// power, CPUs, accounts, processes): a baseline value here would set this machine's clock
/// or a real user's keys. Their argument errors are tested where nothing real can change:
/// tests/control.rs (a guard refuses any request that could act), tests/accounts/ (a
/// private /etc in a mount namespace), tests/exec/, and in the TCG guest.
const ACTS_ON_THE_MACHINE: &[&str] = &[
    "guest-set-time",
    "guest-shutdown",
    "guest-suspend-disk",
    "guest-suspend-ram",
    "guest-suspend-hybrid",
    "guest-set-vcpus",
    "guest-set-memory-blocks",
    "guest-set-user-password",
    "guest-ssh-get-authorized-keys",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-remove-authorized-keys",
    "guest-exec",
    "guest-exec-status",
    "guest-exec-read",
    "guest-exec-write",
    "guest-exec-kill",
    "guest-exec-resize",
];

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
        "guest-get-time",
        "guest-get-vcpus",
        "guest-get-memory-blocks",
    ];
    let commands = ok(&mut c, "get-commands", json!(null));
    let mut n = 0u64;
    for name in commands.as_array().unwrap() {
        let name = name.as_str().unwrap();
        if name == "agent-shutdown" || name == "fs-freeze" {
            continue; // shutdown would end the test; fs-freeze has its own list below
        }
        if ACTS_ON_THE_MACHINE.contains(&name) {
            continue; // never sent to an agent on this machine
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
