//! qemu-ga's inventory commands against the real binary in the qga dialect: what they
//! answer is checked against what the OS shows (uname, os-release read by the shell,
//! hostname, date, /proc/loadavg, /proc/stat, /sys/devices/system/cpu, lsmem), and
//! side by side with Debian's qemu-ga: the same requests to both, the same reply
//! shapes and error replies, the same values where both read the same facts.
//!
//! Files the agents read are changed for both in a mount namespace of their own
//! (`unshare -m`, a tmpfs over /etc or /run holding fixtures); the machine's own files
//! are never touched.
//!
//! Deliberate differences, each asserted here (docs/commands/system.md says why):
//! a QAPI `number` that is whole is printed `0.0` (qemu-ga prints `0`); single-quoted
//! os-release values are unquoted and a stray line does not void the file; a copied
//! /etc/localtime gives its zone (qemu-ga: UTC); logind's sessions stand in for a
//! missing utmp (qemu-ga: nobody); a utmp record without a user name is no user.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phoenix_testkit::{
    must, path_str, qga_call, qga_err, qga_ok, shape, Launch, QemuGa, RawConn, TestAgent,
};
use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");

/// Every inventory command.
const COMMANDS: [&str; 10] = [
    "guest-get-osinfo",
    "guest-get-host-name",
    "guest-get-timezone",
    "guest-get-users",
    "guest-get-time",
    "guest-get-vcpus",
    "guest-get-memory-blocks",
    "guest-get-memory-block-info",
    "guest-get-load",
    "guest-get-cpustats",
];

/// Our agent in the qga dialect, behind `wrapper`.
fn ours(wrapper: &[&str]) -> TestAgent {
    Launch::new(AGENT)
        .wrapper(wrapper)
        .start(&["--dialect", "qga"])
}

/// Debian's qemu-ga, behind `wrapper`.
fn theirs(wrapper: &[&str]) -> QemuGa {
    QemuGa::start(wrapper, &[])
}

fn get(c: &mut RawConn, command: &str) -> Value {
    qga_ok(c, command, Value::Null)
}

