//! Test support shared by the phoenix-client and phoenix-ctl tests: the real agent
//! binary on a unix-listen socket in a temporary directory.
//!
//! The agent is another package's binary, which Cargo does not hand to these tests
//! (`CARGO_BIN_EXE_*` covers only the package's own binaries, and a binary cannot be a
//! dependency). `cargo test --workspace` builds every binary before it runs any test,
//! but `cargo test -p phoenix-ctl` does not, and a binary left over from an older
//! checkout would be tested silently. So the first agent a test binary starts runs
//! `cargo build -p phoenix-ga` (Cargo releases its build lock before running tests, and
//! the build is a no-op when the binary is fresh). `PHOENIX_GA=/path/to/phoenix-ga`
//! skips the build and tests that binary instead.
#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The agent binary, built on first use.
pub fn agent_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("PHOENIX_GA") {
            return PathBuf::from(path);
        }
        // target/<profile>/deps/<test binary> -> target/<profile>/phoenix-ga
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps");
        let bin = profile_dir.join("phoenix-ga");
        match std::env::var_os("CARGO") {
            Some(cargo) => {
                let mut cmd = Command::new(cargo);
                cmd.args(["build", "--quiet", "-p", "phoenix-ga"]);
                if profile_dir.file_name().is_some_and(|n| n == "release") {
                    cmd.arg("--release");
                }
                let out = cmd.output().expect("run cargo build -p phoenix-ga");
                assert!(
                    out.status.success(),
                    "cargo build -p phoenix-ga failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => eprintln!("CARGO is not set: testing {} as it is", bin.display()),
        }
        assert!(
            bin.is_file(),
            "agent binary {} is missing: run `cargo build -p phoenix-ga` (or set PHOENIX_GA)",
            bin.display()
        );
        bin
    })
}

/// A running agent on a unix-listen socket in its own temporary directory; killed on drop.
pub struct TestAgent {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
}

impl TestAgent {
    /// Starts `phoenix-ga -m unix-listen -p DIR/ga.sock ARGS...` and waits until it accepts.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(&[], args)
    }

    /// Starts the agent in a network namespace of its own (`unshare -n`), which has
    /// only a loopback interface, down: network commands cannot touch the host's.
    pub fn in_netns(args: &[&str]) -> Self {
        Self::start_with(&["unshare", "-n"], args)
    }

    /// Starts `PREFIX... phoenix-ga ...` (the prefix execs the agent, keeping its pid).
    fn start_with(prefix: &[&str], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("ga.sock");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(agent_binary());
                cmd
            }
            None => Command::new(agent_binary()),
        };
        let child = cmd
            .args(["-m", "unix-listen", "-p"])
            .arg(&sock)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn phoenix-ga");
        let agent = TestAgent { child, dir, sock };
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&agent.sock).is_err() {
            assert!(Instant::now() < deadline, "agent did not start listening");
            std::thread::sleep(Duration::from_millis(5));
        }
        agent
    }

    /// A client-library connection with the default options.
    pub fn client(&self) -> phoenix_client::Client {
        phoenix_client::Client::connect(&self.sock).expect("client connect")
    }

    /// The agent's pid (for `nsenter -t PID -n`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A path inside the agent's temporary directory (the agent runs on this machine,
    /// so "guest" paths are local paths the test can check directly).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
