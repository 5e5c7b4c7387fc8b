//! Loop-mounted filesystems and blocked writers for tests/freeze.rs: every guard thaws
//! before it unmounts or kills anything (a process blocked on a frozen filesystem
//! cannot die until it thaws).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

pub fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn must(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub use phoenix_e2e::loopfs::{assert_own_mount, LoopFs};

/// A tmpfs (which cannot be frozen) mounted in a temporary directory.
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        must(
            "mount",
            &["-t", "tmpfs", "-o", "size=1m", "none", s(dir.path())],
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &str {
        s(self.dir.path())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if !run("umount", &[self.path()]) {
            run("umount", &["-l", self.path()]);
        }
    }
}

/// A process writing a file (and syncing it) on a filesystem.
pub struct Writer {
    child: Child,
    file: PathBuf,
}

impl Writer {
    pub fn start(fs: &LoopFs, name: &str) -> Self {
        let file = fs.mnt.join(name);
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo {name} > '{}' && sync '{}'",
                s(&file),
                s(&file)
            ))
            .spawn()
            .unwrap();
        Writer { child, file }
    }

    /// Waits until the writer sleeps uninterruptibly (state D): blocked on the freeze.
    pub fn assert_blocked(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the write completed on a frozen filesystem"
            );
            if proc_state(self.child.id()) == Some('D') {
                return;
            }
            assert!(Instant::now() < deadline, "writer never blocked");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the writer to finish successfully and checks what it wrote.
    pub fn assert_completes(mut self) {
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the write never completed (still frozen?)"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(self.child.wait().unwrap().success());
        let name = self.file.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(
            std::fs::read_to_string(&self.file).unwrap(),
            format!("{name}\n")
        );
    }
}

pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// The agent's own process, listening on a socket inside the filesystem it freezes.
/// Dropped, it thaws that filesystem first: a process blocked on it cannot die.
pub struct Spawned(pub Child, pub PathBuf);

impl Drop for Spawned {
    fn drop(&mut self) {
        run("fsfreeze", &["-u", s(&self.1)]);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Thaws mount points in the given order when dropped (declared last, so dropped
/// first: before the agent is killed and anything is unmounted).
pub struct ThawFirst(pub Vec<PathBuf>);

impl Drop for ThawFirst {
    fn drop(&mut self) {
        for m in &self.0 {
            run("fsfreeze", &["-u", s(m)]);
        }
    }
}
