//! vsock in a real guest: a vhost-user-vsock device whose host end is rust-vmm's
//! vhost-device-vsock, reached through its hybrid vsock socket (`hvsock:SOCKET:PORT`).
//! The agent serves its virtio-serial port and two vsock ports beside it, one per
//! dialect, on one state.
//!
//! Every command family in both dialects, eight host connections at once, a host that
//! vanishes in the middle of a reply and one that never reads, the qemu-ga spelling of
//! the command line, and an agent started before the vsock modules are loaded.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Barrier, MutexGuard};
use std::time::{Duration, Instant};

use phoenix_client::{Client, Dialect, Options, Report, UploadOptions};
use phoenix_e2e::{Guest, GuestOpts, SCRATCH};
use serde_json::{json, Value};

/// The agent's vsock port in the Phoenix dialect (the default port).
const PORT: u32 = 1023;
/// Its vsock port in the qemu-ga dialect.
const QGA_PORT: u32 = 1022;
/// Seconds a client may read nothing before the agent drops it (short, for the tests).
const SEND_TIMEOUT: &str = "5";

/// The guest with a vsock device shared by these tests, or `None` when e2e tests are
/// skipped. Its /init loads the vsock modules before it starts the agent.
fn guest() -> Option<MutexGuard<'static, Guest>> {
    if phoenix_e2e::skip() {
        return None;
    }
    Some(phoenix_e2e::shared_vsock(|| {
        let mut opts = GuestOpts::new(env!("CARGO_BIN_EXE_phoenix-ga"));
        opts.vsock = Some(4);
        opts.agent_args = [
            "--vsock",
            &PORT.to_string(),
            "--vsock",
            &format!("{QGA_PORT}:qga"),
            "--send-timeout",
            SEND_TIMEOUT,
        ]
        .map(String::from)
        .to_vec();
        opts.setup = Some("modprobe -a vmw_vsock_virtio_transport vsock_loopback".into());
        opts
    }))
}

/// Options for a client through the emulated device: the dialect found out.
fn opts() -> Options {
    Options {
        dialect: None,
        timeout: Some(Duration::from_secs(60)),
        ..Options::default()
    }
}

