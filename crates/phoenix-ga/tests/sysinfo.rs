//! `sysinfo` against the real binary, compared with what the OS says through other
//! means (uname(1), getconf(1), /proc files, lsblk(8), statvfs via df(1)).

use std::collections::BTreeSet;

use phoenix_proto::types::system::SysInfo;
use phoenix_testkit::{err, must, ret, Launch, TestAgent};
use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");

/// A field of /proc/meminfo, in KiB.
fn meminfo(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} not in /proc/meminfo"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn proc_floats(path: &str) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .split_whitespace()
        .take(3)
        .filter_map(|f| f.parse().ok())
        .collect()
}

fn sysinfo(agent: &TestAgent) -> Value {
    let r = agent
        .raw()
        .request(json!({"execute": "sysinfo", "tag": "s"}));
    assert_eq!(r["tag"], "s");
    ret(&r).clone()
}

#[test]
fn matches_the_kernel() {
    let agent = Launch::new(AGENT).start(&[]);
    let up_before = proc_floats("/proc/uptime")[0];
    let load_before = proc_floats("/proc/loadavg");
    let v = sysinfo(&agent);
    let up_after = proc_floats("/proc/uptime")[0];
    let load_after = proc_floats("/proc/loadavg");

    // Exactly the keys of the command reference, and it decodes as the typed struct.
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let want = [
        "disks", "loadavg", "long_bit", "ram", "swap", "uname", "uptime", "users",
    ];
    assert_eq!(keys, want.into_iter().collect());
    let s: SysInfo = serde_json::from_value(v.clone()).unwrap();

    let u = &s.uname;
    assert_eq!(u.sysname, must("uname", &["-s"]));
    assert_eq!(u.nodename, must("uname", &["-n"]));
    assert_eq!(u.release, must("uname", &["-r"]));
    assert_eq!(u.version, must("uname", &["-v"]));
    assert_eq!(u.machine, must("uname", &["-m"]));
    let domain = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    assert_eq!(u.domain, domain.trim_end_matches('\n'));
    assert_eq!(s.long_bit.to_string(), must("getconf", &["LONG_BIT"]));
    assert!(v["long_bit"].is_u64());

    // sysinfo(2) rounds a started second up; /proc/uptime has hundredths.
    assert!(v["uptime"].is_u64());
    assert!(
        s.uptime as f64 >= up_before.floor(),
        "{} < {up_before}",
        s.uptime
    );
    assert!(
        s.uptime as f64 <= up_after.ceil() + 1.0,
        "{} > {up_after}",
        s.uptime
    );

    // /proc/loadavg rounds the same kernel figures to hundredths; the kernel updates
    // them every 5 s, so ours equals the figure read just before or just after.
    for (i, key) in ["1m", "5m", "15m"].into_iter().enumerate() {
        assert!(v["loadavg"][key].is_f64(), "loadavg {key} must be a float");
        let ours = v["loadavg"][key].as_f64().unwrap();
        let (lo, hi) = (
            load_before[i].min(load_after[i]),
            load_before[i].max(load_after[i]),
        );
        assert!(
            ours >= lo - 0.0051 && ours <= hi + 0.0051,
            "loadavg {key}: {ours} not in [{lo}, {hi}]"
        );
    }

    assert_eq!(s.ram.total, meminfo("MemTotal"));
    assert!(s.ram.free <= s.ram.total && s.ram.buffer <= s.ram.total);
    assert_eq!(s.swap.total, meminfo("SwapTotal"));
    assert!(s.swap.free <= s.swap.total);
    for key in ["total", "free", "buffer"] {
        assert!(v["ram"][key].is_u64());
    }
}

/// lsblk's view: every mountpoint on a device's tree (partitions, LVM, ...).
fn lsblk_mounts() -> Vec<(String, Vec<String>)> {
    fn collect(node: &Value, out: &mut Vec<String>) {
        for m in node["mountpoints"].as_array().into_iter().flatten() {
            if let Some(m) = m.as_str().filter(|m| m.starts_with('/')) {
                out.push(m.to_string());
            }
        }
        for c in node["children"].as_array().into_iter().flatten() {
            collect(c, out);
        }
    }
    let v: Value = serde_json::from_str(&must("lsblk", &["-J", "-o", "NAME,MOUNTPOINTS"])).unwrap();
    v["blockdevices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let mut mounts = Vec::new();
            collect(d, &mut mounts);
            (d["name"].as_str().unwrap().to_string(), mounts)
        })
        .collect()
}

