//! Envelope rules on the wire, against the real binary over unix-listen.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use phoenix_testkit::{err, ret, Launch, RawConn};
use serde_json::json;

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn ping_ok(c: &mut RawConn, tag: &str) {
    let r = c.request(json!({"execute": "ping", "tag": tag}));
    assert_eq!(r, json!({"return": VERSION, "tag": tag}));
}

#[test]
fn ping_returns_version_and_echoes_tag() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    ping_ok(&mut c, "t1");
    // No tag: "" is echoed.
    let r = c.request(json!({"execute": "ping"}));
    assert_eq!(r, json!({"return": VERSION, "tag": ""}));
}

#[test]
fn crlf_lf_and_two_requests_in_one_write() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    c.send(b"{\"execute\":\"ping\",\"tag\":\"a\"}\r\n{\"execute\":\"ping\",\"tag\":\"b\"}\n");
    assert_eq!(c.recv()["tag"], "a");
    assert_eq!(c.recv()["tag"], "b");
    // A request split over several writes, then blank lines.
    c.send(b"{\"execute\":");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"\"ping\",\"tag\":\"c\"}\r\n\r\n\n");
    assert_eq!(c.recv()["tag"], "c");
}

#[test]
fn many_pipelined_requests_are_all_answered() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let mut burst = Vec::new();
    for i in 0..500 {
        burst.extend_from_slice(format!("{{\"execute\":\"ping\",\"tag\":\"p{i}\"}}\n").as_bytes());
    }
    c.send(&burst);
    let mut seen: Vec<String> = (0..500)
        .map(|_| c.recv()["tag"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    let mut want: Vec<String> = (0..500).map(|i| format!("p{i}")).collect();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn tags_are_echoed_exactly_and_escaped() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    for tag in [
        "a\"b",
        "back\\slash",
        "new\nline",
        "\u{e9}\u{1F600}",
        "</script>",
        "",
    ] {
        let r = c.request(json!({"execute": "ping", "tag": tag}));
        assert_eq!(r["tag"], tag);
        let r = c.request(json!({"execute": "no-such-command", "tag": tag}));
        assert_eq!(r["tag"], tag);
        assert_eq!(err(&r).0, "unknown command \"no-such-command\"");
    }
    // Escapes the host chose are kept byte for byte.
    c.send(b"{\"execute\":\"ping\",\"tag\":\"\\u0041\\/\"}\n");
    let mut raw = String::new();
    let mut buf = [0u8; 256];
    while !raw.ends_with('\n') {
        let n = c.stream.read(&mut buf).unwrap();
        raw.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    assert_eq!(
        raw,
        format!("{{\"return\":\"{VERSION}\",\"tag\":\"\\u0041\\/\"}}\n")
    );
}

#[test]
fn bad_requests_get_errors_and_the_agent_goes_on() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let cases: &[(&[u8], &str, &str)] = &[
        (b"{not json}\n", "", "invalid request: malformed JSON"),
        (
            b"[1,2,3]\n",
            "",
            "invalid request: request is not a JSON object",
        ),
        (
            b"null\n",
            "",
            "invalid request: request is not a JSON object",
        ),
        (b"42\n", "", "invalid request: request is not a JSON object"),
        (
            b"{\"tag\":\"t\"}\n",
            "t",
            "invalid request: missing \"execute\"",
        ),
        (
            b"{\"execute\":7,\"tag\":\"u\"}\n",
            "u",
            "invalid request: \"execute\" must be a string",
        ),
        (
            b"{\"execute\":\"ping\",\"tag\":5}\n",
            "",
            "invalid request: \"tag\" must be a string",
        ),
        (
            b"{\"execute\":\"warp\",\"tag\":\"w\"}\n",
            "w",
            "unknown command \"warp\"",
        ),
        (
            b"{\"execute\":\"ping\"\n",
            "",
            "invalid request: malformed JSON",
        ),
        (b"\xc3\x28\n", "", "invalid request: malformed JSON"),
    ];
    for (line, tag, msg) in cases {
        c.send(line);
        let r = c.recv();
        assert_eq!(r["tag"], *tag, "for {:?}", String::from_utf8_lossy(line));
        let (m, code) = err(&r);
        assert!(m.starts_with(msg), "{m:?} should start with {msg:?}");
        assert_eq!(code, -1);
        ping_ok(&mut c, "still-alive");
    }
}

#[test]
fn unknown_argument_fields_are_ignored() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let r =
        c.request(json!({"execute": "ping", "arguments": {"legacy": 1, "x": [true]}, "tag": "x"}));
    assert_eq!(ret(&r), VERSION);
    let r = c.request(json!({"execute": "get-commands", "arguments": null}));
    assert!(ret(&r).as_array().is_some());
}