/// A wrapper that runs `setup` (sh) in a new mount namespace, then the agent.
fn mount_ns(setup: &str) -> Vec<String> {
    [
        "unshare",
        "-m",
        "sh",
        "-c",
        &format!("set -e; {setup}; exec \"$@\""),
        "sh",
    ]
    .map(String::from)
    .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// qemu-ga prints a QAPI `number` that happens to be whole without a fraction (`0`),
/// which reads back as an integer; we always print one (`0.0`). The same JSON number
/// either way: this makes qemu-ga's members of type `number` floats, so that shapes
/// compare.
fn floats(v: Value) -> Value {
    const NUMBERS: [&str; 4] = ["load1m", "load5m", "load15m", "login-time"];
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| match v.as_f64() {
                    Some(f) if NUMBERS.contains(&k.as_str()) => (k, json!(f)),
                    _ => (k, floats(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(floats).collect()),
        other => other,
    }
}

#[test]
fn shapes_and_argument_errors_match_qemu_ga() {
    let a = ours(&[]);
    let q = theirs(&[]);
    let (mut c, mut d) = (a.raw(), q.raw());
    for command in COMMANDS {
        let mine = get(&mut c, command);
        let other = floats(get(&mut d, command));
        assert_eq!(shape(&mine), shape(&other), "{command}: {mine} / {other}");
        // No argument is taken: the same refusal.
        let e1 = qga_err(&qga_call(&mut c, command, json!({"x": 1})));
        let e2 = qga_err(&qga_call(&mut d, command, json!({"x": 1})));
        assert_eq!(e1, e2, "{command}");
        assert_eq!(
            e1,
            ("GenericError".into(), "Parameter 'x' is unexpected".into())
        );
    }
    // Whole floats: ours always carry a fraction.
    let load = get(&mut c, "guest-get-load");
    for k in ["load1m", "load5m", "load15m"] {
        assert!(load[k].is_f64(), "{load}");
    }
    // guest-info lists them, enabled.
    let info = get(&mut c, "guest-info");
    for command in COMMANDS {
        let listed = info["supported_commands"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == command)
            .unwrap_or_else(|| panic!("{command} not in guest-info"));
        assert_eq!(listed["enabled"], true);
        assert_eq!(listed["success-response"], true);
    }
}

/// The os-release fields as the shell reads the file (`. FILE`); absent ones `None`.
fn os_release_by_shell(file: &str) -> BTreeMap<&'static str, Option<String>> {
    let keys = [
        ("id", "ID"),
        ("name", "NAME"),
        ("pretty-name", "PRETTY_NAME"),
        ("version", "VERSION"),
        ("version-id", "VERSION_ID"),
        ("variant", "VARIANT"),
        ("variant-id", "VARIANT_ID"),
    ];
    let script: String = keys
        .iter()
        .map(|(_, k)| {
            format!("if [ \"${{{k}+set}}\" ]; then printf 'y%s\\n' \"${k}\"; else echo n; fi; ")
        })
        .collect();
    let out = must("sh", &["-c", &format!(". {file}; {script}")]);
    keys.iter()
        .zip(out.lines())
        .map(|((member, _), line)| (*member, line.strip_prefix('y').map(String::from)))
        .collect()
}

fn assert_os_release(reply: &Value, want: &BTreeMap<&str, Option<String>>) {
    for (member, value) in want {
        assert_eq!(
            reply.get(*member).and_then(Value::as_str),
            value.as_deref(),
            "{member}: {reply}"
        );
    }
}

#[test]
fn osinfo_is_uname_and_os_release() {
    let a = ours(&[]);
    let q = theirs(&[]);
    let mine = get(&mut a.raw(), "guest-get-osinfo");
    assert_eq!(mine["kernel-release"], must("uname", &["-r"]));
    assert_eq!(mine["kernel-version"], must("uname", &["-v"]));
    assert_eq!(mine["machine"], must("uname", &["-m"]));
    let file = if Path::new("/etc/os-release").exists() {
        "/etc/os-release"
    } else {
        "/usr/lib/os-release"
    };
    assert_os_release(&mine, &os_release_by_shell(file));
    assert_eq!(mine, get(&mut q.raw(), "guest-get-osinfo"));
}

#[test]
fn qga_os_release_names_the_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("os-release");
    std::fs::write(
        &file,
        "# a fixture in the manner of QEMU's tests/data/test-qga-os-release\n\
         ID=phoenix-test\nNAME=Phoenix-GA\nPRETTY_NAME=\"Phoenix guest agent test\"\n\
         VERSION=\"Test 2\"\nVERSION_ID=2\n\
         VARIANT=\"Escapes \\\"\\'\\$\\`\\\\ and \\\\\\\\ and \\n stay\"\nVARIANT_ID=unit-test\n",
    )
    .unwrap();
    let env = [
        "env".to_string(),
        format!("QGA_OS_RELEASE={}", file.display()),
    ];
    let a = ours(&strs(&env));
    let q = theirs(&strs(&env));
    let mine = get(&mut a.raw(), "guest-get-osinfo");
    assert_eq!(mine, get(&mut q.raw(), "guest-get-osinfo"));
    assert_eq!(mine["id"], "phoenix-test");
    assert_eq!(mine["pretty-name"], "Phoenix guest agent test");
    assert_eq!(mine["version"], "Test 2");
    assert_eq!(mine["variant"], r#"Escapes "'$`\ and \\ and \n stay"#);
    assert_eq!(mine["variant-id"], "unit-test");
    assert_eq!(mine["kernel-release"], must("uname", &["-r"]));

    // Where we differ: single quotes are quotes, a stray line is skipped.
    std::fs::write(
        &file,
        "ID=odd\nNAME='Odd Linux'\nthis line is not an assignment\n",
    )
    .unwrap();
    let mine = get(&mut a.raw(), "guest-get-osinfo");
    assert_eq!(
        (mine["id"].as_str(), mine["name"].as_str()),
        (Some("odd"), Some("Odd Linux"))
    );
    // As the shell reads it (which complains about the stray line and goes on).
    assert_os_release(&mine, &os_release_by_shell(path_str(&file)));
    let other = get(&mut q.raw(), "guest-get-osinfo");
    assert_eq!(
        other.get("id"),
        None,
        "GLib refuses the whole file: {other}"
    );
    std::fs::write(&file, "ID=odd\nNAME='Odd Linux'\n").unwrap();
    let other = get(&mut q.raw(), "guest-get-osinfo");
    assert_eq!(other["name"], "'Odd", "qemu-ga cuts at the blank: {other}");

    // A file that cannot be read: no distribution fields, no fallback, no error.
    std::fs::remove_file(&file).unwrap();
    let mine = get(&mut a.raw(), "guest-get-osinfo");
    let keys: Vec<&String> = mine.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["kernel-release", "kernel-version", "machine"]);
    assert_eq!(mine, get(&mut q.raw(), "guest-get-osinfo"));
}

