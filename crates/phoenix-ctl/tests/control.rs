//! `time`, `shutdown`/`reboot`/`halt`, `vcpus` and `fstrim`.
//!
//! NEVER let these act on this machine: the real agent here only answers reads
//! (`time`, `vcpus`) and refusals; every form that sets the clock, powers down or
//! switches CPUs talks to [`Peer`], a fake qemu-ga on a socket of the test that
//! records each request and answers as told; and, for real, a TCG guest of the test's
//! own (the last test).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use common::{fails, json, ok, TestAgent, CTL};
use phoenix_testkit::{agent_binary, Launch};
use serde_json::{json, Value};

/// A fake agent speaking the qemu-ga dialect: answers `guest-ping`, `guest-get-time`
/// (a fixed time), `guest-get-vcpus` (four CPUs, cpu0 fixed, cpu2 offline) and
/// `guest-fstrim` (a fixed reply); `guest-set-vcpus` returns how many it was given;
/// `guest-set-time` and `guest-shutdown` get the error in `refuse`, or no reply
/// when it is `None`. Every request is recorded.
struct Peer {
    sock: std::path::PathBuf,
    requests: Arc<Mutex<Vec<Value>>>,
    _dir: tempfile::TempDir,
}

const TIME_NS: i64 = 1_796_539_393_123_456_789;

impl Peer {
    fn start(refuse: Option<&'static str>) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("qga.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                serve(conn, &seen, refuse);
            }
        });
        Peer {
            sock,
            requests,
            _dir: dir,
        }
    }

    /// `phoenix-ctl --dialect qga -s SOCK ARGS...`.
    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(CTL)
            .args(["--dialect", "qga", "--timeout", "20", "-s"])
            .arg(&self.sock)
            .args(args)
            .env_remove("PHOENIX_SOCKET")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The requests other than `guest-ping` and `guest-get-time`, as sent.
    fn acts(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| !matches!(r["execute"].as_str(), Some("guest-ping" | "guest-get-time" | "guest-get-vcpus")))
            .map(|r| json!({"execute": r["execute"], "arguments": r.get("arguments").cloned().unwrap_or(Value::Null)}))
            .collect()
    }
}

