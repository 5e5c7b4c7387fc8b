//! An agent in either dialect with one connection, the exec calls on it, and what
//! /proc says of the agent and its children.

use std::time::{Duration, Instant};

pub(crate) use phoenix_testkit::{b64, unb64, Launch, RawConn, TestAgent};
use serde_json::{json, Value};

use crate::AGENT;

/// Seconds a test lets a status or read wait for the end.
pub(crate) const WAIT: f64 = 20.0;

/// The two dialects, both of which offer the exec commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Phoenix,
    Qga,
}

pub(crate) const BOTH: [Dialect; 2] = [Dialect::Phoenix, Dialect::Qga];

/// An error reply, in either dialect's words.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Phoenix's message, qemu-ga's desc.
    pub message: String,
    /// Phoenix's errno.
    pub code: Option<i64>,
    /// qemu-ga's class.
    pub class: Option<String>,
}

/// An agent speaking `dialect`, and one connection to it.
pub(crate) struct Ga {
    pub agent: TestAgent,
    pub c: RawConn,
    pub dialect: Dialect,
}

impl Ga {
    pub(crate) fn start(dialect: Dialect) -> Self {
        Self::start_with(dialect, Launch::new(AGENT), &[])
    }

    pub(crate) fn start_with(dialect: Dialect, launch: Launch, extra: &[&str]) -> Self {
        let mut args = match dialect {
            Dialect::Phoenix => vec![],
            Dialect::Qga => vec!["--dialect", "qga"],
        };
        args.extend_from_slice(extra);
        let agent = launch.start(&args);
        let c = agent.raw();
        c.set_timeout(Duration::from_secs(90));
        Ga { agent, c, dialect }
    }

    /// Another connection to the same agent.
    pub(crate) fn conn(&self) -> RawConn {
        let c = self.agent.raw();
        c.set_timeout(Duration::from_secs(90));
        c
    }

    pub(crate) fn call(&mut self, name: &str, args: Value) -> Value {
        self.c.request(json!({"execute": name, "arguments": args}))
    }

    pub(crate) fn ok(&mut self, name: &str, args: Value) -> Value {
        let reply = self.call(name, args.clone());
        match reply.get("return") {
            Some(v) => v.clone(),
            None => panic!("{name} {args}: {:?}", failure(self.dialect, &reply)),
        }
    }

    pub(crate) fn fails(&mut self, name: &str, args: Value) -> Failure {
        let reply = self.call(name, args);
        failure(self.dialect, &reply)
    }

    /// `guest-exec`; the pid.
    pub(crate) fn exec(&mut self, args: Value) -> i64 {
        self.ok("guest-exec", args)["pid"].as_i64().expect("pid")
    }

    /// `guest-exec-status` with `wait`.
    pub(crate) fn status(&mut self, pid: i64, wait: f64) -> Value {
        self.ok("guest-exec-status", json!({"pid": pid, "wait": wait}))
    }

    /// Starts `args` and waits for the status that reports its exit.
    pub(crate) fn run(&mut self, args: Value) -> Value {
        let pid = self.exec(args);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.status(pid, WAIT);
            if s["exited"] == true {
                return s;
            }
            assert!(Instant::now() < deadline, "pid {pid} never exited: {s}");
        }
    }

    /// Reads a streamed process to its end: its output, its error, the last reply.
    pub(crate) fn read_all(&mut self, pid: i64) -> (Vec<u8>, Vec<u8>, Value) {
        self.read_all_from(pid, 0)
    }

    /// [`Ga::read_all`] from an offset of standard output.
    pub(crate) fn read_all_from(&mut self, pid: i64, from: usize) -> (Vec<u8>, Vec<u8>, Value) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(
                Instant::now() < deadline,
                "pid {pid} never ended its streams"
            );
            let r = self.ok(
                "guest-exec-read",
                json!({"pid": pid, "out-offset": from + out.len(), "err-offset": err.len(),
                       "wait": WAIT}),
            );
            out.extend(unb64(&r["out-data"]));
            err.extend(unb64(&r["err-data"]));
            if r["exited"] == true && r["out-eof"] == true && r["err-eof"] == true {
                return (out, err, r);
            }
        }
    }
}

/// An error reply in `dialect`'s words.
pub(crate) fn failure(dialect: Dialect, reply: &Value) -> Failure {
    match dialect {
        Dialect::Phoenix => {
            let (message, code) = phoenix_testkit::err(reply);
            Failure {
                message,
                code: Some(code),
                class: None,
            }
        }
        Dialect::Qga => {
            let (class, message) = phoenix_testkit::qga_err(reply);
            Failure {
                message,
                code: None,
                class: Some(class),
            }
        }
    }
}

/// The decoded `out-data` (or `err-data`) of a status; empty when absent.
pub(crate) fn data(status: &Value, field: &str) -> Vec<u8> {
    status.get(field).map(unb64).unwrap_or_default()
}

/// The fields of /proc/PID/stat after the command name (field 3 on).
fn stat(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.get(text.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(String::from).collect())
}

/// The pids whose /proc/PID/stat field `field` (counted from the state, 0) is `value`,
/// with their state letter.
fn processes_where(field: usize, value: u32) -> Vec<(u32, char)> {
    let value = value.to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(f) = stat(pid) {
            if f[field] == value {
                out.push((pid, f[0].chars().next().unwrap_or('?')));
            }
        }
    }
    out
}

/// The pids whose parent is `parent`, with their state letter.
pub(crate) fn children(parent: u32) -> Vec<(u32, char)> {
    processes_where(1, parent)
}

/// The members of process group `pgid`, with their state letter.
pub(crate) fn group(pgid: u32) -> Vec<(u32, char)> {
    processes_where(2, pgid)
}

/// The zombie children of `parent`.
pub(crate) fn zombies(parent: u32) -> Vec<u32> {
    children(parent)
        .into_iter()
        .filter(|&(_, s)| s == 'Z')
        .map(|(p, _)| p)
        .collect()
}

/// Open descriptors of `pid`.
pub(crate) fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Resident set of `pid` in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Whether process `pid` exists (a zombie counts).
pub(crate) fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits until `f` holds, at most 30 s.
pub(crate) fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `b64` of a str, for `input-data`.
pub(crate) fn b64s(s: &str) -> String {
    b64(s.as_bytes())
}
