//! file-open: modes, exact permissions, errno of every failure, force.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;

use crate::helpers::*;

#[test]
fn open_perms_are_exact_whatever_the_umask() {
    let a = agent(&[]);
    let d = a.dir.path();
    let mut c = a.raw();
    let h = ok(
        &mut c,
        "file-open",
        json!({"path": s(&d.join("def")), "mode": "w"}),
    );
    ok(&mut c, "file-close", json!({"handle_id": h}));
    assert_eq!(mode(&d.join("def")), 0o100644);
    for perm in [0o600u32, 0o755, 0o4750, 0o666] {
        let p = d.join(format!("p{perm:o}"));
        let h = ok(
            &mut c,
            "file-open",
            json!({"path": s(&p), "mode": "w", "perm": perm}),
        );
        ok(&mut c, "file-close", json!({"handle_id": h}));
        assert_eq!(mode(&p), 0o100000 | perm, "perm {perm:o}");
    }
    // An existing file is truncated and keeps its permissions.
    let p = d.join("existing");
    fs::write(&p, "old contents").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    let h = ok(
        &mut c,
        "file-open",
        json!({"path": s(&p), "mode": "w", "perm": 511}),
    );
    ok(&mut c, "file-close", json!({"handle_id": h}));
    assert_eq!(mode(&p), 0o100640);
    assert_eq!(fs::metadata(&p).unwrap().len(), 0);
    // Close-on-exec.
    let h = ok(&mut c, "file-open", json!({"path": s(&p)}));
    let fds: Vec<_> = fs::read_dir(format!("/proc/{}/fd", a.pid()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|l| fs::read_link(l).is_ok_and(|t| t == p))
        .collect();
    assert_eq!(fds.len(), 1);
    let fd = fds[0].file_name().unwrap().to_str().unwrap().to_string();
    let info = fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", a.pid())).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .unwrap()
        .trim();
    let flags = u32::from_str_radix(flags, 8).unwrap();
    assert_ne!(flags & libc::O_CLOEXEC as u32, 0, "not close-on-exec");
    ok(&mut c, "file-close", json!({"handle_id": h}));
}

#[test]
fn open_argument_errors() {
    let a = agent(&[]);
    let p = a.dir.path().join("x");
    let mut c = a.raw();
    for m in ["a", "", "rw", "W"] {
        let (msg, code) = fails(&mut c, "file-open", json!({"path": s(&p), "mode": m}));
        assert_eq!(code, -1);
        assert!(msg.contains("mode must be"), "{msg}");
    }
    let (msg, code) = fails(
        &mut c,
        "file-open",
        json!({"path": s(&p), "mode": "w", "perm": 4096}),
    );
    assert_eq!(code, -1, "{msg}");
    let (_, code) = fails(
        &mut c,
        "file-open",
        json!({"path": s(&p), "mode": "w", "perm": "420"}),
    );
    assert_eq!(code, -1);
    assert_eq!(fails(&mut c, "file-open", json!({"mode": "r"})).1, -1);
    assert!(!p.exists(), "a refused open created the file");
}

#[test]
fn open_errors_carry_errno_and_path() {
    let a = agent(&[]);
    let d = a.dir.path();
    let file = d.join("file");
    fs::write(&file, "x").unwrap();
    let mut c = a.raw();
    let cases = [
        (d.join("missing"), "r", 2, "No such file or directory"),
        (d.join("no/such"), "w", 2, "No such file or directory"),
        (d.to_path_buf(), "r", 21, "Is a directory"),
        (d.to_path_buf(), "w", 21, "Is a directory"),
        (file.join("x"), "r", 20, "Not a directory"),
        (file.join("x"), "w", 20, "Not a directory"),
    ];
    for (path, m, code, desc) in cases {
        let (msg, got) = fails(&mut c, "file-open", json!({"path": s(&path), "mode": m}));
        assert_eq!(got, code, "{}: {msg}", path.display());
        assert_eq!(msg, format!("open {}: {desc}", path.display()));
    }
}

#[test]
fn eacces_as_an_unprivileged_user() {
    let top = tempfile::tempdir().unwrap();
    fs::set_permissions(top.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let secret = top.path().join("secret");
    fs::write(&secret, "root only").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let closed = top.path().join("closed");
    fs::create_dir(&closed).unwrap();
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
    // The agent's own directory, owned by nobody.
    let dir = tempfile::tempdir_in(top.path()).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let a = agent_as_nobody(dir);
    let mut c = a.raw();
    let cases = [
        ("file-open", json!({"path": s(&secret)}), "open", &secret),
        (
            "file-open",
            json!({"path": s(&top.path().join("new")), "mode": "w"}),
            "open",
            &top.path().join("new"),
        ),
        (
            "get-file-md5sum",
            json!({"path": s(&secret)}),
            "open",
            &secret,
        ),
        (
            "directory-list",
            json!({"path": s(&closed)}),
            "open",
            &closed,
        ),
        (
            "directory-create",
            json!({"path": s(&top.path().join("d/e"))}),
            "mkdir",
            &top.path().join("d"),
        ),
        (
            "file-stat",
            json!({"path": s(&closed.join("x"))}),
            "lstat",
            &closed.join("x"),
        ),
    ];
    for (cmd, args, op, path) in cases {
        let (msg, code) = fails(&mut c, cmd, args);
        assert_eq!(code, 13, "{cmd}: {msg}");
        assert_eq!(msg, format!("{op} {}: Permission denied", path.display()));
    }
    // Not the owner: chmod and chown are EPERM.
    let (msg, code) = fails(
        &mut c,
        "file-chmod",
        json!({"path": s(&secret), "perm": 511}),
    );
    assert_eq!(
        (code, msg),
        (
            1,
            format!("chmod {}: Operation not permitted", secret.display())
        )
    );
    assert_eq!(
        fails(
            &mut c,
            "file-chown",
            json!({"path": s(&secret), "uid": 65534})
        )
        .1,
        1
    );
    assert_eq!(mode(&secret), 0o100600);
}

#[test]
fn etxtbsy_and_force() {
    let a = agent(&[]);
    let prog = a.dir.path().join("prog");
    fs::copy("/bin/sleep", &prog).unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    let mut running = Command::new(&prog).arg("60").spawn().unwrap();
    let ino = fs::metadata(&prog).unwrap().ino();
    let mut c = a.raw();
    let (msg, code) = fails(&mut c, "file-open", json!({"path": s(&prog), "mode": "w"}));
    assert_eq!(
        (code, msg),
        (26, format!("open {}: Text file busy", prog.display()))
    );
    assert_eq!(fs::metadata(&prog).unwrap().ino(), ino);
    let h = ok(
        &mut c,
        "file-open",
        json!({"path": s(&prog), "mode": "w", "force": true, "perm": 448}),
    );
    let args = json!({"handle_id": h, "bufb64": STANDARD.encode("#!/bin/sh\n"), "eof": true});
    assert_eq!(ok(&mut c, "file-write", args), true);
    let meta = fs::metadata(&prog).unwrap();
    assert_ne!(meta.ino(), ino, "not a new file");
    assert_eq!(meta.mode(), 0o100700);
    assert_eq!(fs::read(&prog).unwrap(), b"#!/bin/sh\n");
    assert!(
        running.try_wait().unwrap().is_none(),
        "the running program was disturbed"
    );
    running.kill().unwrap();
    running.wait().unwrap();
}