#[test]
fn os_release_falls_back_to_usr_lib() {
    // /etc is an empty tmpfs for both agents: no /etc/os-release.
    let wrapper = mount_ns("mount -t tmpfs phoenix-etc /etc");
    let a = ours(&strs(&wrapper));
    let q = theirs(&strs(&wrapper));
    let mine = get(&mut a.raw(), "guest-get-osinfo");
    assert_os_release(&mine, &os_release_by_shell("/usr/lib/os-release"));
    assert!(mine.get("id").is_some(), "{mine}");
    assert_eq!(mine, get(&mut q.raw(), "guest-get-osinfo"));
}

#[test]
fn host_name_and_time() {
    let a = ours(&[]);
    let q = theirs(&[]);
    let (mut c, mut d) = (a.raw(), q.raw());
    let name = get(&mut c, "guest-get-host-name");
    assert_eq!(name, json!({"host-name": must("hostname", &[])}));
    assert_eq!(name, get(&mut d, "guest-get-host-name"));

    let now = || {
        i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        )
        .unwrap()
    };
    let before = now();
    let mine = get(&mut c, "guest-get-time").as_i64().unwrap();
    let after = now();
    assert!(before <= mine && mine <= after, "{before} {mine} {after}");
    let other = get(&mut d, "guest-get-time").as_i64().unwrap();
    assert!((other - mine).abs() < 1_000_000_000, "{mine} / {other}");
}

/// `(offset, abbreviation)` now, as `date` (glibc) sees zone `tz` (`None`: the
/// system's).
fn date_zone(tz: Option<&str>) -> Value {
    let mut cmd = std::process::Command::new("date");
    if let Some(tz) = tz {
        cmd.env("TZ", tz);
    }
    let out = cmd.arg("+%::z %Z").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (z, abbrev) = text.trim().split_once(' ').unwrap();
    let sign = if z.starts_with('-') { -1 } else { 1 };
    let p: Vec<i64> = z[1..].split(':').map(|x| x.parse().unwrap()).collect();
    json!({"zone": abbrev, "offset": sign * (p[0] * 3600 + p[1] * 60 + p[2])})
}

#[test]
fn timezone_of_the_system_and_of_tz() {
    let a = ours(&[]);
    let q = theirs(&[]);
    let mine = get(&mut a.raw(), "guest-get-timezone");
    assert_eq!(mine, date_zone(None));
    assert_eq!(mine, get(&mut q.raw(), "guest-get-timezone"));
    // TZ in the agent's environment: a zone name, and a POSIX string.
    for tz in [
        "Asia/Tokyo",
        "America/St_Johns",
        "<+0545>-5:45",
        "EST5EDT,M3.2.0,M11.1.0",
    ] {
        let env = ["env".to_string(), format!("TZ={tz}")];
        let a = ours(&strs(&env));
        let q = theirs(&strs(&env));
        let mine = get(&mut a.raw(), "guest-get-timezone");
        assert_eq!(mine, date_zone(Some(tz)), "{tz}");
        assert_eq!(mine, get(&mut q.raw(), "guest-get-timezone"), "{tz}");
    }
}

#[test]
fn timezone_of_a_linked_or_copied_localtime() {
    let paris = "/usr/share/zoneinfo/Europe/Paris";
    let want = date_zone(Some(paris.strip_prefix("/usr/share/zoneinfo/").unwrap()));
    // A symlink into zoneinfo: both agents.
    let linked = mount_ns(&format!(
        "mount -t tmpfs phoenix-etc /etc; ln -s {paris} /etc/localtime"
    ));
    let a = ours(&strs(&linked));
    let q = theirs(&strs(&linked));
    assert_eq!(get(&mut a.raw(), "guest-get-timezone"), want);
    assert_eq!(get(&mut q.raw(), "guest-get-timezone"), want);
    // A copy: its data, where GLib, unable to name it, gives UTC.
    let copied = mount_ns(&format!(
        "mount -t tmpfs phoenix-etc /etc; cp {paris} /etc/localtime"
    ));
    let a = ours(&strs(&copied));
    let q = theirs(&strs(&copied));
    assert_eq!(get(&mut a.raw(), "guest-get-timezone"), want);
    assert_eq!(
        get(&mut q.raw(), "guest-get-timezone"),
        json!({"zone": "UTC", "offset": 0})
    );
}

