//! The binary we ship: `scripts/build-static.sh` (glibc static-pie, linked with
//! `layout.ld`) builds, has no dynamic dependency, carries the code layout, and answers
//! in both dialects, including the commands whose code the layout puts last.
//!
//! The other tests run the debug build; this one builds the release binary once (about a
//! minute from scratch, nothing when it is fresh).

use std::path::{Path, PathBuf};
use std::process::Command;

use phoenix_testkit::{path_str, ret, Launch};
use serde_json::json;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs scripts/build-static.sh; the binary's path.
fn build() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/build-static.sh"))
        .output()
        .expect("run scripts/build-static.sh");
    assert!(
        out.status.success(),
        "scripts/build-static.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
}

/// The names of the binary's sections (`readelf -SW`).
fn sections(bin: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-SW", path_str(bin)])
        .output()
        .expect("run readelf (binutils)");
    assert!(out.status.success(), "readelf failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(']'))
        .filter_map(|(_, rest)| rest.split_whitespace().next().map(String::from))
        .collect()
}

#[test]
fn the_static_build_is_static_laid_out_and_answers_both_dialects() {
    let bin = build();
    let names = sections(&bin);
    for want in [".text.hot", ".text", ".text.cold"] {
        assert!(
            names.iter().any(|n| n == want),
            "no {want} section: {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n == ".interp"),
        "the static build asks for a dynamic loader: {names:?}"
    );

    let phoenix = Launch::new(&bin).start(&[]);
    let mut c = phoenix.raw();
    let r = c.request(json!({"execute": "ping", "tag": "p"}));
    assert_eq!(ret(&r), &json!(VERSION));
    // A family command (its code is in the cold part).
    let r = c.request(json!({"execute": "sysinfo", "tag": "s"}));
    assert!(ret(&r).is_object(), "{r}");

    // In a network namespace of its own: the interface listing reads only that.
    let qga = Launch::new(&bin)
        .wrapper(&["unshare", "-n"])
        .start(&["--dialect", "qga"]);
    let mut c = qga.raw();
    let r = c.request(json!({"execute": "guest-info"}));
    assert_eq!(r["return"]["version"], VERSION, "{r}");
    let file = qga.dir.path().join("f");
    std::fs::write(&file, b"static").unwrap();
    let r =
        c.request(json!({"execute": "guest-file-open", "arguments": {"path": path_str(&file)}}));
    let h = r["return"].as_i64().expect("a handle");
    let r = c.request(json!({"execute": "guest-file-read", "arguments": {"handle": h}}));
    assert_eq!(r["return"]["buf-b64"], "c3RhdGlj", "{r}");
    let r = c.request(json!({"execute": "guest-network-get-interfaces"}));
    assert!(r["return"].is_array(), "{r}");
}
