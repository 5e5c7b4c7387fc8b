//! ls, stat, cat, md5sum, mkdir, chmod, chown and cp, human and JSON output, checked
//! against what the filesystem shows. The agent runs on this machine, so guest paths
//! are paths in the test's temporary directory.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{ctl, ctl_with_input, fails, json, ok, TestAgent};
use phoenix_testkit::{md5_of, path_str as s, random_bytes};

fn tree(agent: &TestAgent) -> std::path::PathBuf {
    let d = agent.path("tree");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("small.txt"), b"hello\n").unwrap();
    fs::write(d.join("big.bin"), vec![7u8; 3 << 20]).unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink("small.txt", d.join("link")).unwrap();
    d
}

#[test]
fn ls_short_long_and_json() {
    let agent = TestAgent::start(&[]);
    let d = tree(&agent);
    assert_eq!(
        ok(&agent, &["ls", s(&d)]),
        "big.bin\nlink\nsmall.txt\nsub\n"
    );

    let long = ok(&agent, &["ls", "-l", s(&d)]);
    let lines: Vec<&str> = long.lines().collect();
    assert_eq!(lines.len(), 4, "{long}");
    assert!(
        lines[0].starts_with("-rw-r--r--") || lines[0].starts_with("-rw-"),
        "{long}"
    );
    assert!(
        lines[0].contains(" 3.0M ") && lines[0].ends_with(" big.bin"),
        "{long}"
    );
    assert!(
        lines[1].starts_with('l') && lines[1].ends_with(" link"),
        "{long}"
    );
    assert!(
        lines[2].contains(" 6 ") && lines[2].ends_with(" small.txt"),
        "{long}"
    );
    assert!(
        lines[3].starts_with('d') && lines[3].ends_with(" sub"),
        "{long}"
    );
    // Columns are aligned: every name starts at the same offset.
    let at: Vec<usize> = lines.iter().map(|l| l.rfind(' ').unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] == w[1]), "{long}");

    let v = json(&agent, &["ls", s(&d)]);
    let entries = v.as_array().unwrap();
    assert_eq!(entries.len(), 4);
    let small = entries.iter().find(|e| e["name"] == "small.txt").unwrap();
    assert_eq!(small["isdir"], false);
    assert_eq!(small["stat"]["Size"], 6);
    let meta = fs::metadata(d.join("small.txt")).unwrap();
    assert_eq!(small["stat"]["Ino"], meta.ino());
    let sub = entries.iter().find(|e| e["name"] == "sub").unwrap();
    assert_eq!(sub["isdir"], true);

    // A file lists as itself.
    let one = ok(&agent, &["ls", s(&d.join("small.txt"))]);
    assert_eq!(one.trim_end(), s(&d.join("small.txt")));
}

#[test]
fn stat_human_and_json() {
    let agent = TestAgent::start(&[]);
    let d = tree(&agent);
    let f = d.join("small.txt");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    let meta = fs::symlink_metadata(&f).unwrap();
    let text = ok(&agent, &["stat", s(&f)]);
    assert!(text.contains("Type:    regular file"), "{text}");
    assert!(text.contains("Size:    6 (6)"), "{text}");
    assert!(text.contains("Mode:    0640 (-rw-r-----)"), "{text}");
    assert!(text.contains(&format!("Inode:   {}", meta.ino())), "{text}");
    let v = json(&agent, &["stat", s(&f)]);
    assert_eq!(v["name"], "small.txt");
    assert_eq!(v["stat"]["Mode"], meta.mode());
    assert_eq!(v["stat"]["Mtim"]["Sec"], meta.mtime());
    let text = ok(&agent, &["stat", s(&d.join("link"))]);
    assert!(text.contains("symbolic link"), "{text}");
}

