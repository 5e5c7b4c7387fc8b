//! Files and directories in the guest: a 10 MiB file written and read back with md5
//! equal on both ends, directory and stat calls checked against the guest's own `stat`.

use phoenix_e2e::SCRATCH;
use phoenix_testkit::{b64, md5sum_bytes, random_bytes, unb64};
use serde_json::{json, Value};

use crate::{call, call_err, guest};

/// errno of a read on a handle the agent no longer has.
const EBADF: i32 = 9;

#[test]
fn ten_mib_written_and_read_back() {
    let Some(g) = guest() else {
        return;
    };
    let c = g.client();
    let dir = format!("{SCRATCH}/files-big");
    g.sh_ok(&format!("rm -rf {dir} && mkdir -p {dir}"));
    let path = format!("{dir}/big");
    let data = random_bytes(10 << 20, 0xe2e);
    let md5 = md5sum_bytes(&data);

    let h = call(&c, "file-open", json!({"path": path, "mode": "w"}));
    for chunk in data.chunks(1 << 20) {
        let args = json!({"handle_id": h, "bufb64": b64(chunk), "eof": false});
        assert_eq!(call(&c, "file-write", args), json!(true));
    }
    assert_eq!(call(&c, "file-close", json!({"handle_id": h})), json!(true));
    let guest_md5 = g.sh_ok(&format!("md5sum {path}"));
    assert_eq!(guest_md5.split_whitespace().next(), Some(md5.as_str()));
    assert_eq!(
        call(&c, "get-file-md5sum", json!({"path": path})),
        json!(md5)
    );

    // Back with large reads (the `count` extension); the read at EOF closes the handle.
    let h = call(&c, "file-open", json!({"path": path}));
    let mut back = Vec::new();
    loop {
        let r = call(&c, "file-read", json!({"handle_id": h, "count": 1 << 20}));
        back.extend(unb64(&r["bufb64"]));
        if r["eof"] == json!(true) {
            break;
        }
    }
    assert!(
        back == data,
        "read back {} bytes, not the 10 MiB written",
        back.len()
    );
    let e = call_err(&c, "file-read", json!({"handle_id": h}));
    assert_eq!(e.code, EBADF, "read of a handle closed at EOF: {e}");

    // The compatible default chunk: 4096 bytes per read.
    let h = call(&c, "file-open", json!({"path": path}));
    let r = call(&c, "file-read", json!({"handle_id": h}));
    let first = unb64(&r["bufb64"]);
    assert_eq!(first, data[..4096]);
    assert_eq!(call(&c, "file-close", json!({"handle_id": h})), json!(true));
    g.sh_ok(&format!("rm -rf {dir}"));
}

#[test]
fn directories_and_stat_match_the_guest() {
    let Some(g) = guest() else {
        return;
    };
    let c = g.client();
    let dir = format!("{SCRATCH}/files-tree");
    g.sh_ok(&format!("rm -rf {dir}"));

    // directory-create makes the parents too; perm is decimal (488 = 0750).
    let deep = format!("{dir}/a/b");
    assert_eq!(
        call(&c, "directory-create", json!({"path": deep, "perm": 488})),
        json!(true)
    );
    assert_eq!(
        g.sh_ok(&format!("stat -c '%F %a' {deep}")).trim(),
        "directory 750"
    );

    let file = format!("{dir}/a/f");
    g.sh_ok(&format!(
        "printf hello > {file} && chmod 644 {file} && ln -s f {dir}/a/link"
    ));
    let st = call(&c, "file-stat", json!({"path": file}));
    assert_eq!(st["name"], "f");
    assert_eq!(st["isdir"], false);
    let guest = g.sh_ok(&format!("stat -c '%s %f %i %h %u %g' {file}"));
    let want: Vec<u64> = guest
        .split_whitespace()
        .enumerate()
        .map(|(i, v)| {
            if i == 1 {
                u64::from_str_radix(v, 16).unwrap() // %f: raw mode in hex
            } else {
                v.parse().unwrap()
            }
        })
        .collect();
    let s = &st["stat"];
    let got: Vec<u64> = ["Size", "Mode", "Ino", "Nlink", "Uid", "Gid"]
        .iter()
        .map(|k| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}")))
        .collect();
    assert_eq!(got, want, "file-stat {s} vs guest stat {guest}");
    assert_eq!(s["Mode"], 0o100644);

    // file-stat does not follow a final symlink.
    let st = call(&c, "file-stat", json!({"path": format!("{dir}/a/link")}));
    assert_eq!(st["stat"]["Mode"].as_u64().unwrap() & 0o170000, 0o120000);

    // directory-list: every entry, without . and ..
    let list = call(&c, "directory-list", json!({"path": format!("{dir}/a")}));
    let mut names: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["b", "f", "link"]);
    let isdir: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "b")
        .map(|e| &e["isdir"])
        .collect();
    assert_eq!(isdir, [&json!(true)]);

    // chmod and chown, as the guest sees them.
    assert_eq!(
        call(&c, "file-chmod", json!({"path": file, "perm": 0o600})),
        json!(true)
    );
    assert_eq!(
        call(
            &c,
            "file-chown",
            json!({"path": file, "uid": 1000, "gid": 1001})
        ),
        json!(true)
    );
    assert_eq!(
        g.sh_ok(&format!("stat -c '%a %u %g' {file}")).trim(),
        "600 1000 1001"
    );

    // A missing path: ENOENT, named in the message.
    let missing = format!("{dir}/nope");
    let e = call_err(&c, "file-stat", json!({"path": missing}));
    assert_eq!(e.code, 2, "{e}");
    assert!(e.message.contains(&missing), "{e}");
    g.sh_ok(&format!("rm -rf {dir}"));
}
