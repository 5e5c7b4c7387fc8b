//! Commands a test runs, and what /proc says of a process.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A path as `&str`, for JSON arguments and command lines (test paths are UTF-8).
pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `program ARGS` that must succeed; its standard output, trimmed.
pub fn must(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs `program ARGS` that must succeed and prints JSON (`ip -j ...`); its output
/// parsed, `[]` when it printed nothing.
pub fn must_json(program: &str, args: &[&str]) -> Value {
    let out = must(program, args);
    if out.is_empty() {
        return json!([]);
    }
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

/// Runs `program ARGS` quietly; whether it succeeded (for clean-ups that may find
/// nothing to do).
pub fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits for `child` to exit, at most `timeout`; `None` when it is still running.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The fields of /proc/PID/stat after the command name, from field 3 (state) on;
/// `None` when the process is gone.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces and parentheses itself.
    let after_comm = stat.get(stat.rfind(')')? + 2..)?;
    Some(after_comm.split_whitespace().map(String::from).collect())
}

/// utime + stime of process `pid`, in clock ticks (/proc/PID/stat fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> u64 {
    let fields = stat_fields(pid).expect("read stat");
    // fields[0] is field 3 (state); utime is field 14, stime 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The state letter of process `pid` (`R`, `S`, `D` for an uninterruptible sleep...);
/// `None` when it is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}
