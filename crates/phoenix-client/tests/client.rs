//! The connection layer against the real agent: timeouts and resync, stale replies,
//! concurrent calls, decoded errors; and against a scripted peer, garbage on the line.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

use phoenix_client::{Client, ClientError, Options};
use phoenix_testkit::TestAgent;

fn is_timeout(r: Result<impl std::fmt::Debug, ClientError>) -> bool {
    matches!(r, Err(ClientError::Timeout { .. }))
}

#[test]
fn a_reply_that_never_comes_times_out_and_the_next_call_succeeds() {
    let agent = TestAgent::start(&[]);
    let client = agent.client();
    // An unterminated JSON string: the next request line ends up inside it, so the
    // agent answers a malformed line (tag "") and never our request.
    client.send_bytes(br#"{"execute":"ping","junk":""#).unwrap();
    let r = client.call_raw("ping", None, Some(Duration::from_millis(300)));
    match r {
        Err(ClientError::Timeout { command, timeout }) => {
            assert_eq!(command, "ping");
            assert_eq!(timeout, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The next call resynchronises first and gets its own reply.
    assert_eq!(client.ping().unwrap(), "0.9.0");
    assert!(client.commands().unwrap().contains(&"ping".to_string()));
}

#[test]
fn a_partial_line_is_dropped_by_the_resync_on_connect() {
    let agent = TestAgent::start(&[]);
    // A first client leaves half a request behind (on a virtio port the next host
    // would inherit it; here it shares the stream).
    let client = agent.client();
    client.send_bytes(br#"{"execute":"ping","tag":"#).unwrap();
    client.resync().unwrap();
    assert_eq!(client.ping().unwrap(), "0.9.0");
}

#[test]
fn stale_replies_of_timed_out_calls_never_reach_later_calls() {
    let agent = TestAgent::start(&[]);
    let client = agent.client();
    // A zero timeout gives up before the reply can arrive, every time.
    assert!(is_timeout(client.call_raw(
        "get-commands",
        None,
        Some(Duration::ZERO)
    )));
    // Had the late get-commands reply (a list) been taken for ping's, this would fail
    // to decode as a string.
    assert_eq!(client.ping().unwrap(), "0.9.0");

    // A 24 MiB unknown command name: its error reply (the name in base64, 32 MiB)
    // takes the agent a while, and arrives during the next call's resync.
    let huge = "x".repeat(24 << 20);
    assert!(is_timeout(client.call_raw(
        &huge,
        None,
        Some(Duration::ZERO)
    )));
    let names = client.commands().unwrap();
    assert!(names.contains(&"get-commands".to_string()));
    assert_eq!(client.ping().unwrap(), "0.9.0");
}

#[test]
fn concurrent_calls_from_many_threads_get_their_own_replies() {
    let agent = TestAgent::start(&[]);
    let client = Arc::new(agent.client());
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let client = Arc::clone(&client);
            std::thread::spawn(move || {
                for i in 0..150 {
                    match i % 3 {
                        0 => assert_eq!(client.ping().unwrap(), "0.9.0"),
                        1 => assert!(client.commands().unwrap().len() >= 3),
                        _ => {
                            // The error names the command: a reply matched to the
                            // wrong caller would name another.
                            let name = format!("no-such-{t}-{i}");
                            let e = client.call_raw(&name, None, None).unwrap_err();
                            let ClientError::Agent(e) = e else {
                                panic!("expected an agent error, got {e:?}")
                            };
                            assert_eq!(e.command, name);
                            assert!(e.message.contains(&name), "{}", e.message);
                            assert_eq!(e.code, -1);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("caller thread");
    }
}

#[test]
fn agent_errors_are_decoded() {
    let agent = TestAgent::start(&[]);
    let client = agent.client();
    let e = client.call_raw("no-such", None, None).unwrap_err();
    assert!(e.to_string().contains("no-such"), "{e}");
    assert_eq!(e.errno(), None);
    match e {
        ClientError::Agent(a) => assert_eq!(a.code, -1),
        other => panic!("expected an agent error, got {other:?}"),
    }
}

#[test]
fn a_closed_connection_fails_every_later_call() {
    let agent = TestAgent::start(&[]);
    let client = agent.client();
    assert!(client.agent_shutdown().unwrap());
    let e = client.ping().unwrap_err();
    assert!(
        matches!(e, ClientError::Closed | ClientError::Io(_)),
        "expected the connection to be closed, got {e:?}"
    );
}

#[test]
fn connecting_to_nothing_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.sock");
    let e = Client::connect(&path).expect_err("connect must fail");
    assert!(e.to_string().contains("none.sock"), "{e}");
}

/// A scripted peer: before answering the resync `ping`, it sends what an earlier
/// client's abandoned calls and a restarted agent leave on a virtio port.
#[test]
fn garbage_and_stale_replies_before_the_resync_are_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let peer = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.write_all(
            b"garbage \x01\x02\n\
              {\"return\":\"stale\",\"tag\":\"earlier-client-7\"}\n\
              {\"error\":{\"bufb64\":\"eA==\",\"code\":2},\"tag\":\"\"}\n\
              {\"return\":\"cut in the mid",
        )
        .unwrap();
        let mut reader = BufReader::new(sock.try_clone().unwrap());
        let mut ff = [0u8; 1];
        reader.read_exact(&mut ff).unwrap();
        assert_eq!(ff[0], 0xFF, "resync must start with 0xFF");
        let mut answer = |reader: &mut BufReader<_>, value: &str, stale_first: bool| {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.ends_with("\r\n"), "requests end with CRLF: {line:?}");
            let req: serde_json::Value = serde_json::from_str(&line).unwrap();
            let tag = req["tag"].as_str().unwrap().to_string();
            if stale_first {
                sock.write_all(b"{\"return\":[\"stale\"],\"tag\":\"other\"}\n")
                    .unwrap();
            }
            let reply = serde_json::json!({"return": value, "tag": tag});
            sock.write_all(format!("{reply}\n").as_bytes()).unwrap();
            req["execute"].as_str().unwrap().to_string()
        };
        // The resync ping's reply is glued to the partial line above.
        assert_eq!(answer(&mut reader, "9.9", false), "ping");
        assert_eq!(answer(&mut reader, "9.9.1", true), "ping");
    });
    let client = Client::connect_with(&path, Options::default()).unwrap();
    assert_eq!(client.ping().unwrap(), "9.9.1");
    peer.join().unwrap();
}

#[test]
fn a_peer_that_reads_nothing_fails_a_write_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deaf.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Accepts and holds the connection, never reading: the socket fills up.
    let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let opts = Options {
        dialect: Some(phoenix_client::Dialect::Phoenix),
        resync_on_connect: false,
        timeout: Some(Duration::from_millis(500)),
        ..Options::default()
    };
    let client = Client::connect_with(&path, opts).unwrap();
    let _peer = held.join().unwrap().unwrap();
    let big = serde_json::value::to_raw_value(&"x".repeat(16 << 20)).unwrap();
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(client.call_raw("ping", Some(&big), None).map(drop));
    });
    let r = result
        .recv_timeout(Duration::from_secs(60))
        .expect("the write blocked past its timeout");
    match r {
        Err(ClientError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
        other => panic!("expected a write timeout, got {other:?}"),
    }
}
