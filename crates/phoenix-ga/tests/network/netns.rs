//! A network namespace per test, and the `ip` commands that set it up and check it.

use std::sync::atomic::{AtomicU32, Ordering};

use phoenix_testkit::{cidrs, must, must_json, quiet, Launch, TestAgent};
use serde_json::{json, Value};

use crate::AGENT;

/// A network namespace deleted on drop (its links go with it), even when a test fails.
pub(crate) struct Netns {
    name: String,
}

impl Netns {
    /// A fresh namespace with `lo` up and IPv6 duplicate address detection off, so
    /// that addresses are usable at once instead of "tentative".
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "phx-net-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        must("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&[
            "sh",
            "-c",
            "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && \
             echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad",
        ]);
        ns.ip("link set lo up");
        ns
    }

    /// The namespace's name, for commands that name it (`ip link ... netns NAME`, a
    /// wrapper `ip netns exec NAME`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command inside the namespace.
    pub(crate) fn exec(&self, cmd: &[&str]) {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        must("ip", &args);
    }

    /// `ip -n NS ARGS`, which must succeed.
    pub(crate) fn ip(&self, args: &str) {
        let mut all = vec!["-n", &self.name];
        all.extend(args.split_whitespace());
        must("ip", &all);
    }

    /// `ip -n NS -j ARGS`, parsed.
    pub(crate) fn json(&self, args: &str) -> Value {
        let mut all = vec!["-n", &self.name, "-j"];
        all.extend(args.split_whitespace());
        must_json("ip", &all)
    }

    /// A veth pair `a`/`b`, both up.
    pub(crate) fn veth(&self, a: &str, b: &str) {
        self.ip(&format!("link add {a} type veth peer name {b}"));
        self.ip(&format!("link set {a} up"));
        self.ip(&format!("link set {b} up"));
    }

    /// Waits until each of `devs` has its IPv6 link-local address, which the kernel adds
    /// shortly after the carrier comes up (the link watcher runs deferred), so that the
    /// agent and `ip` see the same addresses and routes.
    pub(crate) fn wait_link_local(&self, devs: &[&str]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let v = self.json("-6 addr show scope link");
            let ready = devs.iter().all(|d| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["ifname"] == *d && !l["addr_info"].as_array().unwrap().is_empty())
            });
            if ready {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no link-local address on {devs:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// How to start the agent inside the namespace.
    pub(crate) fn launch(&self) -> Launch {
        Launch::new(AGENT).wrapper(&["ip", "netns", "exec", &self.name])
    }

    /// The agent, started inside the namespace.
    pub(crate) fn agent(&self) -> TestAgent {
        self.launch().start(&[])
    }

    /// Addresses of `dev` as "ADDR/PREFIX", from `ip -j addr`.
    pub(crate) fn addrs(&self, dev: &str) -> Vec<String> {
        cidrs(&self.json(&format!("addr show dev {dev}"))[0])
    }

    /// Whether `dev` is administratively up, from `ip -j link`.
    pub(crate) fn is_up(&self, dev: &str) -> bool {
        let v = self.json(&format!("link show dev {dev}"));
        v[0]["flags"].as_array().unwrap().contains(&json!("UP"))
    }

    /// The main table's routes of one family as `ip -j route` shows them.
    pub(crate) fn ip_routes(&self, family: &str) -> Vec<Value> {
        let v = self.json(&format!("{family} route show table main"));
        v.as_array().unwrap().clone()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        quiet("ip", &["netns", "del", &self.name]);
    }
}

/// A namespace with veth pair v0/v1 up, v0 holding 10.9.0.1/24 and fd09::1/64, and
/// the agent running inside.
pub(crate) fn setup() -> (TestAgent, Netns) {
    let ns = Netns::new();
    ns.veth("v0", "v1");
    ns.ip("addr add 10.9.0.1/24 dev v0");
    ns.ip("addr add fd09::1/64 dev v0 nodad");
    ns.wait_link_local(&["v0", "v1"]);
    let agent = ns.agent();
    (agent, ns)
}
