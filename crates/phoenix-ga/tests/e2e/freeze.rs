//! The default fs-freeze (every filesystem) in a real guest: the scratch disk on
//! virtio-blk is frozen, a writer blocks until fs-unfreeze; the auto-thaw; a frozen
//! guest thawed by agent-shutdown.

use std::time::{Duration, Instant};

use phoenix_e2e::{Guest, GuestOpts, SCRATCH};
use serde_json::json;

use phoenix_client::Report;

use crate::{call, guest, Thaw};

/// How long a writer is given to (wrongly) get through a frozen disk.
const BLOCKED: Duration = Duration::from_millis(700);

/// The guest's view: FIFREEZE on a frozen filesystem fails with EBUSY.
fn scratch_is_frozen(g: &Guest) -> bool {
    let out = g.run(&format!(
        "fsfreeze --freeze {SCRATCH} && fsfreeze --unfreeze {SCRATCH}"
    ));
    out.status != 0 && out.stderr.contains("busy")
}

#[test]
fn default_freeze_blocks_writers_until_unfreeze() {
    let Some(g) = guest() else {
        return;
    };
    let c = g.client();
    let file = format!("{SCRATCH}/freeze-probe");
    g.sh_ok(&format!("rm -f {file}"));

    assert_eq!(call(&c, "fs-freeze", json!({})), json!(true));
    let _thaw = Thaw(&g);
    assert_eq!(call(&c, "get-freeze-status", json!({})), json!(true));
    assert!(scratch_is_frozen(&g), "fs-freeze did not freeze {SCRATCH}");
    let writer = g.spawn(&format!("echo data > {file} && echo written"));
    std::thread::sleep(BLOCKED);
    assert_eq!(
        g.job_status(&writer),
        None,
        "a write went through the frozen disk"
    );
    // The agent itself still answers.
    assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"));

    assert_eq!(call(&c, "fs-unfreeze", json!({})), json!(true));
    assert_eq!(
        g.job_wait(&writer, Duration::from_secs(30)),
        ("written\n".to_string(), 0)
    );
    assert_eq!(call(&c, "get-freeze-status", json!({})), json!(false));
    assert!(!scratch_is_frozen(&g));
    assert_eq!(g.sh_ok(&format!("cat {file}")), "data\n");
    // Unfreezing what is not frozen is fine, as in the original.
    assert_eq!(call(&c, "fs-unfreeze", json!({})), json!(true));
    g.sh_ok(&format!("rm {file}"));
}

#[test]
fn agent_shutdown_while_frozen_thaws_first() {
    let Some(g) = guest() else {
        return;
    };
    let exits = g.agent_exits().len();
    let c = g.client();
    assert_eq!(call(&c, "fs-freeze", json!({})), json!(true));
    let _thaw = Thaw(&g);
    let writer = g.spawn(&format!("echo x > {SCRATCH}/freeze-shutdown"));
    std::thread::sleep(BLOCKED);
    assert_eq!(g.job_status(&writer), None);
    assert_eq!(call(&c, "agent-shutdown", json!({})), json!(true));
    drop(c);
    assert_eq!(g.job_wait(&writer, Duration::from_secs(30)).1, 0);
    assert!(!scratch_is_frozen(&g));
    let deadline = Instant::now() + Duration::from_secs(30);
    while g.agent_exits().len() == exits {
        assert!(Instant::now() < deadline, "agent did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(g.agent_exits()[exits], 0);
    // The next agent knows nothing is frozen.
    assert_eq!(
        call(&g.client(), "get-freeze-status", json!({})),
        json!(false)
    );
    g.sh_ok(&format!("rm {SCRATCH}/freeze-shutdown"));
}

/// `--freeze-timeout 2`: the guest thaws itself and the blocked writer completes.
#[test]
fn auto_thaw_after_the_timeout() {
    if phoenix_e2e::skip() {
        return;
    }
    let mut opts = GuestOpts::new(env!("CARGO_BIN_EXE_phoenix-ga"));
    opts.agent_args = vec!["--freeze-timeout".into(), "2".into()];
    opts.scratch_mib = 32;
    let g = Guest::boot(opts).unwrap_or_else(|e| panic!("{}", Report(&e)));
    let c = g.client();
    assert_eq!(call(&c, "fs-freeze", json!({})), json!(true));
    assert_eq!(call(&c, "get-freeze-status", json!({})), json!(true));
    let writer = g.spawn(&format!("echo x > {SCRATCH}/auto-thaw && echo written"));
    assert_eq!(
        g.job_wait(&writer, Duration::from_secs(60)),
        ("written\n".to_string(), 0)
    );
    assert_eq!(call(&c, "get-freeze-status", json!({})), json!(false));
    assert!(!scratch_is_frozen(&g));
    drop(c);
    g.shutdown().unwrap_or_else(|e| panic!("{}", Report(&e)));
}
