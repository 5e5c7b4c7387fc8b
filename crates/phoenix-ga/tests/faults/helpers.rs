//! What every fault test checks afterwards: the agent still answers, and still runs.

use phoenix_testkit::RawConn;
use serde_json::json;

/// A ping whose reply must be exactly ours.
pub(crate) fn ping(c: &mut RawConn, tag: &str) {
    let r = c.request(json!({"execute": "ping", "tag": tag}));
    assert_eq!(r["tag"], tag, "reply to another request: {r}");
    assert!(r["return"].is_string(), "ping failed: {r}");
}

/// Whether the agent process is still running (not exited, not a zombie).
pub(crate) fn alive(child: &mut std::process::Child) -> bool {
    child.try_wait().expect("try_wait").is_none()
}
