//! Envelope rules on the wire, against the real binary over unix-listen.

mod common;

use common::{err, ret, TestAgent};
use serde_json::json;

#[test]
fn ping_returns_version_and_echoes_tag() {
    let agent = TestAgent::unix(&[]);
    let mut c = agent.raw();
    let r = c.request(json!({"execute": "ping", "tag": "t1"}));
    assert_eq!(r, json!({"return": env!("CARGO_PKG_VERSION"), "tag": "t1"}));
}