/// A client on the guest's vsock `port`, retried while the agent's listener is not
/// there yet (it starts just after the port's, which the boot waited for).
fn connect(g: &Guest, port: u32) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match Client::connect_with(g.vsock_target(port), opts()) {
            Ok(c) => return c,
            Err(e) if Instant::now() >= deadline => panic!(
                "connect {}: {}\n{}\n{}",
                g.vsock_target(port),
                Report(&e),
                g.agent_log(),
                g.diagnostics()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The vsock sockets the agent holds: its listeners and one per connected host.
fn vsock_fds(g: &Guest) -> usize {
    let pid = g.agent_pid();
    // A vsock socket shows as socket:[INODE] like any other: count the agent's sockets
    // and take away the ones that are not vsock (netlink, uevents: none while serving).
    let out = g.sh_ok(&format!("ls -l /proc/{pid}/fd | grep -c socket: || true"));
    out.trim().parse().unwrap_or(0)
}

/// Waits until the agent holds `n` sockets; panics with the agent's log after 60 s.
fn wait_fds(g: &Guest, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = vsock_fds(g);
        if now == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent holds {now} sockets, not {n}\n{}",
            g.agent_log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn every_family_in_both_dialects() {
    let Some(g) = guest() else { return };
    let version = env!("CARGO_PKG_VERSION");
    let phoenix = connect(&g, PORT);
    let qga = connect(&g, QGA_PORT);
    assert_eq!(phoenix.dialect(), Dialect::Phoenix);
    assert_eq!(qga.dialect(), Dialect::Qga);

    // core
    assert_eq!(phoenix.ping().unwrap(), version);
    let info: Value = qga.call("guest-info", &json!({})).unwrap();
    assert_eq!(info["version"], json!(version));
    // files: an upload through each dialect, checked in the guest
    for (c, name) in [(&phoenix, "vsock-p"), (&qga, "vsock-q")] {
        let path = Path::new(SCRATCH).join(name);
        let data = format!("through vsock, {name}\n").repeat(5000);
        let up = UploadOptions {
            in_place: c.dialect() == Dialect::Qga,
            ..UploadOptions::default()
        };
        c.upload_from(&mut data.as_bytes(), &path, up, &mut ())
            .unwrap_or_else(|e| panic!("upload {name}: {}", Report(&e)));
        let md5 = g.sh_ok(&format!("md5sum {}", path.display()));
        let want = md5_hex(data.as_bytes());
        assert!(md5.starts_with(&want), "{name}: {md5} is not {want}");
        assert_eq!(c.read_file(&path).unwrap(), data.as_bytes());
    }
    // freeze (the status only: the shared guest stays thawed)
    assert!(!phoenix.get_freeze_status().unwrap());
    let status: String = qga.call("guest-fsfreeze-status", &json!({})).unwrap();
    assert_eq!(status, "thawed");
    // net
    let ifaces = phoenix.get_netifaces().unwrap();
    assert!(ifaces.iter().any(|i| i.name == "eth0"), "{ifaces:?}");
    let ifaces: Value = qga
        .call("guest-network-get-interfaces", &json!({}))
        .unwrap();
    assert!(
        ifaces
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "eth0"),
        "{ifaces}"
    );
    // system
    let uname = g.sh_ok("uname -r");
    let sysinfo = phoenix.sysinfo().unwrap();
    let sysinfo = serde_json::to_value(&sysinfo).unwrap();
    assert!(sysinfo.to_string().contains(uname.trim()), "{sysinfo}");
    let os: Value = qga.call("guest-get-osinfo", &json!({})).unwrap();
    assert_eq!(os["kernel-release"], json!(uname.trim()));
    // storage (qemu-ga's dialect only)
    let fsinfo: Value = qga.call("guest-get-fsinfo", &json!({})).unwrap();
    assert!(
        fsinfo
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["mountpoint"] == SCRATCH),
        "{fsinfo}"
    );
    g.sh_ok(&format!("rm -f {SCRATCH}/vsock-p {SCRATCH}/vsock-q"));
}

#[test]
fn eight_hosts_at_once_every_reply_matched() {
    let Some(g) = guest() else { return };
    let baseline = vsock_fds(&g);
    let files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| {
            let path = format!("{SCRATCH}/vsock-eight-{i}");
            let data: Vec<u8> = (0..(20_000 + i * 7919))
                .map(|n| u8::try_from((n * 31 + i * 17) % 251).unwrap())
                .collect();
            (path, data)
        })
        .collect();
    // Written through the port, read back through vsock.
    let port = g.client();
    for (path, data) in &files {
        let up = UploadOptions::default();
        port.upload_from(&mut data.as_slice(), Path::new(path), up, &mut ())
            .unwrap();
    }
    drop(port);
    let clients: Vec<Client> = (0..8)
        .map(|i| connect(&g, if i % 2 == 0 { PORT } else { QGA_PORT }))
        .collect();
    // Eight connections held at once.
    assert_eq!(vsock_fds(&g), baseline + 8);
    let start = Barrier::new(8);
    std::thread::scope(|s| {
        for (i, (c, (path, data))) in clients.iter().zip(&files).enumerate() {
            let start = &start;
            s.spawn(move || {
                start.wait();
                for round in 0..10 {
                    let got = c.read_file(Path::new(path)).unwrap();
                    assert!(got == *data, "client {i} round {round}: wrong file");
                    let n = i64::try_from(i * 1000 + round).unwrap();
                    match c.dialect() {
                        Dialect::Phoenix => {
                            assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"))
                        }
                        Dialect::Qga => {
                            let echo: i64 = c.call("guest-sync", &json!({"id": n})).unwrap();
                            assert_eq!(echo, n, "client {i}: another's reply");
                        }
                    }
                }
            });
        }
    });
    drop(clients);
    wait_fds(&g, baseline);
    g.sh_ok(&format!("rm -f {SCRATCH}/vsock-eight-*"));
}

/// A raw hybrid vsock connection to `port`, past its handshake.
fn raw_connect(g: &Guest, port: u32) -> UnixStream {
    let mut s = UnixStream::connect(g.vsock_socket()).unwrap();
    s.write_all(format!("CONNECT {port}\n").as_bytes()).unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8];
    while byte[0] != b'\n' {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "no OK from the backend");
        line.push(byte[0]);
    }
    assert!(line.starts_with(b"OK"), "{line:?}");
    s
}

