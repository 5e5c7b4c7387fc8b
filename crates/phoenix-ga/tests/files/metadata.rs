//! file-stat, file-chown, file-chmod, directory-create, directory-list, and the
//! command reference.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::{json, Value};

use crate::helpers::*;

fn check_stat(st: &Value, p: &Path) {
    let m = fs::symlink_metadata(p).unwrap();
    let keys: Vec<&str> = st.as_object().unwrap().keys().map(String::as_str).collect();
    let mut keys = keys;
    keys.sort_unstable();
    let mut want = [
        "Dev",
        "Ino",
        "Nlink",
        "Mode",
        "Uid",
        "Gid",
        "X__pad0",
        "Rdev",
        "Size",
        "Blksize",
        "Blocks",
        "Atim",
        "Mtim",
        "Ctim",
        "X__unused",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(st["Dev"], m.dev());
    assert_eq!(st["Ino"], m.ino());
    assert_eq!(st["Nlink"], m.nlink());
    assert_eq!(st["Mode"], m.mode());
    assert_eq!(st["Uid"], m.uid());
    assert_eq!(st["Gid"], m.gid());
    assert_eq!(st["Rdev"], m.rdev());
    assert_eq!(st["Size"], m.size());
    assert_eq!(st["Blksize"], m.blksize());
    assert_eq!(st["Blocks"], m.blocks());
    assert_eq!(
        st["Mtim"],
        json!({"Sec": m.mtime(), "Nsec": m.mtime_nsec()})
    );
    assert_eq!(
        st["Ctim"],
        json!({"Sec": m.ctime(), "Nsec": m.ctime_nsec()})
    );
    assert_eq!(
        st["Atim"],
        json!({"Sec": m.atime(), "Nsec": m.atime_nsec()})
    );
    assert_eq!(st["X__pad0"], 0);
    assert_eq!(st["X__unused"], json!([0, 0, 0]));
}

#[test]
fn file_stat_is_lstat_with_go_keys() {
    let a = agent(&[]);
    let d = a.dir.path();
    let f = d.join("f");
    fs::write(&f, "12345").unwrap();
    let sub = d.join("sub");
    fs::create_dir(&sub).unwrap();
    let link = d.join("link");
    std::os::unix::fs::symlink(&sub, &link).unwrap();
    let mut c = a.raw();
    let r = ok(&mut c, "file-stat", json!({"path": s(&f)}));
    assert_eq!((&r["name"], &r["isdir"]), (&json!("f"), &json!(false)));
    check_stat(&r["stat"], &f);
    assert_eq!(r["stat"]["Size"], 5);
    let r = ok(
        &mut c,
        "file-stat",
        json!({"path": format!("{}/", s(&sub))}),
    );
    assert_eq!((&r["name"], &r["isdir"]), (&json!("sub"), &json!(true)));
    check_stat(&r["stat"], &sub);
    let r = ok(&mut c, "file-stat", json!({"path": s(&link)}));
    assert_eq!((&r["name"], &r["isdir"]), (&json!("link"), &json!(false)));
    check_stat(&r["stat"], &link);
    assert_eq!(
        u32::try_from(r["stat"]["Mode"].as_u64().unwrap()).unwrap() & libc::S_IFMT,
        libc::S_IFLNK
    );
    let r = ok(&mut c, "file-stat", json!({"path": "/"}));
    assert_eq!((&r["name"], &r["isdir"]), (&json!("/"), &json!(true)));
    let (msg, code) = fails(&mut c, "file-stat", json!({"path": s(&d.join("no"))}));
    assert_eq!(
        (code, msg),
        (
            2,
            format!(
                "lstat {}: No such file or directory",
                d.join("no").display()
            )
        )
    );
    assert_eq!(
        fails(&mut c, "file-stat", json!({"path": s(&f.join("x"))})).1,
        20
    );
    assert_eq!(fails(&mut c, "file-stat", json!({})).1, -1);
}

#[test]
fn chown_and_chmod() {
    let a = agent(&[]);
    let f = a.dir.path().join("f");
    fs::write(&f, "x").unwrap();
    let mut c = a.raw();
    let own = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(
        ok(
            &mut c,
            "file-chown",
            json!({"path": s(&f), "uid": 65534, "gid": 100})
        ),
        true
    );
    assert_eq!(own(&f), (65534, 100));
    assert_eq!(
        ok(
            &mut c,
            "file-chown",
            json!({"path": s(&f), "uid": -1, "gid": 65534})
        ),
        true
    );
    assert_eq!(own(&f), (65534, 65534));
    assert_eq!(ok(&mut c, "file-chown", json!({"path": s(&f)})), true);
    assert_eq!(own(&f), (0, 0));
    for bad in [
        json!({"path": s(&f), "uid": "1"}),
        json!({"path": s(&f), "gid": -2}),
        json!({"uid": 1}),
    ] {
        assert_eq!(fails(&mut c, "file-chown", bad).1, -1);
    }
    assert_eq!(own(&f), (0, 0));
    let (msg, code) = fails(
        &mut c,
        "file-chown",
        json!({"path": s(&f.with_extension("no"))}),
    );
    assert_eq!(
        (code, msg),
        (
            2,
            format!(
                "chown {}: No such file or directory",
                f.with_extension("no").display()
            )
        )
    );

    for perm in [0o640u32, 0o4755, 0o7777, 0] {
        assert_eq!(
            ok(&mut c, "file-chmod", json!({"path": s(&f), "perm": perm})),
            true
        );
        assert_eq!(mode(&f), 0o100000 | perm);
    }
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    let (msg, code) = fails(&mut c, "file-chmod", json!({"path": s(&f)}));
    assert_eq!(code, -1);
    assert!(msg.contains("missing field `perm`"), "{msg}");
    assert_eq!(
        fails(&mut c, "file-chmod", json!({"path": s(&f), "perm": 4096})).1,
        -1
    );
    assert_eq!(mode(&f), 0o100640);
    let (_, code) = fails(
        &mut c,
        "file-chmod",
        json!({"path": s(&f.join("x")), "perm": 420}),
    );
    assert_eq!(code, 20);
}

#[test]
fn directory_create_is_mkdir_p_with_exact_perms() {
    let a = agent(&[]);
    let d = a.dir.path();
    let mut c = a.raw();
    let deep = d.join("a/b/c");
    assert_eq!(
        ok(&mut c, "directory-create", json!({"path": s(&deep)})),
        true
    );
    for p in [d.join("a"), d.join("a/b"), deep.clone()] {
        assert_eq!(mode(&p), 0o40755, "{}", p.display());
    }
    let x = d.join("x/y");
    assert_eq!(
        ok(
            &mut c,
            "directory-create",
            json!({"path": s(&x), "perm": 0o750})
        ),
        true
    );
    assert_eq!((mode(&d.join("x")), mode(&x)), (0o40750, 0o40750));
    // Existing: true, left as it is.
    assert_eq!(
        ok(
            &mut c,
            "directory-create",
            json!({"path": s(&x), "perm": 0o700})
        ),
        true
    );
    assert_eq!(mode(&x), 0o40750);
    let f = d.join("file");
    fs::write(&f, "").unwrap();
    let (msg, code) = fails(&mut c, "directory-create", json!({"path": s(&f)}));
    assert_eq!(
        (code, msg),
        (20, format!("mkdir {}: Not a directory", f.display()))
    );
    assert_eq!(
        fails(
            &mut c,
            "directory-create",
            json!({"path": s(&f.join("sub"))})
        )
        .1,
        20
    );
    let dangling = d.join("dangling");
    std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
    let (msg, code) = fails(&mut c, "directory-create", json!({"path": s(&dangling)}));
    assert_eq!(
        (code, msg),
        (17, format!("mkdir {}: File exists", dangling.display()))
    );
    assert_eq!(
        fails(
            &mut c,
            "directory-create",
            json!({"path": s(&d.join("p")), "perm": 4096})
        )
        .1,
        -1
    );
    assert!(!d.join("p").exists());
}

#[test]
fn directory_list_lstats_and_honours_n() {
    let a = agent(&[]);
    let d = a.dir.path().join("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("f1"), "abc").unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink(d.join("sub"), d.join("link")).unwrap();
    std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangle")).unwrap();
    let mut c = a.raw();
    let list = ok(&mut c, "directory-list", json!({"path": s(&d)}));
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["dangle", "f1", "link", "sub"]);
    for e in list.as_array().unwrap() {
        let p = d.join(e["name"].as_str().unwrap());
        check_stat(&e["stat"], &p);
        assert_eq!(e["isdir"], e["name"] == "sub");
    }
    for (n, want) in [(0, 4), (-1, 4), (2, 2), (1, 1), (100, 4)] {
        let list = ok(&mut c, "directory-list", json!({"path": s(&d), "n": n}));
        assert_eq!(list.as_array().unwrap().len(), want, "n = {n}");
    }
    let empty = a.dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert_eq!(
        ok(&mut c, "directory-list", json!({"path": s(&empty)})),
        json!([])
    );
    let (msg, code) = fails(&mut c, "directory-list", json!({"path": s(&d.join("f1"))}));
    assert_eq!(
        (code, msg),
        (
            20,
            format!("open {}: Not a directory", d.join("f1").display())
        )
    );
    assert_eq!(
        fails(&mut c, "directory-list", json!({"path": s(&d.join("no"))})).1,
        2
    );
    assert_eq!(
        fails(&mut c, "directory-list", json!({"path": s(&d), "n": "1"})).1,
        -1
    );
}

#[test]
fn directory_list_of_100000_files() {
    let a = agent(&[]);
    let d = a.dir.path().join("many");
    fs::create_dir(&d).unwrap();
    for i in 0..100_000 {
        fs::File::create(d.join(format!("f{i}"))).unwrap();
    }
    let mut c = a.raw();
    let list = ok(&mut c, "directory-list", json!({"path": s(&d)}));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 100_000);
    let names: std::collections::HashSet<&str> =
        list.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 100_000);
    assert!(names.contains("f99999"));
    let some = ok(&mut c, "directory-list", json!({"path": s(&d), "n": 10}));
    assert_eq!(some.as_array().unwrap().len(), 10);
}