/// One utmp record (glibc's x86-64 layout, as the libc crate declares it).
#[cfg(target_arch = "x86_64")]
fn utmp_record(kind: i16, line: &str, user: &str, host: &str, sec: i32, usec: i32) -> Vec<u8> {
    fn put(field: &mut [libc::c_char], s: &str) {
        for (d, &b) in field.iter_mut().zip(s.as_bytes()) {
            *d = libc::c_char::from_ne_bytes([b]);
        }
    }
    // SAFETY: all-zero bytes are a valid `utmpx` (integers and byte arrays only).
    let mut r: libc::utmpx = unsafe { std::mem::zeroed() };
    r.ut_type = kind;
    r.ut_pid = 4242;
    put(&mut r.ut_line, line);
    put(&mut r.ut_user, user);
    put(&mut r.ut_host, host);
    r.ut_tv.tv_sec = sec;
    r.ut_tv.tv_usec = usec;
    let size = std::mem::size_of::<libc::utmpx>();
    // SAFETY: `r` is a live value of `size` bytes, all initialised by `zeroed`.
    unsafe { std::slice::from_raw_parts((&r as *const libc::utmpx).cast::<u8>(), size) }.to_vec()
}

#[cfg(target_arch = "x86_64")]
#[test]
fn users_from_utmp_match_qemu_ga() {
    use libc::{BOOT_TIME, DEAD_PROCESS, LOGIN_PROCESS, USER_PROCESS};
    let dir = tempfile::tempdir().unwrap();
    let utmp = dir.path().join("utmp");
    let mut f = Vec::new();
    f.extend(utmp_record(
        BOOT_TIME,
        "~",
        "reboot",
        "6.1.0",
        1_700_000_000,
        0,
    ));
    f.extend(utmp_record(
        LOGIN_PROCESS,
        "tty1",
        "LOGIN",
        "",
        1_700_000_001,
        0,
    ));
    f.extend(utmp_record(
        USER_PROCESS,
        "pts/0",
        "bob",
        "10.0.0.1",
        1_700_000_100,
        500_000,
    ));
    f.extend(utmp_record(
        USER_PROCESS,
        "tty2",
        "root",
        "",
        1_700_000_050,
        123_457,
    ));
    f.extend(utmp_record(
        USER_PROCESS,
        "pts/1",
        "bob",
        "",
        1_700_000_020,
        250_000,
    ));
    f.extend(utmp_record(
        DEAD_PROCESS,
        "pts/2",
        "eve",
        "",
        1_600_000_000,
        0,
    ));
    f.extend(utmp_record(
        USER_PROCESS,
        "pts/3",
        "",
        "x",
        1_700_000_060,
        0,
    ));
    f.extend(utmp_record(
        USER_PROCESS,
        "pts/4",
        "carol",
        "",
        1_700_000_070,
        0,
    ));
    std::fs::write(&utmp, f).unwrap();
    let wrapper = mount_ns(&format!(
        "mount -t tmpfs phoenix-run /run; cp {} /run/utmp",
        utmp.display()
    ));
    let a = ours(&strs(&wrapper));
    let q = theirs(&strs(&wrapper));
    let mine = get(&mut a.raw(), "guest-get-users");
    assert_eq!(
        mine,
        json!([
            {"user": "bob", "login-time": 1_700_000_020.25},
            {"user": "root", "login-time": 1_700_000_050.123457},
            {"user": "carol", "login-time": 1_700_000_070.0},
        ])
    );
    // qemu-ga's list is the same, but for its entry of the nameless record.
    let other = floats(get(&mut q.raw(), "guest-get-users"));
    let named: Vec<Value> = other
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["user"] != "")
        .cloned()
        .collect();
    assert_eq!(Value::Array(named), mine);
    assert_eq!(other.as_array().unwrap().len(), 4, "{other}");
}

