//! Starting the real agent binary on a unix-listen socket.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::conn::RawConn;

/// How long an agent may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The agent binary for the tests of packages other than phoenix-ga, built on first use.
///
/// The agent is another package's binary, which Cargo does not hand to these tests
/// (`CARGO_BIN_EXE_*` covers only the package's own binaries, and a binary cannot be a
/// dependency). `cargo test --workspace` builds every binary before it runs any test,
/// but `cargo test -p phoenix-ctl` does not, and a binary left over from an older
/// checkout would be tested silently. So the first call in a test binary runs
/// `cargo build -p phoenix-ga` (Cargo releases its build lock before running tests, and
/// the build is a no-op when the binary is fresh) and returns
/// `target/<profile>/phoenix-ga`. `PHOENIX_GA=/path/to/phoenix-ga` skips the build and
/// tests that binary instead. phoenix-ga's own tests name their binary themselves
/// (`env!("CARGO_BIN_EXE_phoenix-ga")`) and do not need this.
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

/// Waits until something accepts connections on `sock`; panics after 20 s.
pub fn wait_listening(sock: &Path) {
    let deadline = Instant::now() + START_TIMEOUT;
    while UnixStream::connect(sock).is_err() {
        assert!(Instant::now() < deadline, "agent did not start listening");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How to start an agent: which binary, behind which wrapper command, with its socket
/// in which directory. [`Launch::start`] starts it. phoenix-ga's own tests name their
/// binary, `Launch::new(env!("CARGO_BIN_EXE_phoenix-ga"))`; other packages' tests use
/// [`agent_binary`] (or [`TestAgent::start`]).
#[derive(Debug)]
pub struct Launch {
    binary: PathBuf,
    wrapper: Vec<String>,
    dir: Option<tempfile::TempDir>,
}

impl Launch {
    /// The agent `binary`, run directly, its socket in a new temporary directory.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Launch {
            binary: binary.into(),
            wrapper: Vec::new(),
            dir: None,
        }
    }

    /// Runs the agent behind `wrapper` (`unshare -n`, `prlimit --nofile=32:32 --`,
    /// `ip netns exec NS`, `sh -c '...; exec "$@"' sh`...), which must exec it so that
    /// the agent keeps the wrapper's pid.
    pub fn wrapper(mut self, wrapper: &[&str]) -> Self {
        self.wrapper = wrapper.iter().map(|w| w.to_string()).collect();
        self
    }

    /// Puts the socket in `dir` instead of a new temporary directory (for an agent
    /// running as another user, who must be able to create it there).
    pub fn dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// The command `WRAPPER... BINARY -m unix-listen -p SOCK ARGS...`, standard input
    /// closed, for a test that runs and reaps the process itself.
    pub fn command(&self, sock: &Path, args: &[&str]) -> Command {
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(&self.binary);
                cmd
            }
            None => Command::new(&self.binary),
        };
        cmd.args(["-m", "unix-listen", "-p"])
            .arg(sock)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Starts the agent on `DIR/ga.sock` with `args` and waits until it accepts.
    pub fn start(mut self, args: &[&str]) -> TestAgent {
        let dir = match self.dir.take() {
            Some(dir) => dir,
            None => tempfile::tempdir().expect("tempdir"),
        };
        let sock = dir.path().join("ga.sock");
        let child = self.command(&sock, args).spawn().expect("spawn phoenix-ga");
        // Owned before the wait, so that a panic there kills it.
        let agent = TestAgent { child, dir, sock };
        wait_listening(&agent.sock);
        agent
    }
}

/// A running agent on a unix-listen socket in its own temporary directory; killed on
/// drop.
#[derive(Debug)]
pub struct TestAgent {
    /// The agent's process (the wrapper's, which exec'd the agent).
    pub child: Child,
    /// The temporary directory holding the socket; tests put their files there too.
    pub dir: tempfile::TempDir,
    /// The socket the agent listens on.
    pub sock: PathBuf,
}

impl TestAgent {
    /// Starts [`agent_binary`] with `args` (for the tests of other packages).
    pub fn start(args: &[&str]) -> Self {
        Launch::new(agent_binary()).start(args)
    }

    /// Starts [`agent_binary`] in a network namespace of its own (`unshare -n`), which
    /// has only a loopback interface, down: network commands cannot touch the host's.
    pub fn in_netns(args: &[&str]) -> Self {
        Launch::new(agent_binary())
            .wrapper(&["unshare", "-n"])
            .start(args)
    }

    /// A raw connection for byte-level checks.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(&self.sock)
    }

    /// A client-library connection with the default options.
    pub fn client(&self) -> phoenix_client::Client {
        phoenix_client::Client::connect(&self.sock).expect("client connect")
    }

    /// The agent's pid (for `nsenter -t PID -n`, signals and /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A path inside the agent's temporary directory (the agent runs on this machine,
    /// so "guest" paths are local paths the test can check directly).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// utime + stime of the agent, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        crate::process::cpu_ticks(self.pid())
    }

    /// Waits for the agent to exit, at most `timeout`; its exit code (`None` when it
    /// is still running or was killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        crate::process::wait_exit(&mut self.child, timeout).and_then(|s| s.code())
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
