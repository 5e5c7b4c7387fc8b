//! phoenix-ctl's own commands and behaviour: ping, info, raw, exit statuses,
//! timeouts, completions and help.

mod common;

use std::process::Command;

use common::{ctl, fails, json, ok, TestAgent, CTL};

#[test]
fn ping_human_and_json() {
    let agent = TestAgent::start(&[]);
    assert_eq!(ok(&agent, &["ping"]), "0.9.0\n");
    assert_eq!(json(&agent, &["ping"]), "0.9.0");
}

#[test]
fn info_human_and_json() {
    let agent = TestAgent::start(&[]);
    let text = ok(&agent, &["info"]);
    assert!(text.starts_with("version   0.9.0\n"), "{text}");
    assert!(text.contains("large chunks"), "{text}");
    for name in ["ping", "get-commands", "agent-shutdown"] {
        assert!(
            text.split_whitespace().any(|w| w == name),
            "{name} missing: {text}"
        );
    }
    let v = json(&agent, &["info"]);
    assert_eq!(v["version"], "0.9.0");
    let names: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(names.contains(&"get-commands"), "{names:?}");
}

#[test]
fn info_lists_only_allowed_commands() {
    let agent = TestAgent::start(&["--block-commands", "agent-shutdown"]);
    let v = json(&agent, &["info"]);
    assert!(!v["commands"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("agent-shutdown")));
}

#[test]
fn raw_prints_the_return_value() {
    let agent = TestAgent::start(&[]);
    assert_eq!(ok(&agent, &["raw", r#"{"execute":"ping"}"#]), "\"0.9.0\"\n");
    let out = ok(
        &agent,
        &["raw", r#"{"execute":"get-commands","tag":"mine"}"#],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.as_array().unwrap().contains(&serde_json::json!("ping")));
}

#[test]
fn agent_errors_exit_1_with_the_decoded_message() {
    let agent = TestAgent::start(&[]);
    let (code, err) = fails(&agent, &["raw", r#"{"execute":"no-such-command"}"#]);
    assert_eq!(code, 1);
    assert!(err.starts_with("phoenix-ctl: "), "{err}");
    assert!(err.contains("no-such-command"), "{err}");
    assert!(!err.contains("bufb64"), "the message is decoded: {err}");
}

#[test]
fn usage_errors_exit_2() {
    let agent = TestAgent::start(&[]);
    let (code, err) = fails(&agent, &["raw", "{not json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not JSON"), "{err}");
    let (code, err) = fails(&agent, &["raw", r#"{"arguments":{}}"#]);
    assert_eq!(code, 2, "{err}");
    let (code, _) = fails(&agent, &["chmod", "u+x", "/tmp"]);
    assert_eq!(code, 2);
    let (code, _) = fails(&agent, &["no-such-subcommand"]);
    assert_eq!(code, 2);
    // Too long for a Duration: a usage error, not a panic.
    let (code, err) = fails(&agent, &["--timeout", "1e300", "ping"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid --timeout"), "{err}");
}

#[test]
fn an_absent_agent_exits_3_naming_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobody.sock");
    let out = Command::new(CTL)
        .arg("-s")
        .arg(&sock)
        .arg("ping")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nobody.sock"), "{err}");
}

#[test]
fn the_socket_comes_from_phoenix_socket() {
    let agent = TestAgent::start(&[]);
    let out = Command::new(CTL)
        .arg("ping")
        .env("PHOENIX_SOCKET", &agent.sock)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"0.9.0\n");
}

#[test]
fn completions_for_every_shell() {
    let agent = TestAgent::start(&[]);
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let text = ok(&agent, &["completions", shell]);
        assert!(text.contains("phoenix-ctl"), "{shell}");
        assert!(
            text.contains("freeze-status"),
            "{shell}: subcommands listed"
        );
    }
    // No agent is needed to print completions.
    let out = Command::new(CTL)
        .args(["-s", "/nonexistent", "completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn help_for_every_command() {
    let agent = TestAgent::start(&[]);
    let commands: &[&[&str]] = &[
        &[],
        &["ping"],
        &["info"],
        &["sysinfo"],
        &["ip"],
        &["ip", "addr"],
        &["ip", "addr", "show"],
        &["ip", "addr", "add"],
        &["ip", "addr", "del"],
        &["ip", "link"],
        &["ip", "link", "set"],
        &["ip", "route"],
        &["ip", "route", "show"],
        &["ip", "route", "add"],
        &["ip", "route", "del"],
        &["ls"],
        &["stat"],
        &["cat"],
        &["md5sum"],
        &["mkdir"],
        &["chmod"],
        &["chown"],
        &["cp"],
        &["freeze"],
        &["thaw"],
        &["freeze-status"],
        &["raw"],
        &["completions"],
    ];
    for cmd in commands {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = ctl(&agent, &args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        assert!(text.contains("Usage: phoenix-ctl"), "{args:?}: {text}");
    }
}