#[test]
fn disks_are_the_real_block_devices() {
    let agent = Launch::new(AGENT).start(&[]);
    let v = sysinfo(&agent);
    let lsblk = lsblk_mounts();

    // The /sys/block entries with a `device` link, by name.
    let mut want: Vec<String> = std::fs::read_dir("/sys/block")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("device").exists())
        .map(|p| format!("/dev/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    want.sort();
    let disks = v["disks"].as_array().unwrap();
    let names: Vec<&str> = disks.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, want);

    for d in disks {
        let keys: BTreeSet<&str> = d.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let want = [
            "is_mounted",
            "mountpoint",
            "name",
            "size_avail",
            "size_total",
            "size_used",
        ];
        assert_eq!(keys, want.into_iter().collect());
        let name = d["name"].as_str().unwrap();
        let short = name.trim_start_matches("/dev/");
        let theirs = &lsblk.iter().find(|(n, _)| n == short).unwrap().1;
        let mp = d["mountpoint"].as_str().unwrap();
        let (total, used, avail) = (
            d["size_total"].as_u64().unwrap(),
            d["size_used"].as_u64().unwrap(),
            d["size_avail"].as_u64().unwrap(),
        );
        if d["is_mounted"] == true {
            assert!(
                theirs.iter().any(|m| m == mp),
                "{name}: {mp} not in {theirs:?}"
            );
            assert!(
                theirs.iter().all(|m| m.len() >= mp.len()),
                "{name}: {mp} is not the shortest"
            );
            // statvfs sizes as df(1) computes them; the total does not move.
            let df = must("df", &["-B1", "--output=size", mp]);
            let df_total: u64 = df.lines().nth(1).unwrap().trim().parse().unwrap();
            assert_eq!(total, df_total / 1024, "{name} on {mp}");
            assert!(used <= total && avail <= total);
        } else {
            assert!(theirs.is_empty(), "{name}: lsblk sees mounts {theirs:?}");
            assert_eq!((mp, total, used, avail), ("", 0, 0, 0));
        }
    }
}

/// An agent in its own mount namespace whose /run is a fresh tmpfs prepared by
/// `setup` (shell commands run before the agent starts).
fn agent_with_run(setup: &str) -> TestAgent {
    let script =
        format!("mount -t tmpfs tmpfs /run; mkdir -p /run/systemd; {setup}; exec \"$0\" \"$@\"");
    Launch::new(AGENT)
        .wrapper(&[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-ec",
            &script,
        ])
        .start(&[])
}

/// A 384-byte x86-64 utmp record, written at glibc's offsets.
#[cfg(target_arch = "x86_64")]
fn utmp_record(kind: i16, line: &str, user: &str, host: &str, sec: u32) -> Vec<u8> {
    let mut r = vec![0u8; 384];
    r[0..2].copy_from_slice(&kind.to_le_bytes());
    r[4..8].copy_from_slice(&1234i32.to_le_bytes());
    r[8..8 + line.len()].copy_from_slice(line.as_bytes());
    r[44..44 + user.len()].copy_from_slice(user.as_bytes());
    r[76..76 + host.len()].copy_from_slice(host.as_bytes());
    r[340..344].copy_from_slice(&sec.to_le_bytes());
    r
}

#[cfg(target_arch = "x86_64")]
#[test]
fn users_from_utmp() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("utmp");
    let mut bytes = Vec::new();
    bytes.extend(utmp_record(2, "~", "reboot", "6.1.0", 1_700_000_000)); // BOOT_TIME
    bytes.extend(utmp_record(
        7,
        "pts/0",
        "root",
        "79.172.60.6",
        1_478_346_362,
    ));
    bytes.extend(utmp_record(7, "tty1", "alice", "", 1_700_000_100)); // local: not listed
    bytes.extend(utmp_record(8, "pts/1", "", "", 1_700_000_200)); // DEAD_PROCESS
    bytes.extend(utmp_record(
        7,
        "pts/2",
        "bob",
        "fe80::1%eth0",
        1_700_000_300,
    ));
    std::fs::write(&file, bytes).unwrap();
    // A logind session too: utmp wins when it exists.
    let agent = agent_with_run(&format!(
        "cp {} /run/utmp; mkdir /run/systemd/sessions; printf 'USER=zed\\nREMOTE_HOST=h\\n' > /run/systemd/sessions/1",
        file.display()
    ));
    let v = sysinfo(&agent);
    assert_eq!(
        v["users"],
        json!([
            {"name": "root", "device": "pts/0", "host": "79.172.60.6", "login_time": 1478346362},
            {"name": "bob", "device": "pts/2", "host": "fe80::1%eth0", "login_time": 1700000300},
        ])
    );
}