#[test]
fn cat_md5sum_human_and_json() {
    let agent = TestAgent::start(&[]);
    let d = tree(&agent);
    let data = random_bytes(5 << 20, 1);
    fs::write(d.join("noise"), &data).unwrap();
    let out = ctl(&agent, &["cat", s(&d.join("noise"))]);
    assert!(out.status.success());
    assert!(out.stdout == data, "cat returns the bytes");
    let v = json(&agent, &["cat", s(&d.join("small.txt"))]);
    assert_eq!(v["size"], 6);
    assert_eq!(v["bufb64"], "aGVsbG8K");

    let sum = md5_of(&data);
    assert_eq!(
        ok(&agent, &["md5sum", s(&d.join("noise"))]),
        format!("{sum}  {}\n", s(&d.join("noise")))
    );
    let v = json(&agent, &["md5sum", s(&d.join("noise"))]);
    assert_eq!(v["md5"], sum);
}

#[test]
fn mkdir_chmod_chown_change_the_filesystem() {
    let agent = TestAgent::start(&[]);
    let d = agent.path("made/deep/er");
    assert_eq!(ok(&agent, &["mkdir", "-m", "700", s(&d)]), "");
    let meta = fs::metadata(&d).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o7777, 0o700);
    assert_eq!(
        fs::metadata(agent.path("made")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(json(&agent, &["mkdir", s(&agent.path("other"))]), true);
    assert_eq!(
        fs::metadata(agent.path("other")).unwrap().mode() & 0o7777,
        0o755
    );

    let f = agent.path("f");
    fs::write(&f, b"x").unwrap();
    assert_eq!(ok(&agent, &["chmod", "4751", s(&f)]), "");
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o4751);
    assert_eq!(json(&agent, &["chmod", "600", s(&f)]), true);
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o600);

    assert_eq!(ok(&agent, &["chown", "1234:5678", s(&f)]), "");
    let meta = fs::metadata(&f).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
    assert_eq!(json(&agent, &["chown", ":42", s(&f)]), true);
    let meta = fs::metadata(&f).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1234, 42), "uid unchanged");
    ok(&agent, &["chown", "7", s(&f)]);
    let meta = fs::metadata(&f).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (7, 42), "gid unchanged");
}

#[test]
fn file_errors_exit_1_with_errno() {
    let agent = TestAgent::start(&[]);
    let nope = agent.path("nope");
    for cmd in ["stat", "cat", "md5sum", "ls"] {
        let (code, err) = fails(&agent, &[cmd, s(&nope)]);
        assert_eq!(code, 1, "{cmd}");
        assert!(
            err.contains("No such file or directory (ENOENT, 2): ") && err.contains(s(&nope)),
            "{cmd}: {err}"
        );
    }
    let (code, err) = fails(&agent, &["chmod", "644", s(&nope)]);
    assert_eq!(code, 1);
    assert!(err.contains("(ENOENT, 2)"), "{err}");
    let (code, err) = fails(&agent, &["cat", s(agent.dir.path())]);
    assert_eq!(code, 1);
    assert!(err.contains("(EISDIR, 21)"), "{err}");
}

#[test]
fn cp_50_mib_both_ways() {
    let agent = TestAgent::start(&[]);
    let data = random_bytes(50 << 20, 2);
    let sum = md5_of(&data);
    let src = agent.path("local-src");
    fs::write(&src, &data).unwrap();
    let guest = agent.path("guest-copy");

    // An upload goes to a temporary name and is renamed into place when complete.
    let v = json(&agent, &["cp", s(&src), &format!("guest:{}", s(&guest))]);
    assert_eq!(v["bytes"], 50 << 20);
    assert_eq!(v["md5"], sum);
    assert_eq!(md5_of(&fs::read(&guest).unwrap()), sum);
    // --in-place writes the destination directly.
    let direct = agent.path("guest-direct");
    let v = json(
        &agent,
        &[
            "cp",
            "--in-place",
            s(&src),
            &format!("guest:{}", s(&direct)),
        ],
    );
    assert_eq!(v["md5"], sum);
    assert_eq!(md5_of(&fs::read(&direct).unwrap()), sum);

    let back = agent.path("local-back");
    assert_eq!(
        ok(&agent, &["cp", &format!("guest:{}", s(&guest)), s(&back)]),
        "",
        "cp is silent without --json"
    );
    assert_eq!(md5_of(&fs::read(&back).unwrap()), sum);
    // No temporary file is left beside the destination.
    let names: Vec<_> = fs::read_dir(agent.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".part")), "{names:?}");
}

