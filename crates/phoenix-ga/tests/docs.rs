//! The command reference in docs/commands/ documents every command the agent answers,
//! in both dialects.

use phoenix_testkit::{qga_ok, Launch};
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");

#[test]
fn every_command_is_documented() {
    let docs_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/commands");
    let mut docs = String::new();
    for entry in std::fs::read_dir(docs_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let agent = Launch::new(AGENT).start(&[]);
    let mut names = agent.client().commands().unwrap();
    let qga = Launch::new(AGENT).start(&["--dialect", "qga"]);
    let info = qga_ok(&mut qga.raw(), "guest-info", Value::Null);
    let listed = info["supported_commands"].as_array().unwrap();
    names.extend(listed.iter().map(|c| c["name"].as_str().unwrap().to_string()));
    assert!(names.iter().any(|n| n == "guest-info"), "{names:?}");
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !docs.contains(&format!("## `{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not documented in docs/commands/: {missing:?}"
    );
}
