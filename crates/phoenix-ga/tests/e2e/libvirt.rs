//! libvirt as the agent's host: the guest runs as a transient libvirt domain with
//! libvirt's own agent channel (`org.qemu.guest_agent.0`), and every test drives it with
//! `virsh` of the machine's libvirtd (`qemu:///system`, started by scripts/test), then
//! checks what libvirt printed against what the guest shows through the shell channel.
//! One domain is shared by these tests (besides the binary's QEMU guest), and by the
//! libvirt tests of the other families (libvirt_accounts.rs, libvirt_control.rs,
//! libvirt_exec.rs), which take it and the helpers from here.
//!
//! The agent runs as the harness starts it (`phoenix-ga -m virtio-serial`, with
//! `--debug` here so that its log shows libvirt's requests): it serves both ports, the
//! Phoenix one on a socket of the harness and libvirt's.
//!
//! `PHOENIX_E2E_LIBVIRT_PEER=qemu-ga` puts Debian's qemu-ga (/usr/sbin/qemu-ga) on
//! libvirt's port instead, ours keeping only the Phoenix port: the tests of what libvirt
//! prints then check themselves against the reference (run them with
//! `-- --include-ignored libvirt`); the tests about our agent itself return early.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use phoenix_client::Report;
use phoenix_e2e::{Guest, GuestOpts, QGA_PORT, SCRATCH};
use serde_json::{json, Value};

/// Whether qemu-ga serves libvirt's port (`PHOENIX_E2E_LIBVIRT_PEER=qemu-ga`).
pub(crate) fn peer() -> bool {
    std::env::var("PHOENIX_E2E_LIBVIRT_PEER").is_ok_and(|v| v == "qemu-ga")
}

/// The libvirt domain shared by these tests, or `None` when they are skipped.
pub(crate) fn guest() -> Option<MutexGuard<'static, Guest>> {
    if phoenix_e2e::skip_libvirt() {
        return None;
    }
    Some(phoenix_e2e::shared_libvirt(|| {
        let mut opts = GuestOpts::new(env!("CARGO_BIN_EXE_phoenix-ga"));
        opts.agent_args = vec!["--debug".into()];
        if peer() {
            opts.agent_args.push("-p".into());
            opts.agent_args
                .push(format!("/dev/virtio-ports/{}", phoenix_e2e::AGENT_PORT));
            opts.extra_binaries = vec!["/usr/sbin/qemu-ga".into()];
            // qemu-ga exits at start without a writable /var/run.
            opts.setup = Some(format!(
                "mkdir -p /var/run /run/qga && qemu-ga -d -m virtio-serial \
                 -p /dev/virtio-ports/{QGA_PORT} -t /run/qga -f /run/qga/pid -l /run/qga/log"
            ));
        }
        opts
    }))
}

/// The shared domain for a test about our agent itself: `None` (with a note) when
/// qemu-ga serves libvirt's port.
pub(crate) fn our_guest() -> Option<MutexGuard<'static, Guest>> {
    if peer() {
        eprintln!("PHOENIX_E2E_LIBVIRT_PEER=qemu-ga: a test of our agent itself, skipped");
        return None;
    }
    guest()
}

/// The domain's name.
pub(crate) fn dom(g: &Guest) -> &str {
    g.domain().expect("a libvirt guest")
}

/// Runs virsh and returns its stdout; panics with its stderr unless it exits 0.
pub(crate) fn virsh_ok(g: &Guest, args: &[&str]) -> String {
    let out = g.virsh(args);
    assert_eq!(
        out.status,
        0,
        "virsh {} failed: {}{}",
        args.join(" "),
        out.stderr,
        g.diagnostics()
    );
    out.stdout
}

