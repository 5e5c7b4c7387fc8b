//! The command reference in docs/commands/ documents every command the agent answers.

use phoenix_testkit::Launch;

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
    let names = agent.client().commands().unwrap();
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !docs.contains(&format!("## `{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not documented in docs/commands/: {missing:?}"
    );
}
