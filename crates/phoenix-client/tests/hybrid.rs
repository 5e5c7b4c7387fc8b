//! The hybrid vsock socket (`hvsock:PATH:PORT`) against a fake VMM backend on a UNIX
//! socket: the CONNECT/OK handshake, its failures (nothing listens, no answer, a wrong
//! answer, no socket), the backend's pitfalls (no byte before the OK, no close between
//! CONNECT and OK, shutdown and read to the end before close), and a whole session with
//! the real agent behind the fake backend.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use phoenix_client::{Client, ClientError, Dialect, Options, Report, Target};
use phoenix_testkit::TestAgent;

/// Long enough never to fire in a passing test; the timeout tests set their own.
const PATIENT: Duration = Duration::from_secs(20);

/// Options that send nothing after the handshake (no resync, dialect given).
fn quiet(connect_timeout: Duration) -> Options {
    Options {
        dialect: Some(Dialect::Phoenix),
        resync_on_connect: false,
        connect_timeout,
        ..Options::default()
    }
}

/// A fake backend listening at `dir/vm.vsock`, whose one connection `script` handles.
fn backend<T: Send + 'static>(
    dir: &Path,
    script: impl FnOnce(UnixStream) -> T + Send + 'static,
) -> (PathBuf, JoinHandle<T>) {
    let path = dir.join("vm.vsock");
    let listener = UnixListener::bind(&path).unwrap();
    let handle = thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(PATIENT)).unwrap();
        script(conn)
    });
    (path, handle)
}

