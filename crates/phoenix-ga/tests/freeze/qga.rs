//! The qemu-ga dialect's freeze commands and the fsfreeze hook, against the real
//! binary and side by side with Debian's qemu-ga, on ext4 images each test loop-mounts.
//!
//! Every agent here, ours and qemu-ga, is confined: it runs in a mount namespace of its
//! own where `/proc/self/mounts` (ours) or `/proc/self/mountinfo` (qemu-ga's) lists only
//! the test's own mounts, bind-mounted over the real table, and the wrapper checks that
//! before it starts the agent. So even a freeze of "everything" (or a regression that
//! took a bad list for "everything") could only freeze the test's own loop mount, and
//! qemu-ga's thaw, which thaws every filesystem of its table, cannot thaw another
//! test's. qemu-ga is never sent `guest-fsfreeze-freeze` at all.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use phoenix_testkit::{
    call, path_str as s, qga_call, qga_err, qga_fails, qga_ok, ret, shape, QemuGa, RawConn,
    TestAgent, Tmpfs,
};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::AGENT;

/// The lines of a mount table (`/proc/self/mounts`, mount point in field `field`, or
/// `mountinfo`, field 4) whose mount point is one of `mnts`.
fn table_lines(file: &str, field: usize, mnts: &[&Path]) -> String {
    let table = fs::read_to_string(format!("/proc/self/{file}")).unwrap();
    let mut out = String::new();
    for m in mnts {
        let line = table
            .lines()
            .rev()
            .find(|l| l.split(' ').nth(field) == Some(s(m)))
            .unwrap_or_else(|| panic!("{} is not in /proc/self/{file}", m.display()));
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The wrapper that runs a program in a mount namespace of its own whose
/// `/proc/self/{file}` lists only `mnts`; the fake table is kept in `dir`.
fn confine(dir: &Path, file: &str, mnts: &[&Path]) -> Vec<String> {
    let field = if file == "mountinfo" { 4 } else { 1 };
    let fake = dir.join(format!("fake-{file}"));
    fs::write(&fake, table_lines(file, field, mnts)).unwrap();
    let script = format!(
        "mount --bind '{fake}' /proc/$$/{file} && [ \"$(cat /proc/$$/{file})\" = \"$(cat '{fake}')\" ] && exec \"$@\"",
        fake = s(&fake)
    );
    [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
    ]
    .map(String::from)
    .to_vec()
}

/// Our agent, confined to `mnts`, in `dialect`, its state (marker, log) in `state`.
fn ours(state: &Path, dialect: &str, mnts: &[&Path], extra: &[&str]) -> TestAgent {
    let wrapper = confine(state, "mounts", mnts);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut args = vec!["--dialect", dialect, "--state-dir", s(state)];
    args.extend_from_slice(extra);
    phoenix_testkit::Launch::new(AGENT)
        .wrapper(&wrapper)
        .start(&args)
}

/// Debian's qemu-ga, confined to `mnts`.
fn theirs(dir: &Path, mnts: &[&Path], extra: &[&str]) -> QemuGa {
    let wrapper = confine(dir, "mountinfo", mnts);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    QemuGa::start(&wrapper, extra)
}

fn freeze_list(c: &mut RawConn, mountpoints: &[&str]) -> Value {
    qga_call(
        c,
        "guest-fsfreeze-freeze-list",
        json!({ "mountpoints": mountpoints }),
    )
}

fn qga_status(c: &mut RawConn) -> String {
    qga_ok(c, "guest-fsfreeze-status", Value::Null)
        .as_str()
        .unwrap()
        .to_string()
}

fn thaw(c: &mut RawConn) -> i64 {
    qga_ok(c, "guest-fsfreeze-thaw", Value::Null)
        .as_i64()
        .unwrap()
}

/// Waits until `path` holds `want` (the thaw hook runs after the thaw's reply).
fn wait_for_text(path: &Path, want: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(want) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never said {want:?}: {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes an executable hook script.
fn hook(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn freeze_list_status_and_thaw() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let agent = ours(state.path(), "qga", &[&fs.mnt], &[]);
    let mut c = agent.raw();
    assert_eq!(qga_status(&mut c), "thawed");
    assert_eq!(thaw(&mut c), 0, "nothing frozen: 0");
    assert_eq!(
        qga_ok(
            &mut c,
            "guest-fsfreeze-freeze-list",
            json!({"mountpoints": [fs.path()]})
        ),
        1
    );
    assert!(fs.is_frozen());
    assert_eq!(qga_status(&mut c), "frozen");
    assert!(
        state.path().join("frozen").exists(),
        "no marker while frozen"
    );
    let mut w = Writer::start(&fs, "during");
    w.assert_blocked();
    // Refused while frozen, as qemu-ga refuses them: disk commands and a second freeze.
    for (cmd, args) in [
        ("guest-file-open", json!({"path": "/etc/hostname"})),
        ("guest-file-read", json!({"handle": 1})),
        (
            "guest-fsfreeze-freeze-list",
            json!({"mountpoints": [fs.path()]}),
        ),
        ("guest-fsfreeze-freeze", Value::Null),
    ] {
        let (class, desc) = qga_fails(&mut c, cmd, args);
        assert_eq!(class, "CommandNotFound", "{cmd}");
        assert!(
            desc.starts_with(&format!("Command {cmd} has been disabled")),
            "{desc}"
        );
    }
    // The protocol commands answer.
    assert_eq!(qga_ok(&mut c, "guest-ping", Value::Null), json!({}));
    qga_ok(&mut c, "guest-info", Value::Null);
    assert_eq!(thaw(&mut c), 1);
    w.assert_completes();
    assert_eq!(qga_status(&mut c), "thawed");
    assert_eq!(thaw(&mut c), 0);
    assert!(
        !state.path().join("frozen").exists(),
        "marker left after thaw"
    );
    // Thawed for real: FITHAW finds nothing frozen.
    assert!(!phoenix_testkit::quiet("fsfreeze", &["-u", fs.path()]));
}

#[test]
fn a_list_skips_what_is_not_a_mount_point() {
    let fs = LoopFs::new();
    let tmp = Tmpfs::new("1m");
    let state = tempfile::tempdir().unwrap();
    let agent = ours(state.path(), "qga", &[&fs.mnt, tmp.path()], &[]);
    let mut c = agent.raw();
    let sub = fs.mnt.join("sub");
    fs::create_dir(&sub).unwrap();
    let link = state.path().join("link");
    std::os::unix::fs::symlink(&fs.mnt, &link).unwrap();
    let nothing = |c: &mut RawConn, list: &[&str]| {
        assert_eq!(ret_of(&freeze_list(c, list)), 0, "{list:?}");
        assert_eq!(
            qga_status(c),
            "thawed",
            "{list:?}: nothing frozen, so thawed"
        );
        assert!(!fs.is_frozen(), "{list:?}");
        assert!(!state.path().join("frozen").exists());
    };
    nothing(&mut c, &["/nonexistent", "relative", s(&sub), "mnt"]);
    nothing(&mut c, &[]);
    // A tmpfs cannot be frozen (EOPNOTSUPP): skipped as qemu-ga skips it.
    nothing(&mut c, &[s(tmp.path())]);
    let slash = format!("{}/", fs.path());
    for list in [
        vec![fs.path(), "/nonexistent", s(&sub)],
        // Resolved before they are matched (qemu-ga compares the strings and skips them).
        vec![slash.as_str()],
        vec![s(&link)],
        // Named twice: frozen once.
        vec![fs.path(), fs.path(), s(tmp.path())],
    ] {
        assert_eq!(ret_of(&freeze_list(&mut c, &list)), 1, "{list:?}");
        assert!(fs.is_frozen(), "{list:?}");
        assert_eq!(thaw(&mut c), 1);
        assert!(!fs.is_frozen());
    }
    // Bad arguments freeze nothing (null is never read as "everything").
    let refused = [
        (
            json!({"mountpoints": null}),
            "Invalid parameter type for 'mountpoints', expected: array",
        ),
        (
            json!({"mountpoints": "/x"}),
            "Invalid parameter type for 'mountpoints', expected: array",
        ),
        (
            json!({"mountpoints": [1]}),
            "Invalid parameter type for 'mountpoints[0]', expected: string",
        ),
        (
            json!({"mountpoints": [fs.path()], "x": 1}),
            "Parameter 'x' is unexpected",
        ),
    ];
    for (args, want) in refused {
        let (class, desc) = qga_fails(&mut c, "guest-fsfreeze-freeze-list", args);
        assert_eq!((class.as_str(), desc.as_str()), ("GenericError", want));
        assert_eq!(qga_status(&mut c), "thawed");
    }
    assert!(!fs.is_frozen());
}

fn ret_of(reply: &Value) -> i64 {
    reply["return"]
        .as_i64()
        .unwrap_or_else(|| panic!("expected a count, got {reply}"))
}

#[test]
fn freeze_without_a_list_takes_every_local_filesystem_the_table_shows() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    // The table shows the loop mount only: qemu-ga's selection takes loop devices.
    let agent = ours(state.path(), "qga", &[&fs.mnt], &[]);
    let mut c = agent.raw();
    assert_eq!(qga_ok(&mut c, "guest-fsfreeze-freeze", Value::Null), 1);
    assert!(fs.is_frozen());
    assert_eq!(thaw(&mut c), 1);
    assert_eq!(qga_ok(&mut c, "guest-fsfreeze-freeze-list", Value::Null), 1);
    assert!(fs.is_frozen());
    assert_eq!(thaw(&mut c), 1);
    assert!(!fs.is_frozen());
}

/// The hook of the hook tests: logs its calls, proves the filesystem is writable when
/// it runs (a write to a frozen one would block), records its surroundings, says
/// something on both outputs, and exits with `$HOOK_EXIT_<arg>` when set by the file
/// `exit.<arg>` in the state directory.
fn recording_hook(state: &Path, mnt: &Path) -> PathBuf {
    let path = state.join("hook.sh");
    let st = s(state);
    let mnt = s(mnt);
    hook(
        &path,
        &format!(
            r#"echo "$1 start" >> '{st}/hook.log'
echo "$1" > "{mnt}/hook-$1"
{{
  echo "cwd $(pwd)"
  echo "args $#"
  grep -E '^(SigBlk|SigIgn)' /proc/self/status
  echo "session $(cut -d' ' -f6 /proc/$$/stat) pid $$"
  for fd in /proc/$$/fd/*; do echo "fd $(basename $fd) $(readlink $fd)"; done
}} > "{st}/env.$1"
echo "out of the $1 hook"
echo "err of the $1 hook" >&2
echo "$1 done" >> '{st}/hook.log'
[ -f "{st}/exit.$1" ] && exit $(cat "{st}/exit.$1")
exit 0
"#
        ),
    );
    path
}

#[test]
fn the_hook_runs_before_the_freeze_and_after_the_thaw_in_a_clean_process() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let st = state.path();
    let hook_path = recording_hook(st, &fs.mnt);
    let log = st.join("agent.log");
    let hook_arg = format!("-F{}", s(&hook_path));
    let agent = ours(st, "qga", &[&fs.mnt], &[&hook_arg, "--log-file", s(&log)]);
    let mut c = agent.raw();
    assert_eq!(ret_of(&freeze_list(&mut c, &[fs.path()])), 1);
    assert!(fs.is_frozen());
    assert_eq!(
        fs::read_to_string(st.join("hook.log")).unwrap(),
        "freeze start\nfreeze done\n"
    );
    assert_eq!(
        fs::read_to_string(fs.mnt.join("hook-freeze")).unwrap(),
        "freeze\n"
    );
    assert_eq!(thaw(&mut c), 1);
    // After the thaw's reply; its write to the filesystem went through.
    wait_for_text(&st.join("hook.log"), "thaw done");
    assert_eq!(
        fs::read_to_string(fs.mnt.join("hook-thaw")).unwrap(),
        "thaw\n"
    );
    assert_eq!(
        fs::read_to_string(st.join("hook.log")).unwrap(),
        "freeze start\nfreeze done\nthaw start\nthaw done\n"
    );
    // Nothing frozen: no hook.
    assert_eq!(thaw(&mut c), 0);
    for arg in ["freeze", "thaw"] {
        let env = fs::read_to_string(st.join(format!("env.{arg}"))).unwrap();
        assert!(env.contains("cwd /\n"), "{env}");
        assert!(env.contains("args 1\n"), "{env}");
        assert!(
            env.contains("SigBlk:\t0000000000000000\n"),
            "blocked signals: {env}"
        );
        assert!(
            env.contains("SigIgn:\t0000000000000000\n"),
            "ignored signals: {env}"
        );
        let session = env.lines().find(|l| l.starts_with("session ")).unwrap();
        let words: Vec<_> = session.split(' ').collect();
        assert_eq!(words[1], words[3], "not a session of its own: {session}");
        for line in env.lines().filter(|l| l.starts_with("fd ")) {
            let target = line.splitn(3, ' ').nth(2).unwrap();
            assert!(
                !target.starts_with("socket:")
                    && !target.starts_with("anon_inode:")
                    && !target.contains("agent.log"),
                "the hook inherited an agent descriptor: {line}\n{env}"
            );
        }
        assert!(env.contains("fd 0 /dev/null\n"), "{env}");
    }
    // Its output is in the agent's log, both streams.
    let log = wait_for_text(&log, "err of the thaw hook");
    for want in [
        "out of the freeze hook",
        "err of the freeze hook",
        "out of the thaw hook",
    ] {
        assert!(log.contains(want), "{want} not logged:\n{log}");
    }
}

#[test]
fn freezes_of_the_phoenix_dialect_run_the_hook_too() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let st = state.path();
    let hook_path = recording_hook(st, &fs.mnt);
    let hook_arg = format!("-F{}", s(&hook_path));
    let agent = ours(st, "phoenix", &[&fs.mnt], &[&hook_arg]);
    let mut c = agent.raw();
    assert_eq!(ret(&freeze(&mut c, &[fs.path()])), true);
    assert!(fs.is_frozen());
    assert_eq!(
        fs::read_to_string(st.join("hook.log")).unwrap(),
        "freeze start\nfreeze done\n"
    );
    assert_eq!(ret(&call(&mut c, "fs-unfreeze", json!({}))), true);
    wait_for_text(&st.join("hook.log"), "thaw done");
}

#[test]
fn a_failing_or_missing_hook_refuses_the_freeze() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let st = state.path();
    let hook_path = recording_hook(st, &fs.mnt);
    fs::write(st.join("exit.freeze"), "3").unwrap();
    let hook_arg = format!("-F{}", s(&hook_path));
    let agent = ours(st, "qga", &[&fs.mnt], &[&hook_arg]);
    let mut c = agent.raw();
    let (class, desc) = qga_err(&freeze_list(&mut c, &[fs.path()]));
    assert_eq!(class, "GenericError");
    assert_eq!(
        desc,
        format!(
            "fsfreeze hook {} freeze failed (exit status 3): out of the freeze hook\nerr of the freeze hook",
            s(&hook_path)
        )
    );
    assert!(!fs.is_frozen());
    assert_eq!(qga_status(&mut c), "thawed");
    assert!(!st.join("frozen").exists());
    // The thaw hook runs, so that what the freeze hook did is undone (qemu-ga leaves it).
    wait_for_text(&st.join("hook.log"), "thaw done");
    // A thaw hook that fails is logged; the thaw still counts.
    fs::remove_file(st.join("exit.freeze")).unwrap();
    fs::write(st.join("exit.thaw"), "4").unwrap();
    assert_eq!(ret_of(&freeze_list(&mut c, &[fs.path()])), 1);
    assert_eq!(thaw(&mut c), 1);
    assert!(!fs.is_frozen());
    drop(c);
    drop(agent);

    let missing = st.join("no-such-hook");
    let hook_arg = format!("-F{}", s(&missing));
    let agent = ours(st, "qga", &[&fs.mnt], &[&hook_arg]);
    let mut c = agent.raw();
    let (class, desc) = qga_err(&freeze_list(&mut c, &[fs.path()]));
    assert_eq!(class, "GenericError");
    assert_eq!(
        desc,
        format!("fsfreeze hook {}: No such file or directory", s(&missing))
    );
    assert!(!fs.is_frozen());
    assert_eq!(thaw(&mut c), 0, "nothing frozen, and no hook to complain");
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet).
fn gone(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('Z'),
    }
}

#[test]
fn a_hanging_hook_is_killed_with_its_process_group_and_the_freeze_goes_on() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let st = state.path();
    let hook_path = st.join("hang.sh");
    hook(
        &hook_path,
        &format!(
            "echo $$ > \"{st}/pid.$1\"\nsleep 1000 &\necho $! > \"{st}/child.$1\"\necho \"$1 hangs\"\nwait\n",
            st = s(st)
        ),
    );
    let hook_arg = format!("-F{}", s(&hook_path));
    let log = st.join("agent.log");
    let agent = ours(
        st,
        "qga",
        &[&fs.mnt],
        &[
            &hook_arg,
            "--fsfreeze-hook-timeout",
            "1",
            "--log-file",
            s(&log),
        ],
    );
    let mut c = agent.raw();
    let t = Instant::now();
    assert_eq!(ret_of(&freeze_list(&mut c, &[fs.path()])), 1);
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(fs.is_frozen(), "the freeze goes on without the hook");
    for file in ["pid.freeze", "child.freeze"] {
        let pid = fs::read_to_string(st.join(file)).unwrap();
        let deadline = Instant::now() + WAIT;
        while !gone(&pid) {
            assert!(Instant::now() < deadline, "{file} {pid} still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The thaw answers at once; its hook hangs behind it, is killed after a second,
    // and the next freeze waits for that before its own hook.
    let t = Instant::now();
    assert_eq!(thaw(&mut c), 1);
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(!fs.is_frozen());
    assert_eq!(ret_of(&freeze_list(&mut c, &[fs.path()])), 1);
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(thaw(&mut c), 1);
    // Four runs, four kills: nothing of the hook outlives the test.
    let deadline = Instant::now() + WAIT;
    loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if text.matches("fsfreeze hook timed out").count() == 4 {
            assert!(
                text.contains("freeze hangs") && text.contains("thaw hangs"),
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let last = fs::read_to_string(st.join("child.thaw")).unwrap();
    let deadline = Instant::now() + WAIT;
    while !gone(&last) {
        assert!(
            Instant::now() < deadline,
            "the thaw hook's child {last} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_auto_thaw_and_the_exit_run_the_thaw_hook() {
    let fs = LoopFs::new();
    let state = tempfile::tempdir().unwrap();
    let st = state.path();
    let hook_path = recording_hook(st, &fs.mnt);
    let hook_arg = format!("-F{}", s(&hook_path));
    let agent = ours(st, "qga", &[&fs.mnt], &[&hook_arg, "--freeze-timeout", "1"]);
    let mut c = agent.raw();
    assert_eq!(ret_of(&freeze_list(&mut c, &[fs.path()])), 1);
    wait_for_text(&st.join("hook.log"), "thaw done");
    assert!(!fs.is_frozen());
    assert_eq!(qga_status(&mut c), "thawed");
    drop(c);
    drop(agent);

    let state = tempfile::tempdir().unwrap();
    let st = state.path();
    let hook_path = recording_hook(st, &fs.mnt);
    let hook_arg = format!("-F{}", s(&hook_path));
    let mut agent = ours(st, "qga", &[&fs.mnt], &[&hook_arg]);
    let mut c = agent.raw();
    assert_eq!(ret_of(&freeze_list(&mut c, &[fs.path()])), 1);
    kill(
        Pid::from_raw(i32::try_from(agent.pid()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(agent.wait_exit(WAIT), Some(0));
    // The thaw hook ran before the agent went.
    assert!(fs::read_to_string(st.join("hook.log"))
        .unwrap()
        .ends_with("thaw done\n"));
    assert!(!fs.is_frozen());
}

/// One scripted freeze session on `mnt`; labelled replies.
fn freeze_session(c: &mut RawConn, mnt: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut call = |c: &mut RawConn, label: &str, cmd: &str, args: Value| {
        out.push((label.to_string(), qga_call(c, cmd, args)));
    };
    let m = s(mnt);
    let sub = mnt.join("sub");
    let _ = fs::create_dir(&sub);
    call(c, "status", "guest-fsfreeze-status", Value::Null);
    call(c, "thaw nothing", "guest-fsfreeze-thaw", Value::Null);
    call(
        c,
        "freeze",
        "guest-fsfreeze-freeze-list",
        json!({"mountpoints": [m]}),
    );
    call(c, "status frozen", "guest-fsfreeze-status", Value::Null);
    call(
        c,
        "freeze again",
        "guest-fsfreeze-freeze-list",
        json!({"mountpoints": [m]}),
    );
    call(
        c,
        "file while frozen",
        "guest-file-open",
        json!({"path": "/etc/hostname"}),
    );
    call(c, "ping while frozen", "guest-ping", Value::Null);
    call(c, "thaw", "guest-fsfreeze-thaw", Value::Null);
    call(c, "status thawed", "guest-fsfreeze-status", Value::Null);
    call(c, "thaw again", "guest-fsfreeze-thaw", Value::Null);
    call(
        c,
        "not mount points",
        "guest-fsfreeze-freeze-list",
        json!({"mountpoints": ["/nonexistent", "relative", s(&sub)]}),
    );
    call(
        c,
        "status after nothing",
        "guest-fsfreeze-status",
        Value::Null,
    );
    call(
        c,
        "empty list",
        "guest-fsfreeze-freeze-list",
        json!({"mountpoints": []}),
    );
    call(
        c,
        "null list",
        "guest-fsfreeze-freeze-list",
        json!({"mountpoints": null}),
    );
    call(
        c,
        "string list",
        "guest-fsfreeze-freeze-list",
        json!({"mountpoints": "/x"}),
    );
    call(
        c,
        "number in list",
        "guest-fsfreeze-freeze-list",
        json!({"mountpoints": [1]}),
    );
    call(
        c,
        "unexpected",
        "guest-fsfreeze-freeze-list",
        json!({"mountpoints": [m], "x": 1}),
    );
    call(
        c,
        "status unexpected",
        "guest-fsfreeze-status",
        json!({"x": 1}),
    );
    call(c, "status at end", "guest-fsfreeze-status", Value::Null);
    out
}

/// Compares two sessions: the same values and shapes, the same error classes, and the
/// same texts except for the labels in `own_words`.
fn compare(mine: &[(String, Value)], qemu: &[(String, Value)], own_words: &[&str]) {
    assert_eq!(mine.len(), qemu.len());
    for ((label, a), (_, b)) in mine.iter().zip(qemu) {
        match (a.get("error"), b.get("error")) {
            (None, None) => {
                assert_eq!(shape(a), shape(b), "{label}: {a} vs {b}");
                assert_eq!(a["return"], b["return"], "{label}");
            }
            (Some(x), Some(y)) => {
                assert_eq!(x["class"], y["class"], "{label}: {a} vs {b}");
                if !own_words.contains(&label.as_str()) {
                    assert_eq!(x["desc"], y["desc"], "{label}");
                }
            }
            _ => panic!("{label}: ours {a}, qemu-ga {b}"),
        }
    }
}

#[test]
fn freeze_commands_side_by_side_with_qemu_ga() {
    let (fs_ours, fs_theirs) = (LoopFs::new(), LoopFs::new());
    let state = tempfile::tempdir().unwrap();
    let mine = {
        let agent = ours(state.path(), "qga", &[&fs_ours.mnt], &[]);
        freeze_session(&mut agent.raw(), &fs_ours.mnt)
    };
    let dir = tempfile::tempdir().unwrap();
    let qemu = {
        let qga = theirs(dir.path(), &[&fs_theirs.mnt], &[]);
        freeze_session(&mut qga.raw(), &fs_theirs.mnt)
    };
    assert!(!fs_ours.is_frozen() && !fs_theirs.is_frozen());
    // Refusals while frozen: "the agent is in frozen state" here, "the command is not
    // allowed" from qemu-ga 10 (the class is the same).
    compare(&mine, &qemu, &["freeze again", "file while frozen"]);
}

#[test]
fn hook_failures_side_by_side_with_qemu_ga() {
    let (fs_ours, fs_theirs) = (LoopFs::new(), LoopFs::new());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let session = |c: &mut RawConn, mnt: &Path| {
        vec![
            ("freeze".to_string(), freeze_list(c, &[s(mnt)])),
            (
                "status".to_string(),
                qga_call(c, "guest-fsfreeze-status", Value::Null),
            ),
        ]
    };
    let failing = |dir: &Path| {
        let path = dir.join("fail.sh");
        hook(&path, "echo \"no $1 today\"\nexit 3\n");
        format!("-F{}", s(&path))
    };
    let mine = {
        let agent = ours(a.path(), "qga", &[&fs_ours.mnt], &[&failing(a.path())]);
        session(&mut agent.raw(), &fs_ours.mnt)
    };
    let qemu = {
        let qga = theirs(b.path(), &[&fs_theirs.mnt], &[&failing(b.path())]);
        session(&mut qga.raw(), &fs_theirs.mnt)
    };
    // Both refuse the freeze (the words differ: ours name the hook and the status).
    compare(&mine, &qemu, &["freeze"]);
    assert!(qga_err(&mine[0].1).1.contains("no freeze today"));
    assert!(qga_err(&qemu[0].1).1.contains("no freeze today"));
    assert!(!fs_ours.is_frozen() && !fs_theirs.is_frozen());

    // A hook that does not exist: both refuse the freeze; qemu-ga's thaw then fails
    // too (it runs the hook on every thaw), ours counts 0.
    let missing = |dir: &Path| format!("-F{}", s(&dir.join("missing")));
    let agent = ours(a.path(), "qga", &[&fs_ours.mnt], &[&missing(a.path())]);
    let qga = theirs(b.path(), &[&fs_theirs.mnt], &[&missing(b.path())]);
    let (mut c, mut q) = (agent.raw(), qga.raw());
    let (x, y) = (
        freeze_list(&mut c, &[fs_ours.path()]),
        freeze_list(&mut q, &[fs_theirs.path()]),
    );
    assert_eq!(qga_err(&x).0, qga_err(&y).0);
    assert!(qga_err(&x).1.ends_with("No such file or directory"), "{x}");
    assert!(qga_err(&y).1.contains("No such file or directory"), "{y}");
    assert_eq!(thaw(&mut c), 0);
    assert_eq!(
        qga_err(&qga_call(&mut q, "guest-fsfreeze-thaw", Value::Null)).0,
        "GenericError"
    );
    assert!(!fs_ours.is_frozen() && !fs_theirs.is_frozen());
}