#[test]
fn users_from_logind_without_utmp() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    std::fs::create_dir(&sessions).unwrap();
    let session = |id: &str, user: &str, tty: &str, realtime: i64| {
        let text = format!(
            "# This is private data. Do not parse.\nUID=1000\nUSER={user}\nACTIVE=1\nSTATE=active\n\
             CLASS=user\nTTY={tty}\nREALTIME={realtime}\n"
        );
        std::fs::write(sessions.join(id), text).unwrap();
    };
    session("3", "amy", "tty1", 1_700_000_000_500_000);
    session("5", "amy", "pts/0", 1_699_999_999_000_001);
    session("7", "ben", "pts/1", 1_700_000_100_000_000);
    std::fs::write(
        sessions.join("9"),
        "USER=gone\nSTATE=closing\nCLASS=user\nREALTIME=1\n",
    )
    .unwrap();
    let wrapper = mount_ns(&format!(
        "mount -t tmpfs phoenix-run /run; mkdir -p /run/systemd; cp -r {} /run/systemd/sessions",
        sessions.display()
    ));
    let a = ours(&strs(&wrapper));
    let q = theirs(&strs(&wrapper));
    assert_eq!(
        get(&mut a.raw(), "guest-get-users"),
        json!([
            {"user": "amy", "login-time": 1_699_999_999.000001},
            {"user": "ben", "login-time": 1_700_000_100.0},
        ])
    );
    // qemu-ga reads utmp alone.
    assert_eq!(get(&mut q.raw(), "guest-get-users"), json!([]));
}

#[test]
fn users_of_this_machine_match_qemu_ga() {
    let a = ours(&[]);
    let q = theirs(&[]);
    let mine = get(&mut a.raw(), "guest-get-users");
    let utmp = Path::new("/run/utmp").exists() || Path::new("/var/run/utmp").exists();
    if utmp {
        assert_eq!(mine, floats(get(&mut q.raw(), "guest-get-users")));
    } else if !Path::new("/run/systemd/sessions").exists() {
        assert_eq!(mine, json!([]));
        assert_eq!(get(&mut q.raw(), "guest-get-users"), json!([]));
    }
}

/// The numbers of a sysfs CPU list ("0-3,6").
fn ranges(list: &str) -> Vec<i64> {
    list.trim()
        .split(',')
        .filter(|r| !r.is_empty())
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => a.parse::<i64>().unwrap()..=b.parse::<i64>().unwrap(),
            None => r.parse::<i64>().unwrap()..=r.parse::<i64>().unwrap(),
        })
        .collect()
}

