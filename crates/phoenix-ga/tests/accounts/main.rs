//! The accounts commands against the real binary. Every agent runs in a mount
//! namespace of its own with a private /etc bind-mounted over the real one
//! ([`PrivateEtc`]), on throwaway users whose homes are in a temporary directory and who
//! exist only there: nothing here touches this machine's accounts. The tests look at
//! the files themselves afterwards (lines, modes, owners, inodes), in both dialects,
//! and compare with Debian's qemu-ga, run in such a namespace too (its `chpasswd` then
//! edits the private copy). Root only.

mod keys;
mod lock;
mod password;
mod qemu_ga;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use phoenix_testkit::{err, qga_err, request_line, Launch, PrivateEtc, RawConn, TestAgent};
use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");

/// The two dialects every command is offered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Phoenix,
    Qga,
}

const BOTH: [Dialect; 2] = [Dialect::Phoenix, Dialect::Qga];

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Phoenix => "phoenix",
            Dialect::Qga => "qga",
        }
    }
}

/// Our agent on a private /etc, in one dialect, logging every request to a file.
struct Ours {
    etc: PrivateEtc,
    agent: TestAgent,
    dialect: Dialect,
    log: PathBuf,
}

impl Ours {
    fn start(etc: PrivateEtc, dialect: Dialect) -> Self {
        let log = etc.outside("agent.log");
        let agent = Launch::new(AGENT).wrapper(&etc.wrapper()).start(&[
            "--dialect",
            dialect.name(),
            "--debug",
            "-l",
            log.to_str().unwrap(),
        ]);
        Ours {
            etc,
            agent,
            dialect,
            log,
        }
    }

    fn conn(&self) -> RawConn {
        self.agent.raw()
    }

    /// Calls `name`: its return value, or the error's text (qga: `desc`; Phoenix: the
    /// decoded message) with its class or code.
    fn call(&self, c: &mut RawConn, name: &str, args: Value) -> Result<Value, Failure> {
        let reply = c.request(json!({"execute": name, "arguments": args}));
        decode(self.dialect, &reply)
    }

    fn ok(&self, c: &mut RawConn, name: &str, args: Value) -> Value {
        self.call(c, name, args.clone())
            .unwrap_or_else(|e| panic!("{name} {args} ({:?}): {e:?}", self.dialect))
    }

    fn fails(&self, c: &mut RawConn, name: &str, args: Value) -> Failure {
        match self.call(c, name, args.clone()) {
            Err(f) => f,
            Ok(v) => panic!(
                "{name} {args} ({:?}): expected an error, got {v}",
                self.dialect
            ),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// An error reply: its text, and its class (qga) or errno (Phoenix).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    text: String,
    class: Option<String>,
    code: Option<i64>,
}

fn decode(dialect: Dialect, reply: &Value) -> Result<Value, Failure> {
    if let Some(v) = reply.get("return") {
        return Ok(v.clone());
    }
    Err(match dialect {
        Dialect::Phoenix => {
            let (text, code) = err(reply);
            Failure {
                text,
                class: None,
                code: Some(code),
            }
        }
        Dialect::Qga => {
            let (class, text) = qga_err(reply);
            Failure {
                text,
                class: Some(class),
                code: None,
            }
        }
    })
}

/// Sends a request without waiting for its reply.
fn send(c: &mut RawConn, name: &str, args: Value) {
    c.send(&request_line(&json!({"execute": name, "arguments": args})));
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Today in /etc/shadow's days.
fn today() -> String {
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400)
        .to_string()
}

/// The line of `user` in the text of an account file.
fn line_of(text: &str, user: &str) -> Option<String> {
    text.lines()
        .find(|l| l.split(':').next() == Some(user))
        .map(String::from)
}

/// The text without `user`'s line.
fn without(text: &str, user: &str) -> String {
    text.lines()
        .filter(|l| l.split(':').next() != Some(user))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// OpenSSL's SHA-512 crypt of `password` with the salt of `hash` (`$6$SALT$...`): an
/// implementation other than the agent's.
fn openssl_crypt(password: &str, hash: &str) -> String {
    let salt = hash.split('$').nth(2).expect("a $6$ hash");
    let mut child = std::process::Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, "-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), password.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Mode bits, owner, group and inode.
fn stat(path: &Path) -> (u32, u32, u32, u64) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.mode() & 0o7777, m.uid(), m.gid(), m.ino())
}

/// Waits until `f` holds, for at most a minute (a slow, shared machine).
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
