//! Many guests at once: repeated `-s`, globs, `--parallel`, each result under its
//! guest's name, and the exit status when some guest fails.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

use common::{TestAgent, CTL};

fn run(args: &[&str]) -> Output {
    Command::new(CTL)
        .args(args)
        .env_remove("PHOENIX_SOCKET")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `DIR/NAME/agent.sock` links to each agent's socket, as a host keeps one folder a VM.
fn vm_folders(dir: &Path, agents: &[(&str, &TestAgent)]) {
    for (name, agent) in agents {
        std::fs::create_dir(dir.join(name)).unwrap();
        symlink(&agent.sock, dir.join(name).join("agent.sock")).unwrap();
    }
}

#[test]
fn repeated_sockets_each_result_under_its_guest() {
    let a = TestAgent::start(&[]);
    let b = TestAgent::start(&["--dialect", "qga"]);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.sock");
    let (sa, sb, sm) = (
        a.sock.to_str().unwrap(),
        b.sock.to_str().unwrap(),
        missing.to_str().unwrap(),
    );

    let out = run(&["-s", sa, "-s", sb, "ping"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("== {sa} ==\n0.9.0\n== {sb} ==\n0.9.0\n")
    );

    // One guest missing: the others still answer, in the order given, and the exit
    // status is the missing one's (unreachable).
    let out = run(&["-s", sa, "--socket", sm, "-s", sb, "ping"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("== {sa} ==\n0.9.0\n== {sm} ==\n== {sb} ==\n0.9.0\n")
    );
    let err = text(&out.stderr);
    assert!(err.contains("gone.sock"), "{err}");
    assert!(
        err.ends_with(&format!("phoenix-ctl: 1 of 3 guests failed: {sm}\n")),
        "{err}"
    );
}

#[test]
fn a_glob_names_each_guest_by_its_folder() {
    let agents: Vec<TestAgent> = (0..3).map(|_| TestAgent::start(&[])).collect();
    let dir = tempfile::tempdir().unwrap();
    vm_folders(
        dir.path(),
        &[
            ("vm2", &agents[0]),
            ("vm1", &agents[1]),
            ("vm3", &agents[2]),
        ],
    );
    // A folder without a socket, and one whose agent is gone.
    std::fs::create_dir(dir.path().join("vm0")).unwrap();
    let gone = TestAgent::start(&[]);
    vm_folders(dir.path(), &[("vm4", &gone)]);
    drop(gone);

    let pattern = format!("{}/vm*/agent.sock", dir.path().display());
    let out = run(&["-s", &pattern, "--parallel", "2", "ping"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "== vm1 ==\n0.9.0\n== vm2 ==\n0.9.0\n== vm3 ==\n0.9.0\n== vm4 ==\n"
    );
    assert!(
        text(&out.stderr).contains("1 of 4 guests failed: vm4"),
        "{}",
        text(&out.stderr)
    );

    // Through the environment too, with --json: one line per guest.
    std::fs::write(agents[1].dir.path().join("f"), "one\n").unwrap();
    let out = Command::new(CTL)
        .args(["--json", "cat"])
        .arg(agents[1].dir.path().join("f"))
        .env(
            "PHOENIX_SOCKET",
            format!("{}/vm[1-3]/agent.sock", dir.path().display()),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (line, name) in lines.iter().zip(["vm1", "vm2", "vm3"]) {
        assert_eq!(line["guest"], name);
        assert_eq!(line["ok"], true);
        assert_eq!(line["status"], 0);
        assert!(line["error"].is_null(), "{line}");
        assert_eq!(line["result"]["size"], 4, "{line}");
    }
}

#[test]
fn agent_errors_fail_the_run_with_status_1() {
    let a = TestAgent::start(&[]);
    let b = TestAgent::start(&["--block-commands", "get-commands"]);
    let (sa, sb) = (a.sock.to_str().unwrap(), b.sock.to_str().unwrap());
    let out = run(&["--json", "-s", sa, "-s", sb, "info"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[0]["result"]["version"], "0.9.0");
    assert_eq!(lines[1]["ok"], false);
    assert_eq!(lines[1]["status"], 1);
    assert!(
        lines[1]["error"].as_str().unwrap().contains("get-commands"),
        "{}",
        lines[1]
    );
    assert!(lines[1]["result"].is_null());
}

#[test]
fn usage_errors_for_many_guests() {
    let a = TestAgent::start(&[]);
    let sa = a.sock.to_str().unwrap();
    for args in [
        &["-s", sa, "-s", sa, "--parallel", "0", "ping"][..],
        &["-s", sa, "-s", sa, "cp", "guest:/etc/hostname", "h"],
        &["-s", sa, "-s", sa, "cp", "-", "guest:/tmp/x"],
    ] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_upload_to_every_guest() {
    let agents: Vec<TestAgent> = (0..3).map(|_| TestAgent::start(&[])).collect();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.conf");
    std::fs::write(&src, "setting = 1\n").unwrap();
    // One at a time: the agents share this machine's files, and so the destination.
    let mut args = vec!["--parallel".to_string(), "1".into()];
    for a in &agents {
        args.extend(["-s".into(), a.sock.display().to_string()]);
    }
    args.extend([
        "cp".into(),
        "-q".into(),
        src.display().to_string(),
        format!("guest:{}/app.conf", dir.path().display()),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).matches("== ").count(), 3);
    let copy = std::fs::read_to_string(dir.path().join("app.conf")).unwrap();
    assert_eq!(copy, "setting = 1\n");
}