#[test]
fn resync_byte_discards_partial_line() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    c.send(b"{\"execute\":\"pi");
    c.send(b"\xff{\"execute\":\"ping\",\"tag\":\"after-ff\"}\n");
    let r = c.recv();
    assert_eq!(r["tag"], "after-ff");
    assert_eq!(ret(&r), VERSION);
    // Several in a row, and one between two complete requests.
    c.send(
        b"\xff\xff{\"execute\":\"ping\",\"tag\":\"1\"}\n\xff{\"execute\":\"ping\",\"tag\":\"2\"}\n",
    );
    assert_eq!(c.recv()["tag"], "1");
    assert_eq!(c.recv()["tag"], "2");
}

#[test]
fn over_long_line_is_refused_and_the_stream_resynchronises() {
    let agent = Launch::new(AGENT).start(&["--max-line-bytes", "1024"]);
    let mut c = agent.raw();
    let mut long = b"{\"execute\":\"ping\",\"tag\":\"".to_vec();
    long.extend(std::iter::repeat_n(b'x', 200_000));
    long.extend_from_slice(b"\"}\n");
    c.send(&long);
    let r = c.recv();
    assert_eq!(r["tag"], "");
    let (msg, code) = err(&r);
    assert_eq!(msg, "invalid request: request line longer than 1024 bytes");
    assert_eq!(code, -1);
    ping_ok(&mut c, "next");
    // A line of exactly the limit is accepted.
    let pad = 1024 - br#"{"execute":"ping","tag":""}"#.len();
    let exact = format!("{{\"execute\":\"ping\",\"tag\":\"{}\"}}\n", "y".repeat(pad));
    assert_eq!(exact.len(), 1025);
    c.send(exact.as_bytes());
    assert_eq!(ret(&c.recv()), VERSION);
}

#[test]
fn get_commands_lists_every_command() {
    let agent = Launch::new(AGENT).start(&[]);
    let names: Vec<String> = agent.client().commands().unwrap();
    for n in ["ping", "get-commands", "agent-shutdown"] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
}

#[test]
fn blocked_and_allowed_commands() {
    let agent = Launch::new(AGENT).start(&["--block-commands", "agent-shutdown"]);
    let mut c = agent.raw();
    let r = c.request(json!({"execute": "agent-shutdown", "tag": "b"}));
    assert_eq!(
        err(&r),
        ("command \"agent-shutdown\" has been disabled".into(), -1)
    );
    let names = ret(&c.request(json!({"execute": "get-commands"}))).clone();
    assert!(!names.as_array().unwrap().contains(&json!("agent-shutdown")));
    ping_ok(&mut c, "alive");

    let agent = Launch::new(AGENT).start(&["-allow-commands=ping,get-commands"]);
    let mut c = agent.raw();
    let names = ret(&c.request(json!({"execute": "get-commands"}))).clone();
    assert_eq!(names, json!(["ping", "get-commands"]));
    let r = c.request(json!({"execute": "agent-shutdown"}));
    assert_eq!(err(&r).0, "command \"agent-shutdown\" has been disabled");
}

#[test]
fn unknown_name_in_a_command_list_is_fatal_at_start() {
    let out = std::process::Command::new(AGENT)
        .args([
            "-m",
            "unix-listen",
            "-p",
            "/nonexistent/x.sock",
            "--block-commands",
            "fiel-write",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command \"fiel-write\""));
}

#[test]
fn version_flag() {
    for flag in ["-v", "--version"] {
        let out = std::process::Command::new(AGENT)
            .arg(flag)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains(VERSION));
    }
}

#[test]
fn client_disconnecting_mid_stream_leaves_a_clean_stream_for_the_next() {
    let agent = Launch::new(AGENT).start(&[]);
    // A client that sends half a request and goes.
    {
        let mut c = agent.raw();
        c.send(b"{\"execute\":\"ping\",\"ta");
    }
    // A client that asks for a large reply and goes without reading it.
    {
        let mut c = agent.raw();
        let big = "n".repeat(4 << 20);
        c.send(json!({"execute": big, "tag": "big"}).to_string().as_bytes());
        c.send(b"\n");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = agent.raw();
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    ping_ok(&mut c, "fresh");
    // Nothing else arrives on the new stream.
    c.stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(
        c.stream.read(&mut buf).is_err(),
        "stale bytes on a new connection"
    );
}

#[test]
fn large_error_reply_arrives_whole() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let name = "z".repeat(1 << 20);
    let r = c.request(json!({"execute": name, "tag": "L"}));
    assert_eq!(r["tag"], "L");
    assert_eq!(err(&r).0, format!("unknown command \"{name}\""));
}

