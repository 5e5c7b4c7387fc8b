//! Freeze figures: time to freeze and to thaw 1 and 8 loop-mounted ext4 filesystems
//! named explicitly (our `fs-freeze` with `mountpoints`, qemu-ga's
//! `guest-fsfreeze-freeze-list` with the same list), each figure the median of
//! several rounds, the two agents alternating.
//!
//! Root only (loop devices). NEVER freezes this machine's own filesystems: every
//! request names a non-empty list of the section's own loop mounts (qemu-ga freezes
//! everything on an empty or absent list, so that is asserted before each call), and
//! each mount is a guard that thaws, unmounts and detaches on drop.

use std::time::{Duration, Instant};

use phoenix_client::{Client, Report as ErrorReport};
use phoenix_e2e::loopfs::LoopFs;
use serde_json::{json, value::to_raw_value};

use crate::harness::{quantile, Better, Env, OrPanic, Report};

/// Rounds per figure.
const ROUNDS: usize = 15;

/// Runs the freeze section.
pub fn run(env: &Env, report: &mut Report) {
    if !nix::unistd::geteuid().is_root() {
        println!("freeze: skipped (needs root for loop devices)");
        return;
    }
    let mounts: Vec<LoopFs> = (0..8).map(|_| LoopFs::new()).collect();
    let state = tempfile::tempdir().expect("tempdir");
    let ours = env.start_ours(&["--state-dir", state.path().to_str().expect("utf-8")]);
    let peer = env.start_qemu_ga_freeze_list();
    let (oc, pc) = (ours.client(), peer.client());
    let ours_api = Api {
        client: &oc,
        freeze: "fs-freeze",
        thaw: "fs-unfreeze",
    };
    let peer_api = Api {
        client: &pc,
        freeze: "guest-fsfreeze-freeze-list",
        thaw: "guest-fsfreeze-thaw",
    };
    // Does qemu-ga freeze loop mounts at all? Check once, on the filesystem itself.
    let probe = &mounts[..1];
    let peer_ok = match peer_api.freeze(probe) {
        Ok(n) => {
            let frozen = probe[0].is_frozen();
            peer_api.thaw().or_panic("qemu-ga thaw");
            println!("qemu-ga froze {n} filesystem(s); loop mount really frozen: {frozen}");
            frozen
        }
        Err(e) => {
            println!(
                "qemu-ga guest-fsfreeze-freeze-list failed on a loop mount: {}",
                ErrorReport(&e)
            );
            false
        }
    };
    for n in [1usize, 8] {
        let set = &mounts[..n];
        let (mut of, mut ot, mut pf, mut pt) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let (f, t) = ours_api.round(set);
            of.push(f);
            ot.push(t);
            if peer_ok {
                let (f, t) = peer_api.round(set);
                pf.push(f);
                pt.push(t);
            }
        }
        for v in [&mut of, &mut ot, &mut pf, &mut pt] {
            v.sort_unstable();
        }
        let peer_fig = |v: &[Duration]| peer_ok.then(|| ms(quantile(v, 0.5)));
        report.add(
            format!("freeze {n} loop ext4, median of {ROUNDS} (ms)"),
            ms(quantile(&of, 0.5)),
            peer_fig(&pf),
            Better::Lower,
        );
        report.add(
            format!("thaw {n} loop ext4, median of {ROUNDS} (ms)"),
            ms(quantile(&ot, 0.5)),
            peer_fig(&pt),
            Better::Lower,
        );
    }
    drop((oc, pc, ours, peer));
    drop(mounts);
}

/// One agent's freeze and thaw commands.
struct Api<'a> {
    client: &'a Client,
    freeze: &'static str,
    thaw: &'static str,
}

impl Api<'_> {
    /// Freezes exactly `set`; the reply (true, or qemu-ga's count) as text.
    fn freeze(&self, set: &[LoopFs]) -> Result<String, phoenix_client::ClientError> {
        let list: Vec<&str> = set.iter().map(|m| m.path()).collect();
        // Never an empty list: qemu-ga would freeze every filesystem of the machine.
        assert!(!list.is_empty() && list.iter().all(|p| p.starts_with('/')));
        let args = to_raw_value(&json!({ "mountpoints": list })).expect("json");
        let timeout = Some(Duration::from_secs(60));
        self.client
            .call_raw(self.freeze, Some(&args), timeout)
            .map(|r| r.get().to_string())
    }

    fn thaw(&self) -> Result<String, phoenix_client::ClientError> {
        self.client
            .call_raw(self.thaw, None, Some(Duration::from_secs(60)))
            .map(|r| r.get().to_string())
    }

    /// One timed freeze and thaw of `set`.
    fn round(&self, set: &[LoopFs]) -> (Duration, Duration) {
        let t0 = Instant::now();
        let frozen = self.freeze(set);
        let t1 = Instant::now();
        let thawed = self.thaw();
        let t2 = Instant::now();
        if let Err(e) = frozen.and(thawed) {
            panic!("{} / {}: {}", self.freeze, self.thaw, ErrorReport(&e));
        }
        (t1 - t0, t2 - t1)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