#[test]
fn vcpus_are_the_kernels() {
    let a = ours(&[]);
    let q = theirs(&[]);
    let mine = get(&mut a.raw(), "guest-get-vcpus");
    let list = mine.as_array().unwrap();
    let cpu = Path::new("/sys/devices/system/cpu");
    let read = |f: &str| std::fs::read_to_string(cpu.join(f)).unwrap();
    let ids: Vec<i64> = list
        .iter()
        .map(|v| v["logical-id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, ranges(&read("present")));
    let online: Vec<i64> = list
        .iter()
        .filter(|v| v["online"] == true)
        .map(|v| v["logical-id"].as_i64().unwrap())
        .collect();
    assert_eq!(online, ranges(&read("online")));
    for v in list {
        let switch = cpu.join(format!("cpu{}/online", v["logical-id"])).exists();
        assert_eq!(v["can-offline"], switch, "{v}");
    }
    // qemu-ga lists them in directory order.
    let mut other = get(&mut q.raw(), "guest-get-vcpus")
        .as_array()
        .unwrap()
        .clone();
    other.sort_by_key(|v| v["logical-id"].as_i64());
    assert_eq!(Value::Array(other), mine);
}

#[test]
fn memory_blocks_are_the_kernels() {
    let a = ours(&[]);
    let q = theirs(&[]);
    let (mut c, mut d) = (a.raw(), q.raw());
    let size = get(&mut c, "guest-get-memory-block-info");
    let summary = must("lsmem", &["-b", "--summary=only"]);
    let lsmem_size: u64 = summary
        .lines()
        .find_map(|l| l.strip_prefix("Memory block size:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(size, json!({"size": lsmem_size}));
    assert_eq!(size, get(&mut d, "guest-get-memory-block-info"));

    let mine = get(&mut c, "guest-get-memory-blocks");
    // lsmem's ranges of blocks with their state and removability.
    let lsmem: Value = serde_json::from_str(&must(
        "lsmem",
        &["--json", "-b", "-o", "BLOCK,STATE,REMOVABLE"],
    ))
    .unwrap();
    let mut want = Vec::new();
    for r in lsmem["memory"].as_array().unwrap() {
        for id in ranges(r["block"].as_str().unwrap()) {
            want.push(json!({"phys-index": id, "online": r["state"] == "online", "can-offline": r["removable"] == true}));
        }
    }
    want.sort_by_key(|v| v["phys-index"].as_i64());
    assert_eq!(mine, Value::Array(want));
    let mut other = get(&mut d, "guest-get-memory-blocks")
        .as_array()
        .unwrap()
        .clone();
    other.sort_by_key(|v| v["phys-index"].as_i64());
    assert_eq!(Value::Array(other), mine);
}

/// /proc/loadavg's three figures.
fn proc_loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .map(|x| x.parse().unwrap())
        .collect();
    [v[0], v[1], v[2]]
}

fn loads(v: &Value) -> [f64; 3] {
    ["load1m", "load5m", "load15m"].map(|k| v[k].as_f64().unwrap())
}

#[test]
fn load_is_the_kernels() {
    let a = ours(&[]);
    let q = theirs(&[]);
    let (mut c, mut d) = (a.raw(), q.raw());
    // The kernel updates the figures every 5 s: a reading that straddles an update is
    // taken again.
    let mut checked = 0;
    for _ in 0..20 {
        let before = proc_loadavg();
        let mine = loads(&get(&mut c, "guest-get-load"));
        let other = loads(&get(&mut d, "guest-get-load"));
        let again = loads(&get(&mut c, "guest-get-load"));
        if before != proc_loadavg() || mine != again {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        // /proc/loadavg rounds the exact figures to hundredths (from 11-bit fixed
        // point, so up to 10/1024 off).
        for (exact, shown) in mine.iter().zip(before) {
            assert!((exact - shown).abs() <= 0.0098, "{mine:?} / {before:?}");
        }
        assert_eq!(mine, other, "both read the kernel's exact figures");
        checked += 1;
        if checked == 3 {
            return;
        }
    }
    panic!("the load kept changing");
}

/// /proc/stat's `cpuN` lines: CPU number and its figures.
fn proc_stat() -> BTreeMap<i64, Vec<u64>> {
    std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let n = f.next()?.strip_prefix("cpu")?.parse().ok()?;
            Some((n, f.map(|x| x.parse().unwrap()).collect()))
        })
        .collect()
}

#[test]
fn cpustats_are_proc_stat_in_milliseconds() {
    let a = ours(&[]);
    let q = theirs(&[]);
    let hz: u64 = must("getconf", &["CLK_TCK"]).parse().unwrap();
    let names = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
        "guest",
        "guestnice",
    ];
    let check =
        |reply: &Value, before: &BTreeMap<i64, Vec<u64>>, after: &BTreeMap<i64, Vec<u64>>| {
            let list = reply.as_array().unwrap();
            let cpus: Vec<i64> = list.iter().map(|s| s["cpu"].as_i64().unwrap()).collect();
            assert_eq!(cpus, before.keys().copied().collect::<Vec<_>>());
            for s in list {
                assert_eq!(s["type"], "linux");
                let n = s["cpu"].as_i64().unwrap();
                let (lo, hi) = (&before[&n], &after[&n]);
                assert_eq!(s.as_object().unwrap().len(), 2 + lo.len().min(10), "{s}");
                for (i, name) in names.iter().enumerate().take(lo.len()) {
                    let ms = s[*name].as_u64().unwrap();
                    assert!(
                        lo[i] * 1000 / hz <= ms && ms <= hi[i] * 1000 / hz,
                        "cpu{n} {name}: {ms}"
                    );
                }
            }
        };
    let before = proc_stat();
    let mine = get(&mut a.raw(), "guest-get-cpustats");
    let other = get(&mut q.raw(), "guest-get-cpustats");
    let after = proc_stat();
    check(&mine, &before, &after);
    check(&other, &before, &after);
}