#[test]
fn cp_with_stdin_stdout_and_directories() {
    let agent = TestAgent::start(&[]);
    let data = random_bytes(100_000, 3);
    let dst = agent.path("from-stdin");
    let out = ctl_with_input(
        &agent,
        &[
            "cp",
            "--in-place",
            "-m",
            "600",
            "-",
            &format!("guest:{}", s(&dst)),
        ],
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fs::read(&dst).unwrap() == data);
    assert_eq!(fs::metadata(&dst).unwrap().mode() & 0o7777, 0o600);

    let out = ctl(&agent, &["cp", &format!("guest:{}", s(&dst)), "-"]);
    assert!(out.status.success());
    assert!(out.stdout == data, "cp to - writes the bytes to stdout");

    // Into a guest directory: the source's name is kept.
    let gdir = agent.path("gdir");
    fs::create_dir(&gdir).unwrap();
    let src = agent.path("named.bin");
    fs::write(&src, b"named").unwrap();
    ok(
        &agent,
        &["cp", "--in-place", s(&src), &format!("guest:{}", s(&gdir))],
    );
    assert_eq!(fs::read(gdir.join("named.bin")).unwrap(), b"named");
    // Into a local directory, likewise.
    let ldir = agent.path("ldir");
    fs::create_dir(&ldir).unwrap();
    ok(&agent, &["cp", &format!("guest:{}", s(&src)), s(&ldir)]);
    assert_eq!(fs::read(ldir.join("named.bin")).unwrap(), b"named");
}

#[test]
fn cp_of_a_missing_file_fails_clearly_and_creates_nothing() {
    let agent = TestAgent::start(&[]);
    let missing = agent.path("missing");
    let dst = agent.path("dst");
    let (code, err) = fails(&agent, &["cp", &format!("guest:{}", s(&missing)), s(&dst)]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "phoenix-ctl: No such file or directory (ENOENT, 2): open {}\n",
            s(&missing)
        )
    );
    let names: Vec<_> = fs::read_dir(agent.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["ga.sock"], "no file and no temporary left");

    // Uploading a missing local file names the local path.
    let (code, err) = fails(
        &agent,
        &[
            "cp",
            "--in-place",
            s(&missing),
            &format!("guest:{}", s(&dst)),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains(&format!("open {}", s(&missing))), "{err}");
    assert!(!dst.exists());

    let (code, err) = fails(&agent, &["cp", "a", "b"]);
    assert_eq!(code, 2);
    assert!(err.contains("guest:"), "{err}");
}

#[test]
fn a_reply_that_does_not_come_in_time_exits_3() {
    let agent = TestAgent::start(&[]);
    // Opening a FIFO blocks in the agent until a writer comes, which never happens.
    let fifo = agent.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (code, err) = fails(&agent, &["--timeout", "0.3", "cat", s(&fifo)]);
    assert_eq!(code, 3);
    assert_eq!(err, "phoenix-ctl: file-open: no reply within 300ms\n");
    // The agent is fine: the next connection resyncs and gets its own replies.
    assert_eq!(ok(&agent, &["ping"]), "0.9.0\n");
}

#[test]
fn cat_into_a_closed_pipe_is_not_an_error() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let agent = TestAgent::start(&[]);
    let big = agent.path("big");
    fs::write(&big, random_bytes(20 << 20, 4)).unwrap();
    let mut child = Command::new(common::CTL)
        .arg("-s")
        .arg(&agent.sock)
        .args(["cat", s(&big)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // stdout is closed here, as `| head -c 10` does.
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
}