#[test]
fn a_host_that_vanishes_or_never_reads_costs_its_connection_only() {
    let Some(g) = guest() else { return };
    let big = format!("{SCRATCH}/vsock-big");
    g.sh_ok(&format!("head -c 24000000 /dev/urandom > {big}"));
    let want = g.sh_ok(&format!("md5sum {big}"));
    let baseline = vsock_fds(&g);
    let pid = g.agent_pid();
    let read_all = |s: &mut UnixStream| {
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let open = json!({"execute": "file-open", "arguments": {"path": big}, "tag": "o"});
        s.write_all(format!("{open}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        let mut byte = [0u8];
        while byte[0] != b'\n' {
            s.read_exact(&mut byte)
                .unwrap_or_else(|e| panic!("file-open: {e} after {reply:?}\n{}", g.agent_log()));
            reply.push(char::from(byte[0]));
        }
        let handle = serde_json::from_str::<Value>(&reply).unwrap()["return"].clone();
        assert!(handle.is_u64(), "{reply}");
        let read = json!({"execute": "file-read",
                          "arguments": {"handle_id": handle, "count": 24_000_000}, "tag": "r"});
        s.write_all(format!("{read}\n").as_bytes()).unwrap();
    };

    // One host reads the start of a 32 MiB reply and vanishes (closes with data unread,
    // as a crashed host's socket closes).
    let mut vanishing = raw_connect(&g, PORT);
    read_all(&mut vanishing);
    let mut start = vec![0u8; 64 << 10];
    vanishing.read_exact(&mut start).unwrap_or_else(|e| {
        panic!(
            "the reply's start: {e}\n{}\n{}",
            g.agent_log(),
            g.diagnostics()
        )
    });
    assert!(start.starts_with(b"{\"return\""), "{:?}", &start[..100]);
    drop(vanishing);
    // Another never reads its reply, and stays connected.
    let mut mute = raw_connect(&g, PORT);
    read_all(&mut mute);

    // The next host is served at once, a big reply included.
    let c = connect(&g, PORT);
    assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"));
    let md5 = c.file_md5sum(Path::new(&big)).unwrap();
    assert!(want.starts_with(&md5), "{md5} vs {want}");
    assert_eq!(c.read_file(Path::new(&big)).unwrap().len(), 24_000_000);
    drop(c);

    // Within the send timeout both stalled connections are dropped by the agent, which
    // is still the same process.
    wait_fds(&g, baseline);
    assert_eq!(g.agent_pid(), pid);
    assert!(g.agent_exits().is_empty(), "{}", g.agent_log());
    assert!(
        g.agent_log().contains("read nothing for the send timeout"),
        "{}",
        g.agent_log()
    );
    // The mute host finds its connection closed.
    mute.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut sink = Vec::new();
    let ended = mute.read_to_end(&mut sink);
    assert!(ended.is_ok(), "{ended:?}");
    assert!(sink.len() < 24_000_000 * 4 / 3, "the whole reply came");
    g.sh_ok(&format!("rm -f {big}"));
}

#[test]
fn qemu_ga_spelling_of_the_command_line() {
    let Some(g) = guest() else { return };
    // A second agent, as a unit written for qemu-ga starts it (its state apart).
    g.sh_ok(
        "phoenix-ga -m vsock-listen -p 4294967295:1021 --dialect qga -t /run/ga2 \
         -f /run/ga2.pid -d; true",
    );
    let c = connect(&g, 1021);
    assert_eq!(c.dialect(), Dialect::Qga);
    let n: i64 = c.call("guest-sync", &json!({"id": 42})).unwrap();
    assert_eq!(n, 42);
    drop(c);
    g.sh_ok("kill $(cat /run/ga2.pid)");
}

#[test]
fn the_agent_waits_for_the_vsock_modules() {
    if phoenix_e2e::skip() {
        return;
    }
    let mut opts = GuestOpts::new(env!("CARGO_BIN_EXE_phoenix-ga"));
    opts.vsock = Some(5);
    opts.agent_args = vec!["--vsock".into(), PORT.to_string()];
    let g = Guest::boot(opts).unwrap_or_else(|e| panic!("boot: {}", Report(&e)));
    assert!(g.sh_ok("lsmod").lines().all(|l| !l.starts_with("vsock")));
    // The agent serves its port and waits for vsock, asleep.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !g.agent_log().contains("waiting for AF_VSOCK") {
        assert!(Instant::now() < deadline, "{}", g.agent_log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = g.agent_pid();
    let before = g.cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let spent = g.cpu_ticks(pid) - before;
    assert!(spent <= 2, "the waiting agent used {spent} ticks");
    assert_eq!(g.client().ping().unwrap(), env!("CARGO_PKG_VERSION"));

    // Loaded later, as udev or a unit would: the agent starts serving vsock.
    g.sh_ok("modprobe vmw_vsock_virtio_transport");
    let c = connect(&g, PORT);
    assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"));
    assert_eq!(g.agent_pid(), pid);
    assert!(g.agent_log().contains("the vsock device is there"));
}