#[test]
fn users_from_logind_without_utmp() {
    let session = "UID=0\nUSER=root\nSTATE=active\nREMOTE=1\nCLASS=user\nTTY=/dev/pts/3\n\
                   REMOTE_HOST=192.0.2.7\nREALTIME=1700000123456789\n";
    let closing = session.replace("STATE=active", "STATE=closing");
    let local = "USER=carol\nSTATE=active\nCLASS=user\nTTY=tty1\nREALTIME=1700000000000000\n";
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("5", session), ("6", closing.as_str()), ("7", local)] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let agent = agent_with_run(&format!(
        "mkdir /run/systemd/sessions; cp {}/* /run/systemd/sessions/; mkfifo /run/systemd/sessions/5.ref",
        dir.path().display()
    ));
    let v = sysinfo(&agent);
    assert_eq!(
        v["users"],
        json!([{"name": "root", "device": "pts/3", "host": "192.0.2.7", "login_time": 1700000123}])
    );
}

#[test]
fn no_utmp_and_no_logind_is_an_empty_list() {
    let agent = agent_with_run("true");
    let v = sysinfo(&agent);
    assert_eq!(v["users"], json!([]));
}

#[test]
fn unreadable_utmp_is_an_error_naming_it() {
    // /run/utmp as a directory: read(2) fails with EISDIR.
    let agent = agent_with_run("mkdir /run/utmp");
    let r = agent.raw().request(json!({"execute": "sysinfo"}));
    let (msg, code) = err(&r);
    assert_eq!(msg, "read /run/utmp: Is a directory");
    assert_eq!(code, 21);
    // The agent stays up.
    let r = agent.raw().request(json!({"execute": "ping"}));
    assert!(r.get("return").is_some());
}

#[test]
fn listed_and_answers_concurrently() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let names = ret(&c.request(json!({"execute": "get-commands"}))).clone();
    assert!(names.as_array().unwrap().iter().any(|n| n == "sysinfo"));
    // Arguments are not used; a reply per request, matched by tag.
    for i in 0..8 {
        c.send(
            format!("{{\"execute\":\"sysinfo\",\"arguments\":{{}},\"tag\":\"t{i}\"}}\r\n")
                .as_bytes(),
        );
    }
    let mut tags: Vec<String> = (0..8)
        .map(|_| {
            let r = c.recv();
            assert!(r.get("return").is_some(), "{r}");
            r["tag"].as_str().unwrap().to_string()
        })
        .collect();
    tags.sort();
    assert_eq!(tags, (0..8).map(|i| format!("t{i}")).collect::<Vec<_>>());
}

/// Threads of process `pid` named `name`.
fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == name)
        })
        .count()
}

#[test]
fn a_hung_filesystem_does_not_hang_the_reply() {
    // A disk whose filesystem never answers, like a dead NFS server: a FUSE mount whose
    // daemon never replies (nobody reads /dev/fuse), named after a fake disk that a
    // private /sys/block lists.
    if !std::path::Path::new("/dev/fuse").exists() {
        eprintln!("skipped: no /dev/fuse (modprobe fuse)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vdz = d.join("block/vdz");
    std::fs::create_dir_all(&vdz).unwrap();
    std::fs::write(vdz.join("dev"), "254:250\n").unwrap();
    std::os::unix::fs::symlink(".", vdz.join("device")).unwrap();
    let mnt = d.join("dead");
    std::fs::create_dir(&mnt).unwrap();
    let agent = agent_with_run(&format!(
        "mount --bind {block} /sys/block; exec 3<>/dev/fuse; \
         mount -i -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 /dev/vdz {mnt}",
        block = d.join("block").display(),
        mnt = mnt.display()
    ));
    let want = json!([{"name": "/dev/vdz", "is_mounted": true, "mountpoint": mnt.to_str().unwrap(),
                       "size_total": 0, "size_used": 0, "size_avail": 0}]);
    let mut c = agent.raw();
    // The first reply comes after the statvfs deadline; the blocked call stays behind.
    let r = c.request(json!({"execute": "sysinfo"}));
    assert_eq!(ret(&r)["disks"], want);
    assert_eq!(threads_named(agent.pid(), "statvfs"), 1);
    // Later replies skip the mountpoint while its call is blocked: no thread piles up.
    for _ in 0..3 {
        let r = c.request(json!({"execute": "sysinfo"}));
        assert_eq!(ret(&r)["disks"], want);
    }
    assert_eq!(threads_named(agent.pid(), "statvfs"), 1);
}
