//! The core, the port and the harness itself: ping and get-commands, host reconnects,
//! an idle agent, 0xFF resync, replies above 32 KiB, agent-shutdown.

use std::collections::HashSet;
use std::time::Duration;

use phoenix_client::{ClientError, Report};
use phoenix_e2e::{Guest, GuestOpts, AGENT_PORT, NIC, SCRATCH};
use serde_json::json;

use crate::{guest, raw};

#[test]
fn ping_and_get_commands_through_the_port() {
    let Some(g) = guest() else { return };
    eprintln!("guest booted in {:?}", g.boot_time());
    let c = g.client();
    assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"));
    let cmds = c.commands().unwrap();
    for name in ["ping", "get-commands", "agent-shutdown"] {
        assert!(
            cmds.iter().any(|c| c == name),
            "{name} missing from {cmds:?}"
        );
    }
}

/// The harness's promises to later tests: the agent really sits on the virtio port, the
/// scratch disk is ext4 on virtio-blk, eth0 is a virtio NIC with an address.
#[test]
fn guest_is_wired_as_documented() {
    let Some(g) = guest() else { return };
    let pid = g.agent_pid();
    let port = g.sh_ok(&format!("readlink -f /dev/virtio-ports/{AGENT_PORT}"));
    assert!(port.trim().starts_with("/dev/vport"), "{port}");
    let fds = g.sh_ok(&format!("ls -l /proc/{pid}/fd"));
    assert!(
        fds.contains(port.trim()),
        "agent does not hold {port}: {fds}"
    );
    let mounts = g.sh_ok("cat /proc/mounts");
    assert!(
        mounts.contains(&format!("/dev/vda {SCRATCH} ext4 rw")),
        "{mounts}"
    );
    g.sh_ok(&format!(
        "echo hello > {SCRATCH}/probe && sync && rm {SCRATCH}/probe"
    ));
    let link = g.sh_ok(&format!(
        "ip -o link show {NIC}; readlink /sys/class/net/{NIC}/device/driver"
    ));
    assert!(
        link.contains("link/ether") && link.contains("virtio_net"),
        "{link}"
    );
    let addr = g.sh_ok(&format!("ip -o -4 addr show {NIC}"));
    assert!(addr.contains("10.0.2.15/24"), "{addr}");
    let (out, status) = g.sh("echo out; echo err >&2; exit 3");
    assert_eq!((out.as_str(), status), ("out\n", 3));
}

/// The host comes and goes several times; after each reconnect every request is
/// answered exactly once, whether sent by concurrent client calls or pipelined raw.
#[test]
fn host_reconnects_and_nothing_is_lost() {
    let Some(g) = guest() else { return };
    let pid = g.agent_pid();
    for round in 0..5 {
        let c = g.client();
        std::thread::scope(|s| {
            for t in 0..4 {
                let c = &c;
                s.spawn(move || {
                    for i in 0..10 {
                        let v = c.ping().unwrap_or_else(|e| {
                            panic!("round {round} thread {t} call {i}: {}", Report(&e))
                        });
                        assert_eq!(v, env!("CARGO_PKG_VERSION"));
                    }
                });
            }
        });
        drop(c);

        // 100 requests in one write; 100 replies, each tag once.
        let mut raw = raw(&g);
        raw.send(&[0xFF]);
        let mut burst = Vec::new();
        for i in 0..100 {
            let cmd = if i % 2 == 0 { "ping" } else { "get-commands" };
            burst.extend_from_slice(
                json!({"execute": cmd, "tag": format!("r{round}-{i}")})
                    .to_string()
                    .as_bytes(),
            );
            burst.extend_from_slice(b"\r\n");
        }
        raw.send(&burst);
        let mut tags = HashSet::new();
        for _ in 0..100 {
            let reply = raw.recv();
            assert!(reply.get("return").is_some(), "{reply}");
            assert!(
                tags.insert(reply["tag"].as_str().unwrap().to_string()),
                "duplicate {reply}"
            );
        }
        assert_eq!(tags.len(), 100);

        // A request whose host leaves before the reply: the next host is not confused.
        raw.send(br#"{"execute":"get-commands","tag":"abandoned"}"#);
        raw.send(b"\n");
        drop(raw);
    }
    let c = g.client();
    assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"));
    drop(c);
    assert_eq!(g.agent_pid(), pid, "the agent restarted: {}", g.agent_log());
}

/// While no host is connected, the port reads EOF and polls HUP forever; the agent
/// must sleep, not spin.
#[test]
fn agent_sleeps_while_the_host_is_away() {
    let Some(g) = guest() else { return };
    let pid = g.agent_pid();
    // Make the host come and go once, so the agent is in the "host gone" state.
    let c = g.client();
    c.ping().unwrap();
    drop(c);
    let before = g.cpu_ticks(pid);
    g.sh_ok("sleep 5");
    let after = g.cpu_ticks(pid);
    // Clock ticks are 1/100 s: a spinning agent would burn about 500 in 5 s.
    assert!(
        after - before <= 3,
        "agent used {} ticks with no host",
        after - before
    );
    // It still wakes for the next host.
    assert_eq!(g.client().ping().unwrap(), env!("CARGO_PKG_VERSION"));
}

/// 0xFF through the real port makes the agent drop a partial line without an error
/// reply; the next request is answered normally.
#[test]
fn resync_byte_through_the_port() {
    let Some(g) = guest() else { return };
    let mut raw = raw(&g);
    raw.send(&[0xFF]);
    raw.send(br#"{"execute":"get-comm"#);
    raw.send(&[0xFF]);
    raw.send(b"{\"execute\":\"ping\",\"tag\":\"a\"}\n");
    let reply = raw.recv();
    assert_eq!(
        reply,
        json!({"return": env!("CARGO_PKG_VERSION"), "tag": "a"})
    );
    raw.send(b"{\"execute\":\"ping\",\"tag\":\"b\"}\n");
    let reply = raw.recv();
    assert_eq!(
        reply["tag"], "b",
        "an error reply for the dropped partial line? {reply}"
    );
}

/// A reply far above the port's 32 KiB per write arrives whole: an unknown command
/// with a 100 KiB name, echoed in the error message.
#[test]
fn large_reply_through_the_port() {
    let Some(g) = guest() else { return };
    let name: String = (0..100 * 1024)
        .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap()))
        .collect();
    let c = g.client();
    match c.call_raw(&name, None, Some(Duration::from_secs(60))) {
        Err(ClientError::Agent(e)) => {
            assert_eq!(e.code, -1);
            assert_eq!(e.message, format!("unknown command \"{name}\""));
        }
        other => panic!("expected an unknown-command error, got {other:?}"),
    }
    // The stream is still in step.
    assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"));
    drop(c);

    let mut raw = raw(&g);
    raw.send(&[0xFF]);
    raw.send(
        json!({"execute": name, "tag": "big"})
            .to_string()
            .as_bytes(),
    );
    raw.send(b"\n");
    let (reply, len) = raw.recv_sized();
    assert_eq!(reply["tag"], "big");
    assert!(len > 128 * 1024, "reply of {len} bytes");
}

