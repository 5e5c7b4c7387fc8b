//! The client speaks both dialects and finds out which one a socket speaks: against our
//! agent on each dialect's listener, and against an unmodified qemu-ga.

use phoenix_client::{AgentError, Client, ClientError, Dialect, Options};
use phoenix_testkit::{QemuGa, TestAgent};
use serde_json::Value;

fn detect() -> Options {
    Options {
        dialect: None,
        ..Options::default()
    }
}

#[test]
fn finds_the_dialect_of_each_agent() {
    let ours = TestAgent::start(&[]);
    let c = Client::connect_with(&ours.sock, detect()).unwrap();
    assert_eq!(c.dialect(), Dialect::Phoenix);
    assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"));

    let ours_qga = TestAgent::start(&["--dialect", "qga"]);
    let c = Client::connect_with(&ours_qga.sock, detect()).unwrap();
    assert_eq!(c.dialect(), Dialect::Qga);
    assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"));
    let info = c.info().unwrap();
    assert!(info.supports("guest-sync-delimited"), "{info:?}");

    let theirs = QemuGa::start(&[], &[]);
    let c = Client::connect_with(&theirs.sock, detect()).unwrap();
    assert_eq!(c.dialect(), Dialect::Qga);
    let version = c.ping().unwrap();
    assert!(version.starts_with("10."), "qemu-ga {version}");
    let r: Value = c.call_no_args("guest-ping").unwrap();
    assert_eq!(r, serde_json::json!({}));
}

#[test]
fn qga_errors_keep_their_class() {
    for agent in [
        Box::new(TestAgent::start(&["--dialect", "qga"])) as Box<dyn std::any::Any>,
        Box::new(QemuGa::start(&[], &[])),
    ] {
        let sock = match agent.downcast_ref::<TestAgent>() {
            Some(a) => a.sock.clone(),
            None => agent.downcast_ref::<QemuGa>().unwrap().sock.clone(),
        };
        let c = Client::connect_with(&sock, Options::dialect(Dialect::Qga)).unwrap();
        match c.call_no_args::<Value>("guest-nope") {
            Err(ClientError::Agent(AgentError { class, code, .. })) => {
                assert_eq!(class.as_deref(), Some("CommandNotFound"));
                assert_eq!(code, -1);
            }
            other => panic!("{other:?}"),
        }
        // The connection goes on after the error, and after a resync.
        c.resync().unwrap();
        let n: i64 = c.call("guest-sync", &serde_json::json!({"id": 5})).unwrap();
        assert_eq!(n, 5);
    }
}
