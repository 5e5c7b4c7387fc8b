//! Freezer paths the wire cannot reach: the panic hook, the emergency thaw, the
//! timer's generation check, an unrepresentable timeout. Root only: each test freezes
//! an ext4 image it loop-mounts itself (never this machine's own filesystems), and the
//! guard thaws, unmounts and detaches it even when the test fails.

use std::path::Path;
use std::sync::Arc;

use clap::Parser;

use phoenix_e2e::loopfs::LoopFs;

use phoenix_proto::qga::Empty;
use phoenix_proto::types::freeze::cmd::{FsFreeze, FsUnfreeze, GetFreezeStatus};
use phoenix_proto::types::freeze::qga::cmd::{
    GuestFsfreezeFreezeList, GuestFsfreezeStatus, GuestFsfreezeThaw,
};
use phoenix_proto::types::freeze::qga::GuestFsfreezeFreezeListArgs;
use phoenix_proto::types::freeze::FsFreezeArgs;
use phoenix_proto::NoArgs;

use super::{marker, Freeze, Freezer};
use crate::agent::Agent;
use crate::command::{Command, Outcome};
use crate::config::Cli;

fn agent(state: &Path, timeout: &str) -> Arc<Agent> {
    let cli = Cli::try_parse_from([
        "phoenix-ga",
        "--state-dir",
        state.to_str().unwrap(),
        "--freeze-timeout",
        timeout,
    ])
    .unwrap();
    Arc::new(Agent::new(cli).unwrap())
}

fn freezer(agent: &Agent) -> &Freezer {
    agent.family::<Freeze>().freezer()
}

fn freeze(agent: &Agent, fs: &LoopFs) {
    let n = freezer(agent)
        .freeze(std::slice::from_ref(&fs.mnt), true, std::time::Instant::now())
        .unwrap_or_else(|e| panic!("{}", e.message()));
    assert_eq!(n, 1);
    assert!(fs.is_frozen() && agent.gate.is_closed() && freezer(agent).in_force());
}

fn assert_thawed(agent: &Agent, fs: &LoopFs, state: &Path) {
    assert!(!fs.is_frozen(), "still frozen");
    assert!(!freezer(agent).in_force() && !agent.gate.is_closed());
    assert!(!state.join(marker::NAME).exists(), "marker left");
}

#[test]
fn a_panic_anywhere_thaws() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = agent(state.path(), "0");
    agent.start().unwrap();
    freeze(&agent, &fs);
    assert!(std::thread::spawn(|| panic!("boom")).join().is_err());
    assert_thawed(&agent, &fs, state.path());
}

#[test]
fn the_emergency_thaw_thaws_and_refuses_later_freezes() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = agent(state.path(), "600");
    freeze(&agent, &fs);
    assert!(state.path().join(marker::NAME).exists());
    freezer(&agent).emergency_thaw("test", true);
    assert_thawed(&agent, &fs, state.path());
    let e = freezer(&agent)
        .freeze(std::slice::from_ref(&fs.mnt), true, std::time::Instant::now())
        .unwrap_err();
    assert_eq!(e.code(), nix::libc::ESHUTDOWN);
    assert!(!fs.is_frozen());
}

#[test]
fn the_timer_never_thaws_a_later_freeze() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    // A timeout too large for an Instant must not panic: it never fires.
    let agent = agent(state.path(), &u64::MAX.to_string());
    freeze(&agent, &fs);
    let first = freezer(&agent).generation();
    assert_eq!(freezer(&agent).thaw("test", None).unwrap(), 1);
    freeze(&agent, &fs);
    assert_eq!(freezer(&agent).thaw("timer", Some(first)).unwrap(), 0);
    assert!(fs.is_frozen(), "the stale timer thawed a later freeze");
    let current = freezer(&agent).generation();
    assert_eq!(freezer(&agent).thaw("timer", Some(current)).unwrap(), 1);
    assert_thawed(&agent, &fs, state.path());
    // Thawing again: nothing frozen, not an error.
    assert_eq!(freezer(&agent).thaw("test", None).unwrap(), 0);
}

#[test]
fn a_thaw_never_waits_for_a_stuck_operation() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = agent(state.path(), "600");
    freeze(&agent, &fs);
    {
        let _stuck = freezer(&agent).hold_op();
        // fs-unfreeze (and the timer, and exit) thaw through the recorded descriptors.
        assert_eq!(freezer(&agent).thaw("test", None).unwrap(), 1);
        assert!(!fs.is_frozen(), "not thawed under a stuck operation");
    }
    // Once the operation gives way, a thaw settles the state.
    freezer(&agent).thaw("test", None).unwrap();
    assert_thawed(&agent, &fs, state.path());
}

fn value(out: Outcome) -> serde_json::Value {
    let v = out.unwrap_or_else(|e| panic!("{}", e.message()));
    serde_json::from_str(&v.to_json()).unwrap()
}

#[test]
fn both_dialects_share_one_freezer() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = agent(state.path(), "0");
    let phoenix_args = FsFreezeArgs {
        mountpoints: Some(vec![fs.path().to_string()]),
    };
    assert_eq!(value(FsFreeze::run(&agent, phoenix_args)), true);
    assert_eq!(value(GuestFsfreezeStatus::run(&agent, Empty {})), "frozen");
    assert_eq!(value(GuestFsfreezeThaw::run(&agent, Empty {})), 1);
    assert_eq!(value(GetFreezeStatus::run(&agent, NoArgs {})), false);
    assert!(!fs.is_frozen());
    let qga_args = GuestFsfreezeFreezeListArgs {
        mountpoints: Some(vec![fs.path().to_string()]),
    };
    assert_eq!(value(GuestFsfreezeFreezeList::run(&agent, qga_args)), 1);
    assert_eq!(value(GetFreezeStatus::run(&agent, NoArgs {})), true);
    assert_eq!(value(FsUnfreeze::run(&agent, NoArgs {})), true);
    assert_eq!(value(GuestFsfreezeStatus::run(&agent, Empty {})), "thawed");
    assert_thawed(&agent, &fs, state.path());
}

#[test]
fn a_thaw_cancels_a_freeze_asked_for_before_it_that_had_not_started() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = agent(state.path(), "600");
    // The freeze is read, then waits for a worker; meanwhile the host gives up and
    // thaws (nothing frozen yet). The freeze must not freeze after that thaw.
    let asked = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    agent.family::<Freeze>().thaw().unwrap();
    let e = freezer(&agent)
        .freeze(std::slice::from_ref(&fs.mnt), true, asked)
        .unwrap_err();
    assert_eq!(e.code(), nix::libc::ECANCELED, "{}", e.message());
    assert!(!fs.is_frozen() && !agent.gate.is_closed());
    // A freeze asked for after the thaw goes ahead.
    freeze(&agent, &fs);
    freezer(&agent).thaw("test", None).unwrap();
    assert_thawed(&agent, &fs, state.path());
}