#[test]
fn concurrent_clients_are_served_independently() {
    let agent = Launch::new(AGENT).start(&[]);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let sock = agent.sock.clone();
            std::thread::spawn(move || {
                let mut c = RawConn::connect(&sock);
                for i in 0..200 {
                    let tag = format!("{t}-{i}");
                    let r = c.request(json!({"execute": "ping", "tag": tag}));
                    assert_eq!(r["tag"], tag);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn half_closed_client_still_gets_its_replies() {
    let agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    c.send(
        b"{\"execute\":\"ping\",\"tag\":\"h1\"}\n{\"execute\":\"get-commands\",\"tag\":\"h2\"}\n",
    );
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.recv()["tag"], "h1");
    assert_eq!(c.recv()["tag"], "h2");
}

#[test]
fn agent_shutdown_replies_then_exits_cleanly() {
    let mut agent = Launch::new(AGENT).start(&[]);
    let mut c = agent.raw();
    let r = c.request(json!({"execute": "agent-shutdown", "tag": "bye"}));
    assert_eq!(r, json!({"return": true, "tag": "bye"}));
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(!agent.sock.exists(), "socket file left behind");
}

#[test]
fn sigterm_and_sigint_exit_cleanly() {
    for sig in [nix::sys::signal::SIGTERM, nix::sys::signal::SIGINT] {
        let mut agent = Launch::new(AGENT).start(&[]);
        let mut c = agent.raw();
        ping_ok(&mut c, "x");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(agent.pid()).unwrap()),
            sig,
        )
        .unwrap();
        assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0), "{sig}");
        assert!(!agent.sock.exists());
    }
}

#[test]
fn stray_signals_do_not_kill_the_agent() {
    use nix::sys::signal::*;
    let agent = Launch::new(AGENT).start(&[]);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.pid()).unwrap());
    let mut c = agent.raw();
    for round in 0..50 {
        for sig in [
            SIGHUP, SIGWINCH, SIGIO, SIGCHLD, SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM,
        ] {
            kill(pid, sig).unwrap();
        }
        ping_ok(&mut c, &format!("r{round}"));
    }
}

#[test]
fn no_cpu_while_idle_after_traffic() {
    let agent = Launch::new(AGENT).start(&[]);
    {
        let mut c = agent.raw();
        for burst in 0..20 {
            for i in 0..100 {
                c.send(format!("{{\"execute\":\"ping\",\"tag\":\"{burst}-{i}\"}}\n").as_bytes());
            }
            for _ in 0..100 {
                c.recv();
            }
        }
    }
    // A connected but silent client, then none.
    let idle = UnixStream::connect(&agent.sock).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = agent.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let t1 = agent.cpu_ticks();
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    let t2 = agent.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let t3 = agent.cpu_ticks();
    assert_eq!(
        t1 - t0,
        0,
        "CPU used while a client was connected and silent"
    );
    assert_eq!(t3 - t2, 0, "CPU used with no client");
}

#[test]
fn stale_socket_is_replaced_but_a_live_one_is_not() {
    let agent = Launch::new(AGENT).start(&[]);
    // A second agent on the same live socket refuses to start.
    let out = std::process::Command::new(AGENT)
        .args(["-m", "unix-listen", "-p"])
        .arg(&agent.sock)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another agent is listening"));
    // A socket file left by a dead agent is replaced.
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let mut child = std::process::Command::new(AGENT)
        .args(["-m", "unix-listen", "-p"])
        .arg(&stale)
        .spawn()
        .unwrap();
    let mut ok = false;
    for _ in 0..500 {
        if let Ok(s) = UnixStream::connect(&stale) {
            let mut c = RawConn::from_stream(s);
            ok = c.request(json!({"execute": "ping"}))["return"] == VERSION;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ok, "agent did not take over the stale socket");
}

#[test]
fn config_file_locks_the_agent_down() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("phoenix-ga.conf");
    std::fs::write(
        &conf,
        "# provider policy\nblock-commands = agent-shutdown\n",
    )
    .unwrap();
    let agent = Launch::new(AGENT).start(&["--config", conf.to_str().unwrap()]);
    let mut c = agent.raw();
    let r = c.request(json!({"execute": "agent-shutdown"}));
    assert_eq!(err(&r).0, "command \"agent-shutdown\" has been disabled");
    ping_ok(&mut c, "alive");
    // A bad file stops the agent at start, naming the line.
    std::fs::write(&conf, "block-comands = ping\n").unwrap();
    let out = std::process::Command::new(AGENT)
        .args(["-m", "unix-listen", "-p", "/nonexistent/x.sock", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":1: unknown setting \"block-comands\""));
}

#[test]
fn a_request_too_big_for_memory_gets_enomem_and_the_agent_lives() {
    // 256 MiB of address space; the line limit raised far above it.
    let agent = Launch::new(AGENT)
        .wrapper(&["prlimit", "--as=268435456", "--"])
        .start(&["--max-line-bytes", "2000000000"]);
    let mut c = agent.raw();
    ping_ok(&mut c, "before");
    c.send(b"{\"execute\":\"ping\",\"tag\":\"");
    let chunk = vec![b'm'; 1 << 20];
    for _ in 0..400 {
        c.send(&chunk);
    }
    c.send(b"\"}\n");
    let r = c.recv();
    let (msg, code) = err(&r);
    assert_eq!(code, 12, "{msg}");
    assert!(msg.contains("does not fit in memory"), "{msg}");
    ping_ok(&mut c, "after");
}