/// `virsh qemu-agent-command DOM REQUEST`: the agent's reply as libvirt passes it on.
pub(crate) fn agent(g: &Guest, request: &Value) -> Value {
    let out = virsh_ok(g, &["qemu-agent-command", dom(g), &request.to_string()]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[test]
fn libvirt_connects_to_the_agent_and_relays_commands() {
    let Some(g) = our_guest() else { return };
    eprintln!("libvirt domain {} booted in {:?}", dom(&g), g.boot_time());
    assert_eq!(g.channel_state(QGA_PORT).as_deref(), Some("connected"));

    assert_eq!(
        agent(&g, &json!({"execute": "guest-ping"})),
        json!({"return": {}})
    );
    let info = agent(&g, &json!({"execute": "guest-info"}));
    assert_eq!(
        info["return"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{info}"
    );
    let commands = info["return"]["supported_commands"]
        .as_array()
        .unwrap_or_else(|| panic!("{info}"));
    for name in ["guest-sync", "guest-ping", "guest-info"] {
        assert!(
            commands
                .iter()
                .any(|c| c["name"] == name && c["enabled"] == true),
            "{name} not enabled in {info}"
        );
    }
    assert_eq!(
        agent(
            &g,
            &json!({"execute": "guest-sync", "arguments": {"id": 1_234_567}})
        ),
        json!({"return": 1_234_567})
    );

    // An error reply reaches virsh with the agent's words.
    let out = g.virsh(&["qemu-agent-command", dom(&g), r#"{"execute":"guest-nope"}"#]);
    assert_ne!(out.status, 0);
    assert!(
        out.stderr
            .contains("The command guest-nope has not been found"),
        "{}",
        out.stderr
    );
    // The guest itself shows the agent on libvirt's port.
    let pid = g.agent_pid();
    let port = g.sh_ok(&format!("readlink -f /dev/virtio-ports/{QGA_PORT}"));
    let fds = g.sh_ok(&format!("ls -l /proc/{pid}/fd"));
    assert!(
        fds.contains(port.trim()),
        "agent does not hold {port}: {fds}"
    );
}

/// How long a `virsh` agent call takes, end to end (virsh's start, its connection to
/// libvirtd, libvirtd to the guest and back).
#[test]
fn a_virsh_agent_call_takes_milliseconds() {
    let Some(g) = guest() else { return };
    let ping = json!({"execute": "guest-ping"}).to_string();
    let mut times: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            virsh_ok(&g, &["qemu-agent-command", dom(&g), &ping]);
            t.elapsed()
        })
        .collect();
    times.sort();
    eprintln!(
        "virsh qemu-agent-command guest-ping, 10 calls: min {:?}, median {:?}, max {:?}",
        times[0], times[5], times[9]
    );
    // libvirt gives the agent 5 s; a call near that means something waits for a timeout.
    assert!(times[5] < Duration::from_secs(2), "{times:?}");
}

/// libvirt sends `guest-sync` (a millisecond timestamp as the id) before the first
/// command of each agent connection, then trusts the stream until a timeout. When the
/// agent exits, the guest closes the port: libvirt shows the channel disconnected and
/// refuses agent commands; when the agent is back it reconnects and syncs again.
#[test]
fn libvirt_resyncs_after_the_agent_restarts() {
    let Some(g) = our_guest() else { return };
    let ping = json!({"execute": "guest-ping"}).to_string();
    let old = g.agent_pid();
    // Hold the restart (see init.sh) until libvirt has seen the port closed.
    g.sh_ok(&format!("touch /run/ga.hold && kill {old}"));
    let _release = Release(&g);
    wait_for(
        Duration::from_secs(30),
        "libvirt to see the port closed",
        || g.channel_state(QGA_PORT).as_deref() == Some("disconnected"),
    );
    let out = g.virsh(&["qemu-agent-command", dom(&g), &ping]);
    assert_ne!(out.status, 0);
    assert!(
        out.stderr.contains("QEMU guest agent is not connected"),
        "{}",
        out.stderr
    );
    // It exits cleanly on SIGTERM.
    assert_eq!(g.agent_exits().last(), Some(&0), "{:?}", g.agent_exits());

    g.sh_ok("rm /run/ga.hold");
    g.wait_libvirt_agent(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{}\n{}", Report(&e), g.diagnostics()));
    assert_ne!(g.agent_pid(), old);
    for _ in 0..3 {
        virsh_ok(&g, &["qemu-agent-command", dom(&g), &ping]);
    }
    // The new agent's requests: one guest-sync, first, then the pings.
    let log = g.agent_log();
    let start = log
        .rfind(&format!("port open path=/dev/virtio-ports/{QGA_PORT}"))
        .expect("the agent logs its port");
    let requests: Vec<&str> = log[start..]
        .lines()
        .filter_map(|l| l.split("command=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(requests.first(), Some(&"guest-sync"), "{requests:?}");
    assert_eq!(
        requests.iter().filter(|r| **r == "guest-sync").count(),
        1,
        "{requests:?}"
    );
    assert!(
        requests[1..].iter().all(|r| *r == "guest-ping") && requests.len() >= 5,
        "{requests:?}"
    );
}

/// Removes /run/ga.hold when dropped, so a failing test does not leave the agent down.
struct Release<'a>(&'a Guest);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .try_run("rm -f /run/ga.hold", Duration::from_secs(30));
    }
}

/// Polls `done` every 50 ms until it holds; panics after `timeout`.
fn wait_for(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `virsh guestinfo DOM FLAGS...` as a map (`key : value` lines).
fn guestinfo(g: &Guest, flags: &[&str]) -> BTreeMap<String, String> {
    let mut args = vec!["guestinfo", dom(g)];
    args.extend_from_slice(flags);
    virsh_ok(g, &args)
        .lines()
        .filter_map(|l| l.split_once(" : "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The rows of a table virsh prints (a header, a line of dashes, then rows), split on
/// white space.
fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .skip_while(|l| !l.starts_with("---"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The guest's filesystems on block devices, from /proc/mounts: (mount point, device
/// name, type).
fn guest_disk_mounts(g: &Guest) -> Vec<(String, String, String)> {
    g.sh_ok("cat /proc/mounts")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dev = f.first()?.strip_prefix("/dev/")?;
            Some((f[1].to_string(), dev.to_string(), f[2].to_string()))
        })
        .collect()
}

/// The target (`vda`) libvirt gives the domain's only disk, from `virsh domblklist`.
fn disk_target(g: &Guest) -> String {
    let rows = table(&virsh_ok(g, &["domblklist", dom(g)]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0][0].clone()
}

/// The guest's addresses as `ip -o addr` shows them, with the MAC from /sys: (name,
/// MAC, `ipv4`/`ipv6`, address/prefix).
fn guest_addresses(g: &Guest) -> BTreeSet<(String, String, String, String)> {
    g.sh_ok("ip -o addr")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f[1].split('@').next().unwrap_or(f[1]).to_string();
            let family = match f[2] {
                "inet" => "ipv4",
                "inet6" => "ipv6",
                other => panic!("{other} in {l}"),
            };
            let mac = g.sh_ok(&format!("cat /sys/class/net/{name}/address"));
            (
                name,
                mac.trim().to_string(),
                family.to_string(),
                f[3].to_string(),
            )
        })
        .collect()
}

/// Thaws the guest when dropped (through libvirt, then in the guest), so a failing
/// freeze test cannot leave the shared domain's disk frozen.
struct Thaw<'a>(&'a Guest);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        let _ = phoenix_e2e::virsh(&["domfsthaw", dom(self.0)]);
        let _ = self.0.try_run(
            &format!("fsfreeze --unfreeze {SCRATCH} 2>/dev/null; true"),
            Duration::from_secs(30),
        );
    }
}

/// The guest's view: FIFREEZE on a frozen filesystem fails with EBUSY.
fn scratch_is_frozen(g: &Guest) -> bool {
    let out = g.run(&format!(
        "fsfreeze --freeze {SCRATCH} && fsfreeze --unfreeze {SCRATCH}"
    ));
    out.status != 0 && out.stderr.contains("busy")
}

/// `virsh domfsfreeze --mountpoint` freezes the scratch disk (guest-fsfreeze-freeze-list):
/// a writer in the guest blocks until `virsh domfsthaw` (guest-fsfreeze-thaw; libvirt
/// thaws everything, it takes no mount points there); then `virsh domfsfreeze` without
/// mount points (guest-fsfreeze-freeze) freezes every filesystem on a disk, which in
/// this guest is that one.
#[test]
fn domfsfreeze_blocks_a_writer_until_domfsthaw() {
    let Some(g) = guest() else { return };
    let file = format!("{SCRATCH}/libvirt-freeze-probe");
    g.sh_ok(&format!("rm -f {file}"));
    let status = || agent(&g, &json!({"execute": "guest-fsfreeze-status"}));

    let out = virsh_ok(&g, &["domfsfreeze", dom(&g), "--mountpoint", SCRATCH]);
    let _thaw = Thaw(&g);
    assert_eq!(out.trim(), "Froze 1 filesystem(s)");
    assert!(
        scratch_is_frozen(&g),
        "domfsfreeze did not freeze {SCRATCH}"
    );
    assert_eq!(status(), json!({"return": "frozen"}));
    let writer = g.spawn(&format!("echo data > {file} && echo written"));
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(g.job_status(&writer), None, "a write went through");
    // The agent answers libvirt while frozen.
    assert_eq!(
        agent(&g, &json!({"execute": "guest-ping"})),
        json!({"return": {}})
    );

    let out = virsh_ok(&g, &["domfsthaw", dom(&g)]);
    assert_eq!(out.trim(), "Thawed 1 filesystem(s)");
    assert_eq!(
        g.job_wait(&writer, Duration::from_secs(30)),
        ("written\n".to_string(), 0)
    );
    assert_eq!(g.sh_ok(&format!("cat {file}")), "data\n");
    assert!(!scratch_is_frozen(&g));
    assert_eq!(status(), json!({"return": "thawed"}));

    let disks = guest_disk_mounts(&g).len();
    let out = virsh_ok(&g, &["domfsfreeze", dom(&g)]);
    assert_eq!(out.trim(), format!("Froze {disks} filesystem(s)"));
    assert!(scratch_is_frozen(&g));
    let out = virsh_ok(&g, &["domfsthaw", dom(&g)]);
    assert_eq!(out.trim(), format!("Thawed {disks} filesystem(s)"));
    assert!(!scratch_is_frozen(&g));
    g.sh_ok(&format!("rm {file}"));
}

/// `virsh domfsinfo` (guest-get-fsinfo): one row per filesystem on a disk in the guest,
/// with libvirt's target of the disk under it, found from the bus address the agent
/// reports.
#[test]
fn domfsinfo_shows_the_guest_filesystems() {
    let Some(g) = guest() else { return };
    let target = disk_target(&g);
    let rows: BTreeSet<Vec<String>> = table(&virsh_ok(&g, &["domfsinfo", dom(&g)]))
        .into_iter()
        .collect();
    let expected: BTreeSet<Vec<String>> = guest_disk_mounts(&g)
        .into_iter()
        .map(|(mountpoint, dev, fstype)| vec![mountpoint, dev, fstype, target.clone()])
        .collect();
    assert_eq!(rows, expected);
    assert!(rows.iter().any(|r| r[0] == SCRATCH), "{rows:?}");
}

/// `virsh domifaddr --source agent` (guest-network-get-interfaces): every address of
/// every interface, with its MAC, as `ip addr` shows them in the guest; eth0's MAC is
/// the one libvirt gave the domain's NIC.
#[test]
fn domifaddr_from_the_agent_matches_the_guest() {
    let Some(g) = guest() else { return };
    // The guest's addresses may change while virsh asks (slirp's router advertisement
    // adds a SLAAC address at a moment of its own): compare when the guest showed the
    // same set before and after virsh's answer.
    let mut attempts = 0;
    let shown = loop {
        let before = guest_addresses(&g);
        let out = virsh_ok(&g, &["domifaddr", dom(&g), "--source", "agent"]);
        let mut shown = BTreeSet::new();
        let (mut name, mut mac) = (String::new(), String::new());
        for row in table(&out) {
            let [n, m, proto, addr] = &row[..] else {
                panic!("{row:?} in\n{out}")
            };
            if n != "-" {
                name.clone_from(n);
                mac.clone_from(m);
            }
            shown.insert((name.clone(), mac.clone(), proto.clone(), addr.clone()));
        }
        let after = guest_addresses(&g);
        attempts += 1;
        if before == after || attempts == 10 {
            assert_eq!(shown, after, "virsh:\n{out}");
            break shown;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let nic = table(&virsh_ok(&g, &["domiflist", dom(&g)]));
    let eth0 = g.sh_ok(&format!("cat /sys/class/net/{}/address", phoenix_e2e::NIC));
    assert_eq!(nic.len(), 1, "{nic:?}");
    assert_eq!(nic[0].last().map(String::as_str), Some(eth0.trim()));
    assert!(
        shown
            .iter()
            .any(|(n, _, p, a)| n == phoenix_e2e::NIC && p == "ipv4" && a == "10.0.2.15/24"),
        "{shown:?}"
    );
}

/// A utmp record of a remote login (`struct utmp` of x86-64 glibc, 384 bytes:
/// USER_PROCESS, pid, line, id, user, host, exit, session, tv_sec, tv_usec, ...).
fn utmp_record(user: &str, host: &str, line: &str, tv_sec: i32) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, text: &str, len: usize) {
        let mut b = text.as_bytes().to_vec();
        b.resize(len, 0);
        out.extend(b);
    }
    let mut r = Vec::with_capacity(384);
    r.extend(7i16.to_le_bytes()); // USER_PROCESS
    r.extend([0, 0]);
    r.extend(1i32.to_le_bytes()); // ut_pid
    field(&mut r, line, 32);
    field(&mut r, "ts/0", 4);
    field(&mut r, user, 32);
    field(&mut r, host, 256);
    r.extend([0; 4]); // ut_exit
    r.extend(0i32.to_le_bytes()); // ut_session
    r.extend(tv_sec.to_le_bytes());
    r.extend(0i32.to_le_bytes());
    r.resize(384, 0);
    r
}

/// Removes what the inventory test adds to the guest.
struct Unstage<'a>(&'a Guest);

impl Drop for Unstage<'_> {
    fn drop(&mut self) {
        let _ = self.0.try_run(
            "rm -f /etc/os-release /var/run/utmp",
            Duration::from_secs(30),
        );
    }
}

/// `virsh guestinfo --os --user --timezone --hostname` (guest-get-osinfo, -users,
/// -timezone, -host-name), `virsh domhostname --source agent` (guest-get-host-name) and
/// `virsh domtime` (guest-get-time) against the guest: its uname, an os-release and a
/// utmp login written for the test, `date`, `hostname`.
#[test]
fn guestinfo_domhostname_and_domtime_match_the_guest() {
    use base64::Engine as _;
    let Some(g) = guest() else { return };
    let login = 1_700_000_000;
    let utmp = base64::engine::general_purpose::STANDARD
        .encode(utmp_record("phoenix", "10.0.2.2", "pts/0", login));
    g.sh_ok(&format!(
        "printf 'ID=phoenix-e2e\\nNAME=\"Phoenix E2E\"\\nVERSION_ID=1.0\\n\
         PRETTY_NAME=\"Phoenix E2E 1.0\"\\n' > /etc/os-release && \
         mkdir -p /var/run && echo {utmp} | base64 -d > /var/run/utmp"
    ));
    let _unstage = Unstage(&g);

    let info = guestinfo(&g, &["--os", "--user", "--timezone", "--hostname"]);
    let get = |k: &str| {
        info.get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k} in {info:#?}"))
    };
    let uname = g.sh_ok("uname -r; uname -v; uname -m");
    let uname: Vec<&str> = uname.lines().collect();
    assert_eq!(get("os.kernel-release"), uname[0]);
    assert_eq!(get("os.kernel-version"), uname[1]);
    assert_eq!(get("os.machine"), uname[2]);
    assert_eq!(get("os.id"), "phoenix-e2e");
    assert_eq!(get("os.name"), "Phoenix E2E");
    assert_eq!(get("os.version-id"), "1.0");
    assert_eq!(get("os.pretty-name"), "Phoenix E2E 1.0");

    assert_eq!(get("user.count"), "1");
    assert_eq!(get("user.0.name"), "phoenix");
    // libvirt prints the login time in milliseconds.
    assert_eq!(
        get("user.0.login-time"),
        (i64::from(login) * 1000).to_string()
    );

    let zone = g.sh_ok("date +%Z; date +%z");
    let zone: Vec<&str> = zone.lines().collect();
    assert_eq!(get("timezone.name"), zone[0]);
    let offset = zone[1];
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let hours: i64 = offset[1..3].parse().expect("hours");
    let minutes: i64 = offset[3..5].parse().expect("minutes");
    assert_eq!(
        get("timezone.offset"),
        (sign * (hours * 3600 + minutes * 60)).to_string()
    );

    let hostname = g.sh_ok("hostname");
    assert_eq!(get("hostname"), hostname.trim());
    let out = virsh_ok(&g, &["domhostname", dom(&g), "--source", "agent"]);
    assert_eq!(out.trim(), hostname.trim());

    let before: i64 = g.sh_ok("date +%s").trim().parse().expect("date");
    let out = virsh_ok(&g, &["domtime", dom(&g)]);
    let after: i64 = g.sh_ok("date +%s").trim().parse().expect("date");
    let time: i64 = out
        .trim()
        .strip_prefix("Time: ")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(before <= time && time <= after, "{before} {time} {after}");
}

/// `virsh guestinfo --filesystem --disk` (guest-get-fsinfo, guest-get-disks): the
/// scratch disk's filesystem with the sizes statfs gives in the guest, and the disk
/// itself, both with libvirt's target.
#[test]
fn guestinfo_shows_the_guest_filesystems_and_disks() {
    let Some(g) = guest() else { return };
    let target = disk_target(&g);
    let statfs = || -> (u64, u64) {
        let out = g.sh_ok(&format!("stat -f -c '%b %f %a %S' {SCRATCH}"));
        let n: Vec<u64> = out
            .split_whitespace()
            .map(|x| x.parse().expect("number"))
            .collect();
        let (blocks, free, avail, size) = (n[0], n[1], n[2], n[3]);
        // qemu-ga's sizes: used = blocks - free, total = used + what users may take.
        ((blocks - free) * size, (blocks - free + avail) * size)
    };
    let before = statfs();
    let info = guestinfo(&g, &["--filesystem", "--disk"]);
    let after = statfs();
    let get = |k: &str| {
        info.get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k} in {info:#?}"))
    };
    let mounts = guest_disk_mounts(&g);
    assert_eq!(get("fs.count"), mounts.len().to_string());
    let i = (0..mounts.len())
        .find(|i| get(&format!("fs.{i}.mountpoint")) == SCRATCH)
        .unwrap_or_else(|| panic!("{SCRATCH} not in {info:#?}"));
    let fs = |k: &str| get(&format!("fs.{i}.{k}"));
    assert_eq!(fs("name"), "vda");
    assert_eq!(fs("fstype"), "ext4");
    let sizes: (u64, u64) = (
        fs("used-bytes").parse().expect("used"),
        fs("total-bytes").parse().expect("total"),
    );
    assert!(
        sizes == before || sizes == after,
        "{sizes:?} {before:?} {after:?}"
    );
    assert_eq!(fs("disk.count"), "1");
    assert_eq!(fs("disk.0.alias"), target);
    assert_eq!(fs("disk.0.device"), "/dev/vda");

    let blocks = g.sh_ok("ls /sys/block");
    assert_eq!(
        get("disk.count"),
        blocks.split_whitespace().count().to_string()
    );
    let d = (0..blocks.split_whitespace().count())
        .find(|d| get(&format!("disk.{d}.name")) == "/dev/vda")
        .unwrap_or_else(|| panic!("/dev/vda not in {info:#?}"));
    assert_eq!(get(&format!("disk.{d}.partition")), "no");
    assert_eq!(get(&format!("disk.{d}.alias")), target);
}

/// `virsh guestinfo --interface` (guest-network-get-interfaces): each interface with
/// its MAC and addresses as the guest shows them.
#[test]
fn guestinfo_shows_the_guest_interfaces() {
    let Some(g) = guest() else { return };
    // As in domifaddr's test: compare when the guest's addresses held still.
    let mut attempts = 0;
    let count = loop {
        let before = guest_addresses(&g);
        let info = guestinfo(&g, &["--interface"]);
        let get = |k: &str| {
            info.get(k)
                .map(String::as_str)
                .unwrap_or_else(|| panic!("no {k} in {info:#?}"))
        };
        let mut shown = BTreeSet::new();
        let count: usize = get("if.count").parse().expect("if.count");
        for i in 0..count {
            let name = get(&format!("if.{i}.name"));
            let mac = get(&format!("if.{i}.hwaddr"));
            let addrs: usize = get(&format!("if.{i}.addr.count")).parse().expect("count");
            for a in 0..addrs {
                let at = |k: &str| get(&format!("if.{i}.addr.{a}.{k}"));
                shown.insert((
                    name.to_string(),
                    mac.to_string(),
                    at("type").to_string(),
                    format!("{}/{}", at("addr"), at("prefix")),
                ));
            }
        }
        let after = guest_addresses(&g);
        attempts += 1;
        if before == after || attempts == 10 {
            assert_eq!(shown, after);
            break count;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let links = g.sh_ok("ls /sys/class/net");
    assert_eq!(count, links.split_whitespace().count(), "{links}");
}