/// `agent-shutdown` replies, then the agent exits with status 0 (the guest's init
/// starts a new one, as systemd's Restart=always would).
#[test]
fn agent_shutdown_exits_cleanly() {
    let Some(g) = guest() else { return };
    let pid = g.agent_pid();
    let exits = g.agent_exits().len();
    let c = g.client();
    let ok: bool = c.call("agent-shutdown", &json!({})).unwrap();
    assert!(ok);
    drop(c);
    let mut waited = 0;
    while g.agent_exits().len() == exits {
        assert!(waited < 100, "agent did not exit: {}", g.agent_log());
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    assert_eq!(g.agent_exits()[exits], 0, "{}", g.agent_log());
    // The next agent answers on the same port.
    let c = g.client();
    assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"));
    assert_ne!(g.agent_pid(), pid);
}

/// The harness's background jobs, which later tests use to watch a blocked writer.
#[test]
fn background_job_runs_while_the_shell_answers() {
    let Some(g) = guest() else { return };
    let job = g.spawn("while [ ! -e /tmp/go ]; do sleep 0.05; done; echo hi; exit 4");
    assert_eq!(g.job_status(&job), None);
    g.sh_ok("touch /tmp/go");
    assert_eq!(
        g.job_wait(&job, Duration::from_secs(30)),
        ("hi\n".to_string(), 4)
    );
    g.sh_ok("rm /tmp/go");
}

/// A guest of its own: agent arguments reach the agent, and the guest powers off.
#[test]
fn own_guest_with_agent_arguments_powers_off() {
    if phoenix_e2e::skip() {
        return;
    }
    let mut opts = GuestOpts::new(env!("CARGO_BIN_EXE_phoenix-ga"));
    opts.agent_args = vec!["--block-commands".into(), "agent-shutdown".into()];
    opts.scratch_mib = 32;
    let g = Guest::boot(opts).unwrap_or_else(|e| panic!("{}", Report(&e)));
    let c = g.client();
    let cmds = c.commands().unwrap();
    assert!(!cmds.iter().any(|c| c == "agent-shutdown"), "{cmds:?}");
    match c.call_raw("agent-shutdown", None, None) {
        Err(ClientError::Agent(_)) => {}
        other => panic!("blocked command answered: {other:?}"),
    }
    drop(c);
    g.shutdown().unwrap_or_else(|e| panic!("{}", Report(&e)));
}

/// What the freeze tests rely on, checked with the guest's own fsfreeze: a write into
/// the frozen scratch disk blocks (seen from a background job) and completes on thaw.
#[test]
fn harness_sees_a_writer_blocked_by_a_freeze() {
    let Some(g) = guest() else { return };
    g.sh_ok(&format!("fsfreeze --freeze {SCRATCH}"));
    let thaw = crate::Thaw(&g);
    let writer = g.spawn(&format!(
        "echo data > {SCRATCH}/harness-frozen && echo written"
    ));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        g.job_status(&writer),
        None,
        "the write went through a frozen disk"
    );
    g.sh_ok(&format!("fsfreeze --unfreeze {SCRATCH}"));
    drop(thaw);
    assert_eq!(
        g.job_wait(&writer, Duration::from_secs(30)),
        ("written\n".to_string(), 0)
    );
    g.sh_ok(&format!("rm {SCRATCH}/harness-frozen"));
}
