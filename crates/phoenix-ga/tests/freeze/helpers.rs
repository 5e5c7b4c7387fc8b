//! The freeze tests' agent and requests, and the guards around what they freeze: every
//! guard thaws before it unmounts or kills anything (a process blocked on a frozen
//! filesystem cannot die until it thaws).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub(crate) use phoenix_e2e::loopfs::{assert_own_mount, LoopFs};
use phoenix_testkit::{
    call, path_str as s, proc_state, quiet, ret, wait_exit, Launch, RawConn, TestAgent,
};
use serde_json::{json, Value};

use crate::AGENT;

pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A state directory of the test's own (for the marker), and an agent using it.
pub(crate) fn agent_with(state: &Path, extra: &[&str]) -> TestAgent {
    let mut args = vec!["--state-dir", s(state)];
    args.extend_from_slice(extra);
    Launch::new(AGENT).start(&args)
}

/// fs-freeze of `mountpoints`; the reply.
pub(crate) fn freeze(c: &mut RawConn, mountpoints: &[&str]) -> Value {
    call(c, "fs-freeze", json!({ "mountpoints": mountpoints }))
}

/// Whether get-freeze-status says frozen.
pub(crate) fn status(c: &mut RawConn) -> bool {
    ret(&call(c, "get-freeze-status", json!({})))
        .as_bool()
        .unwrap()
}

/// A process writing a file (and syncing it) on a filesystem.
pub(crate) struct Writer {
    child: Child,
    file: PathBuf,
}

impl Writer {
    pub(crate) fn start(fs: &LoopFs, name: &str) -> Self {
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
    pub(crate) fn assert_blocked(&mut self) {
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
    pub(crate) fn assert_completes(mut self) {
        assert!(
            wait_exit(&mut self.child, WAIT).is_some(),
            "the write never completed (still frozen?)"
        );
        assert!(self.child.wait().unwrap().success());
        let name = self.file.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(
            std::fs::read_to_string(&self.file).unwrap(),
            format!("{name}\n")
        );
    }
}

/// The agent's own process, listening on a socket inside the filesystem it freezes.
/// Dropped, it thaws that filesystem first: a process blocked on it cannot die.
pub(crate) struct Spawned(pub Child, pub PathBuf);

impl Drop for Spawned {
    fn drop(&mut self) {
        quiet("fsfreeze", &["-u", s(&self.1)]);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Thaws mount points in the given order when dropped (declared last, so dropped
/// first: before the agent is killed and anything is unmounted).
pub(crate) struct ThawFirst(pub Vec<PathBuf>);

impl Drop for ThawFirst {
    fn drop(&mut self) {
        for m in &self.0 {
            quiet("fsfreeze", &["-u", s(m)]);
        }
    }
}