#[test]
fn reference_documents_every_file_command() {
    let a = agent(&[]);
    let names: Vec<String> = a.client().commands().unwrap();
    let doc = include_str!("../../../../docs/commands/files.md");
    let ours: Vec<&String> = names
        .iter()
        .filter(|n| {
            n.starts_with("file-") || n.starts_with("directory-") || *n == "get-file-md5sum"
        })
        .collect();
    assert_eq!(ours.len(), 11, "{ours:?}");
    for n in ours {
        assert!(
            doc.contains(&format!("## `{n}`")),
            "{n} missing from docs/commands/files.md"
        );
    }
}

#[test]
fn file_rename_replaces_atomically_and_reports_errno() {
    let a = agent(&[]);
    let dir = a.dir.path();
    let (tmp, dst) = (dir.join(".upload.part"), dir.join("upload"));
    fs::write(&tmp, "new").unwrap();
    fs::write(&dst, "old").unwrap();
    let ino = fs::metadata(&tmp).unwrap().ino();
    let mut c = a.raw();
    assert_eq!(
        ok(
            &mut c,
            "file-rename",
            json!({"src": s(&tmp), "dst": s(&dst)})
        ),
        true
    );
    assert!(!tmp.exists());
    assert_eq!(fs::read_to_string(&dst).unwrap(), "new");
    assert_eq!(fs::metadata(&dst).unwrap().ino(), ino, "not the same file");

    let (msg, code) = fails(
        &mut c,
        "file-rename",
        json!({"src": s(&tmp), "dst": s(&dst)}),
    );
    assert_eq!(code, 2);
    assert!(
        msg.starts_with(&format!("rename {} to {}", s(&tmp), s(&dst))),
        "{msg}"
    );
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("x"), "").unwrap();
    let (_, code) = fails(
        &mut c,
        "file-rename",
        json!({"src": s(&dst), "dst": s(&sub)}),
    );
    assert_eq!(code, 21, "a file over a directory is EISDIR");
    let (msg, code) = fails(&mut c, "file-rename", json!({"src": s(&dst)}));
    assert_eq!(code, -1);
    assert!(msg.contains("missing field `dst`"), "{msg}");
}