/// Reads the CONNECT line, then checks that nothing else came with it.
fn expect_connect(conn: &UnixStream, port: u32) {
    let mut line = Vec::new();
    let mut byte = [0u8];
    let mut reader = conn;
    while byte[0] != b'\n' {
        assert_eq!(
            reader.read(&mut byte).unwrap(),
            1,
            "EOF before the CONNECT line"
        );
        line.push(byte[0]);
    }
    assert_eq!(line, format!("CONNECT {port}\n").as_bytes());
    // vhost-device-vsock drops bytes sent before its OK: none may come.
    conn.set_nonblocking(true).unwrap();
    let early = reader.read(&mut [0u8; 64]);
    assert!(
        matches!(&early, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "bytes before the OK: {early:?}"
    );
    conn.set_nonblocking(false).unwrap();
}

fn target(path: &Path, port: u32) -> Target {
    Target::Hybrid {
        path: path.to_path_buf(),
        port,
    }
}

fn connect_error(target: &Target, opts: Options) -> (io::ErrorKind, String) {
    match Client::connect_to(target, opts) {
        Err(e @ ClientError::Connect { .. }) => {
            let ClientError::Connect { source, .. } = &e else {
                unreachable!()
            };
            (source.kind(), Report(&e).to_string())
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[test]
fn the_handshake_then_the_stream_and_a_careful_close() {
    let dir = tempfile::tempdir().unwrap();
    let (path, vmm) = backend(dir.path(), |conn| {
        expect_connect(&conn, 1023);
        (&conn).write_all(b"OK 1023\n").unwrap();
        // The stream: a request, answered as an agent would.
        let mut lines = BufReader::new(&conn);
        let mut request = String::new();
        lines.read_line(&mut request).unwrap();
        assert!(request.contains("\"execute\":\"ping\""), "{request}");
        (&conn)
            .write_all(b"{\"return\":\"9.9\",\"tag\":\"")
            .unwrap();
        let tag = request
            .split("\"tag\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next();
        (&conn)
            .write_all(format!("{}\"}}\n", tag.unwrap()).as_bytes())
            .unwrap();
        // Closing, the client shuts its writing side first (EOF here) and keeps
        // reading: what the guest still sends arrives, and the client closes only
        // after this side has.
        let mut rest = Vec::new();
        lines.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        (&conn).write_all(b"late bytes of the guest\n").unwrap();
        "closed after the client's shutdown"
    });
    let client = Client::connect_to(&target(&path, 1023), quiet(PATIENT)).unwrap();
    assert_eq!(client.ping().unwrap(), "9.9");
    drop(client);
    assert_eq!(vmm.join().unwrap(), "closed after the client's shutdown");
}

#[test]
fn nothing_listening_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // What vhost-device-vsock does when no guest socket listens on the port: close.
    let (path, vmm) = backend(dir.path(), |conn| expect_connect(&conn, 52));
    let (kind, msg) = connect_error(&target(&path, 52), quiet(PATIENT));
    vmm.join().unwrap();
    assert_eq!(kind, io::ErrorKind::ConnectionRefused);
    assert_eq!(
        msg,
        format!(
            "connect hvsock:{}:52: nothing listens on vsock port 52 (the VMM closed the \
             connection)",
            path.display()
        )
    );
}

#[test]
fn a_wrong_answer_is_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let (path, vmm) = backend(dir.path(), |conn| {
        expect_connect(&conn, 7);
        (&conn).write_all(b"ERR no such port\nmore").unwrap();
        // Wait for the client to go before closing.
        let _ = (&conn).read_to_end(&mut Vec::new());
    });
    let (kind, msg) = connect_error(&target(&path, 7), quiet(PATIENT));
    vmm.join().unwrap();
    assert_eq!(kind, io::ErrorKind::InvalidData);
    assert!(
        msg.ends_with(": the VMM answered CONNECT 7 with \"ERR no such port\""),
        "{msg}"
    );
}

#[test]
fn no_socket_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.vsock");
    let (kind, msg) = connect_error(&target(&path, 7), quiet(PATIENT));
    assert_eq!(kind, io::ErrorKind::NotFound);
    assert_eq!(
        msg,
        format!(
            "connect hvsock:{p}:7: no VMM's vsock socket at {p}: No such file or directory \
             (os error 2)",
            p = path.display()
        )
    );
}

#[test]
fn an_unanswered_connect_times_out_without_closing_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (answer, answered) = mpsc::channel::<()>();
    let (path, vmm) = backend(dir.path(), move |conn| {
        expect_connect(&conn, 9);
        // The client gives up; its socket must stay open (vhost-device-vsock panics
        // writing the OK to a closed one), so nothing comes and no EOF.
        answered.recv().unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut byte = [0u8];
        let early = (&conn).read(&mut byte);
        assert!(
            matches!(&early, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "closed or written before the OK: {early:?}"
        );
        // The answer comes late: the orphaned socket is then closed the careful way.
        conn.set_read_timeout(Some(PATIENT)).unwrap();
        (&conn).write_all(b"OK 9\n").unwrap();
        let mut rest = Vec::new();
        (&conn).read_to_end(&mut rest).unwrap();
        rest
    });
    let (kind, msg) = connect_error(&target(&path, 9), quiet(Duration::from_millis(300)));
    assert_eq!(kind, io::ErrorKind::TimedOut);
    assert!(
        msg.ends_with(": no answer to CONNECT 9 within 300ms"),
        "{msg}"
    );
    answer.send(()).unwrap();
    assert!(vmm.join().unwrap().is_empty());
}

/// A fake backend that, after its OK, relays the stream to a real agent's socket.
fn relay_to(agent_sock: PathBuf, port: u32) -> impl FnOnce(UnixStream) + Send + 'static {
    move |conn| {
        expect_connect(&conn, port);
        (&conn)
            .write_all(format!("OK {port}\n").as_bytes())
            .unwrap();
        conn.set_read_timeout(None).unwrap();
        let agent = UnixStream::connect(agent_sock).unwrap();
        let (mut up_from, mut up_to) = (conn.try_clone().unwrap(), agent.try_clone().unwrap());
        let up = thread::spawn(move || {
            let _ = io::copy(&mut up_from, &mut up_to);
            let _ = up_to.shutdown(std::net::Shutdown::Write);
        });
        let (mut down_from, mut down_to) = (agent, conn);
        let _ = io::copy(&mut down_from, &mut down_to);
        up.join().unwrap();
    }
}

#[test]
fn a_session_with_the_real_agent_in_both_dialects() {
    let agent = TestAgent::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (path, vmm) = backend(dir.path(), relay_to(agent.sock.clone(), 1023));
    // Default options: resync and found-out dialect, as phoenix-ctl connects.
    let opts = Options {
        dialect: None,
        ..Options::default()
    };
    let client = Client::connect_with(format!("hvsock:{}:1023", path.display()), opts).unwrap();
    assert_eq!(client.dialect(), Dialect::Phoenix);
    assert_eq!(client.ping().unwrap(), env!("CARGO_PKG_VERSION"));
    drop(client);
    vmm.join().unwrap();

    let qga = TestAgent::start(&["--dialect", "qga"]);
    let dir = tempfile::tempdir().unwrap();
    let (path, vmm) = backend(dir.path(), relay_to(qga.sock.clone(), 1022));
    let client = Client::connect_to(&target(&path, 1022), opts_auto()).unwrap();
    assert_eq!(client.dialect(), Dialect::Qga);
    client.ping().unwrap();
    drop(client);
    vmm.join().unwrap();
}

fn opts_auto() -> Options {
    Options {
        dialect: None,
        ..Options::default()
    }
}