fn serve(conn: UnixStream, seen: &Mutex<Vec<Value>>, refuse: Option<&str>) {
    let mut out = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text: Vec<u8> = line.iter().copied().filter(|&b| b != 0xFF).collect();
        let Ok(req) = serde_json::from_slice::<Value>(&text) else {
            continue;
        };
        seen.lock().unwrap().push(req.clone());
        let args = req.get("arguments").cloned().unwrap_or(json!({}));
        let ret = match req["execute"].as_str().unwrap_or_default() {
            "guest-ping" => Some(json!({"return": {}})),
            "guest-get-time" => Some(json!({"return": TIME_NS})),
            "guest-get-vcpus" => Some(json!({"return": [
                {"logical-id": 0, "online": true, "can-offline": false},
                {"logical-id": 1, "online": true, "can-offline": true},
                {"logical-id": 2, "online": false, "can-offline": true},
                {"logical-id": 3, "online": true, "can-offline": true},
            ]})),
            "guest-set-vcpus" => {
                Some(json!({"return": args["vcpus"].as_array().map_or(0, Vec::len)}))
            }
            "guest-fstrim" => Some(json!({"return": {"paths": [
                {"path": "/", "trimmed": 1_048_576, "minimum": args.get("minimum").cloned().unwrap_or(json!(0))},
                {"path": "/boot", "error": "Operation not supported"},
            ]}})),
            "guest-set-time" | "guest-shutdown" => {
                refuse.map(|desc| json!({"error": {"class": "GenericError", "desc": desc}}))
            }
            other => Some(
                json!({"error": {"class": "CommandNotFound", "desc": format!("The command {other} has not been found")}}),
            ),
        };
        if let Some(mut ret) = ret {
            if let Some(id) = req.get("id") {
                ret["id"] = id.clone();
            }
            let mut bytes = serde_json::to_vec(&ret).unwrap();
            bytes.push(b'\n');
            if out.write_all(&bytes).is_err() {
                return;
            }
        }
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failure(out: &Output) -> (i32, String) {
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn time_sends_the_time_asked_or_none_for_sync() {
    let peer = Peer::start(None);
    let p = Peer::start(Some("clock refused by the test"));
    let (code, err) = failure(&p.ctl(&["time", "--set", "@1796539393.5"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("clock refused by the test"), "{err}");
    let (code, _) = failure(&p.ctl(&["time", "--sync"]));
    assert_eq!(code, 1);
    let (code, _) = failure(&p.ctl(&["time", "--set", "2026-12-06T06:43:13Z"]));
    assert_eq!(code, 1);
    assert_eq!(
        p.acts(),
        [
            json!({"execute": "guest-set-time", "arguments": {"time": 1_796_539_393_500_000_000_i64}}),
            json!({"execute": "guest-set-time", "arguments": {}}),
            json!({"execute": "guest-set-time", "arguments": {"time": 1_796_539_393_000_000_000_i64}}),
        ]
    );
    // Reading sends nothing else and prints the time; --json the nanoseconds.
    let text = stdout(&peer.ctl(&["time"]));
    assert!(text.contains(".123456789 "), "{text}");
    assert_eq!(
        stdout(&peer.ctl(&["--json", "time"])).trim(),
        TIME_NS.to_string()
    );
    assert!(peer.acts().is_empty(), "{:?}", peer.acts());
}

#[test]
fn time_argument_errors_send_nothing() {
    let p = Peer::start(None);
    for args in [
        &["time", "--set", "yesterday"][..],
        &["time", "--set", "1.2.3"],
        &["time", "--set", "now", "--sync"],
        &["time", "--set"],
        &["vcpus", "--online", "-1"],
        &["vcpus", "--online", "x"],
        &["shutdown", "now"],
    ] {
        let (code, err) = failure(&p.ctl(args));
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    assert!(p.requests.lock().unwrap().is_empty(), "{:?}", p.requests);
}

#[test]
fn power_commands_send_their_mode_and_report_the_refusal() {
    let p = Peer::start(Some("not now: refused by the test"));
    for (cmd, mode) in [
        ("shutdown", "powerdown"),
        ("reboot", "reboot"),
        ("halt", "halt"),
    ] {
        let (code, err) = failure(&p.ctl(&[cmd]));
        assert_eq!(code, 1, "{cmd}: {err}");
        assert!(err.contains("not now: refused by the test"), "{cmd}: {err}");
        assert_eq!(
            p.acts().last().unwrap(),
            &json!({"execute": "guest-shutdown", "arguments": {"mode": mode}}),
            "{cmd}"
        );
    }
    // No error reply (the guest goes): success.
    let quiet = Peer::start(None);
    assert_eq!(stdout(&quiet.ctl(&["reboot"])), "");
    assert_eq!(stdout(&quiet.ctl(&["--json", "halt"])).trim(), "true");
    assert_eq!(quiet.acts().len(), 2);
}

#[test]
fn vcpus_lists_and_switches_to_the_count_asked() {
    let p = Peer::start(None);
    let table = stdout(&p.ctl(&["vcpus"]));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["CPU", "ONLINE", "CAN-OFFLINE"]);
    assert_eq!(rows[1], ["0", "yes", "no"]);
    assert_eq!(rows[3], ["2", "no", "yes"]);
    assert!(p.acts().is_empty());
    // 2 online: cpu1 stays, cpu3 goes offline (cpu2 already is).
    stdout(&p.ctl(&["vcpus", "--online", "2"]));
    // 4 online: cpu2 comes online.
    stdout(&p.ctl(&["vcpus", "--online", "4"]));
    assert_eq!(
        p.acts(),
        [
            json!({"execute": "guest-set-vcpus", "arguments": {"vcpus": [{"logical-id": 3, "online": false}]}}),
            json!({"execute": "guest-set-vcpus", "arguments": {"vcpus": [{"logical-id": 2, "online": true}]}}),
        ]
    );
    // 3 online: the three lowest-numbered, so cpu2 comes online and cpu3 goes.
    stdout(&p.ctl(&["vcpus", "--online", "3"]));
    assert_eq!(
        p.acts()[2],
        json!({"execute": "guest-set-vcpus", "arguments": {"vcpus": [
            {"logical-id": 2, "online": true}, {"logical-id": 3, "online": false}]}})
    );
    // 0 and 5 are refused before any switch.
    for n in ["0", "5"] {
        let (code, err) = failure(&p.ctl(&["vcpus", "--online", n]));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("4 logical processors"), "{err}");
    }
    assert_eq!(p.acts().len(), 3);
    let v = stdout(&p.ctl(&["--json", "vcpus"]));
    let v: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(
        v[2],
        json!({"logical-id": 2, "online": false, "can-offline": true})
    );
}

#[test]
fn fstrim_prints_each_filesystem() {
    let p = Peer::start(None);
    let out = stdout(&p.ctl(&["fstrim", "--minimum", "4096"]));
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["PATH", "TRIMMED"]);
    assert_eq!(rows[1][0], "/");
    assert_eq!(rows[2].join(" "), "/boot Operation not supported");
    assert_eq!(
        p.acts(),
        [json!({"execute": "guest-fstrim", "arguments": {"minimum": 4096}})]
    );
    let v: Value = serde_json::from_str(&stdout(&p.ctl(&["--json", "fstrim"]))).unwrap();
    assert_eq!(v["paths"][0]["trimmed"], 1_048_576);
}

// Against the real agent: reads only, and refusals.

#[test]
fn time_and_vcpus_read_the_machine_in_both_dialects() {
    let phoenix = TestAgent::start(&[]);
    let qga = TestAgent::start(&["--dialect", "qga"]);
    let cpus = std::fs::read_dir("/sys/devices/system/cpu")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count();
    for agent in [&phoenix, &qga] {
        let before = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        let ns = json(agent, &["time"]).as_i64().unwrap();
        let after = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        assert!((before..=after).contains(&ns), "{before} {ns} {after}");
        let text = ok(agent, &["time"]);
        assert!(
            text.starts_with(&chrono::Local::now().format("%Y-%m-").to_string()),
            "{text}"
        );
        let list = json(agent, &["vcpus"]);
        assert_eq!(list.as_array().unwrap().len(), cpus, "{list}");
        assert_eq!(ok(agent, &["vcpus"]).lines().count(), cpus + 1);
    }
}

/// The agent's wrapper for the refusals: no CAP_SYS_TIME, so that even a request the
/// block list let through could not set this machine's clock. Not what keeps the
/// machine safe (the block list is), a second fence.
const NO_SYS_TIME: &[&str] = &["setpriv", "--bounding-set=-sys_time,-sys_boot", "--"];

#[test]
fn a_refusing_agent_changes_nothing() {
    // Only `time` and `fstrim`: power requests are never sent to an agent on this
    // machine, even a refusing one (the fake peer above checks them).
    let blocked = "guest-set-time,guest-fstrim";
    let launch = || Launch::new(agent_binary()).wrapper(NO_SYS_TIME);
    let phoenix = launch().start(&["--block-commands", blocked]);
    let qga = launch().start(&["--dialect", "qga", "--block-commands", blocked]);
    // The Phoenix dialect has no guest-fstrim: the error says where it is.
    let (code, err) = fails(&phoenix, &["fstrim"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("qemu-ga's port (org.qemu.guest_agent.0)"),
        "{err}"
    );
    let time: &[&[&str]] = &[&["time", "--set", "now"], &["time", "--sync"]];
    let time_and_fstrim: &[&[&str]] =
        &[&["time", "--set", "now"], &["time", "--sync"], &["fstrim"]];
    for (agent, acts) in [(&phoenix, time), (&qga, time_and_fstrim)] {
        for &args in acts {
            let (code, err) = fails(agent, args);
            assert_eq!(code, 1, "{args:?}: {err}");
            assert!(
                err.contains("disabled") || err.contains("not allowed"),
                "{args:?}: {err}"
            );
        }
    }
}

// In a guest of its own (crates/phoenix-e2e): the acting forms, for real.

/// `phoenix-ctl ARGS...` against a socket of the guest; its output.
fn ctl_at(sock: &std::path::Path, args: &[&str]) -> Output {
    Command::new(CTL)
        .args(["--timeout", "120", "-s"])
        .arg(sock)
        .args(args)
        .env_remove("PHOENIX_SOCKET")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn in_a_guest_time_vcpus_fstrim_and_shutdown() {
    if phoenix_e2e::skip() {
        return;
    }
    const QGA_PORT: &str = "org.qemu.guest_agent.0";
    let mut opts = phoenix_e2e::GuestOpts::new(agent_binary());
    opts.extra_ports.push(QGA_PORT.into());
    opts.scratch_mib = 64;
    let g =
        phoenix_e2e::Guest::boot(opts).unwrap_or_else(|e| panic!("{}", phoenix_client::Report(&e)));
    let phoenix = g.host_socket();
    let qga = g.port_socket(QGA_PORT);
    let number = |script: &str| -> i64 { g.sh_ok(script).trim().parse().unwrap() };

    // time --set, on each port; time --sync from the RTC.
    for (sock, at) in [(&phoenix, 2_000_000_000_i64), (&qga, 2_100_000_000)] {
        let shown = stdout(&ctl_at(
            sock,
            &["--json", "time", "--set", &format!("@{at}")],
        ));
        let shown: i64 = shown.trim().parse().unwrap();
        assert!((at..at + 120).contains(&(shown / 1_000_000_000)), "{shown}");
        let clock = number("date +%s");
        assert!(
            (at..at + 120).contains(&clock),
            "date +%s {clock}, set {at}"
        );
        let rtc = number("cat /sys/class/rtc/rtc0/since_epoch");
        assert!((at - 1..at + 120).contains(&rtc), "RTC {rtc}, set {at}");
        g.sh_ok("date -u -s '2020-09-13 12:26:40' >/dev/null");
        stdout(&ctl_at(sock, &["time", "--sync"]));
        let clock = number("date +%s");
        assert!((at..at + 120).contains(&clock), "after --sync: {clock}");
    }

    // vcpus --online 1, then 2.
    let online = || g.sh_ok("cat /sys/devices/system/cpu/cpu1/online");
    stdout(&ctl_at(&phoenix, &["vcpus", "--online", "1"]));
    assert_eq!(online(), "0\n");
    let table = stdout(&ctl_at(&qga, &["vcpus"]));
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "no", "yes"]),
        "{table}"
    );
    stdout(&ctl_at(&qga, &["vcpus", "--online", "2"]));
    assert_eq!(online(), "1\n");

    // fstrim on qemu-ga's port: the scratch disk is among the filesystems.
    let trim: Value = serde_json::from_str(&stdout(&ctl_at(&qga, &["--json", "fstrim"]))).unwrap();
    assert!(
        trim["paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["path"] == phoenix_e2e::SCRATCH),
        "{trim}"
    );

    // shutdown: the guest's init powers off, QEMU exits.
    assert_eq!(stdout(&ctl_at(&qga, &["shutdown"])), "");
    assert!(
        g.wait_exit(std::time::Duration::from_secs(120)),
        "QEMU still runs\n{}",
        g.diagnostics()
    );
    assert!(
        g.console().contains("phoenix-e2e: poweroff"),
        "{}",
        g.diagnostics()
    );
}
