//! Freeze figures: time to freeze and to thaw 1 and 8 loop-mounted ext4 filesystems
//! named explicitly (our `fs-freeze` with `mountpoints`, qemu-ga's
//! `guest-fsfreeze-freeze-list` with the same list), each figure the median of
//! several rounds, the two agents alternating.
//!
//! Root only (loop devices). NEVER freezes this machine's own filesystems: every
//! request names a non-empty list of the section's own loop mounts (qemu-ga freezes
//! everything on an empty or absent list, so that is asserted before each call), and
//! each mount is a guard that thaws, unmounts and detaches on drop.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use phoenix_client::Client;
use serde_json::{json, value::to_raw_value};

use crate::harness::{quantile, Better, Env, Report};

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
            peer_api.thaw().expect("qemu-ga thaw");
            println!("qemu-ga froze {n} filesystem(s); loop mount really frozen: {frozen}");
            frozen
        }
        Err(e) => {
            println!("qemu-ga guest-fsfreeze-freeze-list failed on a loop mount: {e}");
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
            panic!("{} / {}: {e}", self.freeze, self.thaw);
        }
        (t1 - t0, t2 - t1)
    }
}

/// A 32 MiB ext4 image on its own loop device, mounted in a temporary directory;
/// thawed, unmounted and detached on drop.
struct LoopFs {
    _dir: tempfile::TempDir,
    dev: String,
    mnt: PathBuf,
}

fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl LoopFs {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join("img");
        let img_s = img.to_str().expect("utf-8 path");
        sh("truncate", &["-s", "32M", img_s]).expect("truncate");
        sh("mkfs.ext4", &["-q", "-F", img_s]).expect("mkfs.ext4 (e2fsprogs)");
        let dev = sh("losetup", &["-f", "--show", img_s]).expect("losetup");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir");
        let fs = LoopFs {
            _dir: dir,
            dev,
            mnt,
        };
        sh("mount", &[&fs.dev, fs.path()]).expect("mount");
        fs
    }

    fn path(&self) -> &str {
        self.mnt.to_str().expect("utf-8 path")
    }

    /// Whether the filesystem is frozen: a second FIFREEZE gets EBUSY. (If it was
    /// not frozen, that FIFREEZE froze it, so thaw it again at once.)
    fn is_frozen(&self) -> bool {
        assert_own_mount(std::path::Path::new(self.path()));
        let froze_now = sh("fsfreeze", &["-f", self.path()]).is_some();
        if froze_now {
            sh("fsfreeze", &["-u", self.path()]);
        }
        !froze_now
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        sh("fsfreeze", &["-u", self.path()]);
        if sh("umount", &[self.path()]).is_none() {
            sh("umount", &["-l", self.path()]);
        }
        sh("losetup", &["-d", &self.dev]);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Refuses to go on unless `mnt` is a mount point of its own: fsfreeze on a directory
/// whose filesystem is gone would freeze the filesystem holding it (the machine's disk).
fn assert_own_mount(mnt: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let here = std::fs::metadata(mnt).expect("stat mount point").dev();
    let parent = std::fs::metadata(mnt.parent().expect("parent"))
        .expect("stat parent")
        .dev();
    assert_ne!(
        here,
        parent,
        "{} is not a mount point: refusing to freeze",
        mnt.display()
    );
}
