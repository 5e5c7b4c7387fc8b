//! Typed file calls and the transfer helpers against the real agent. The agent runs
//! on this machine, so the test checks "guest" files directly.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use phoenix_client::api::files::OpenMode;
use phoenix_client::transfer::{Progress, LARGE_CHUNK};
use phoenix_client::{ClientError, UploadOptions};
use phoenix_testkit::{random_bytes, TestAgent, Tmpfs};

/// Records what a transfer reported.
#[derive(Default)]
struct Seen {
    total: Option<Option<u64>>,
    done: u64,
    calls: usize,
}

impl Progress for Seen {
    fn start(&mut self, total: Option<u64>) {
        self.total = Some(total);
    }
    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        self.calls += 1;
    }
}

#[test]
fn errors_print_like_the_shell_tools() {
    let agent = TestAgent::start(&[]);
    let client = agent.client();
    let nope = agent.path("nope");
    let e = client.file_open(&nope, OpenMode::Read, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "No such file or directory (ENOENT, 2): open {}",
            nope.display()
        )
    );
    assert_eq!(e.errno(), Some(nix::errno::Errno::ENOENT));
}

#[test]
fn raw_file_calls() {
    let agent = TestAgent::start(&[]);
    let client = agent.client();
    let f = agent.path("f");
    let h = client.file_open(&f, OpenMode::Write, Some(0o600)).unwrap();
    client.file_write(h, b"hello ", false).unwrap();
    client.file_write(h, b"world", false).unwrap();
    client.file_write(h, b"", true).unwrap();
    assert_eq!(fs::read(&f).unwrap(), b"hello world");
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o600);

    let h = client.file_open(&f, OpenMode::Read, None).unwrap();
    let c = client.file_read(h, Some(5)).unwrap();
    assert_eq!((c.data.as_slice(), c.eof), (&b"hello"[..], false));
    let c = client.file_read(h, None).unwrap();
    assert_eq!((c.data.as_slice(), c.eof), (&b" world"[..], true));
    // The eof read closed the handle.
    let e = client.file_close(h).unwrap_err();
    assert_eq!(e.errno(), Some(nix::errno::Errno::EBADF), "{e}");

    assert_eq!(
        client.file_md5sum(&f).unwrap(),
        "5eb63bbbe01eeed093cb22bb8f5acdc3"
    );
    client.file_chmod(&f, 0o640).unwrap();
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o640);
    client.file_chown(&f, 4321, -1).unwrap();
    let meta = fs::metadata(&f).unwrap();
    assert_eq!(meta.uid(), 4321);
    let st = client.file_stat(&f).unwrap();
    assert_eq!((st.name.as_str(), st.isdir, st.stat.Size), ("f", false, 11));
    assert_eq!(st.stat.Ino, meta.ino());

    let d = agent.path("a/b");
    client.directory_create(&d, Some(0o700)).unwrap();
    assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o700);
    client.directory_create(&agent.path("c"), None).unwrap();
    assert_eq!(
        fs::metadata(agent.path("c")).unwrap().mode() & 0o7777,
        0o755
    );
    let all = client.directory_list(agent.dir.path(), None).unwrap();
    assert_eq!(all.len(), 4, "ga.sock, f, a, c");
    assert_eq!(
        client
            .directory_list(agent.dir.path(), Some(2))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn download_and_upload_with_md5_check() {
    let agent = TestAgent::start(&[]);
    let client = agent.client();
    assert!(client.info().unwrap().large_chunks());
    let data = random_bytes(3 * LARGE_CHUNK + 12345, 0xf11e);
    let guest = agent.path("guest.bin");
    fs::write(&guest, &data).unwrap();

    let local = agent.path("local.bin");
    let mut seen = Seen::default();
    let t = client.download(&guest, &local, &mut seen).unwrap();
    assert_eq!(t.bytes, data.len() as u64);
    assert!(fs::read(&local).unwrap() == data);
    assert_eq!(seen.total, Some(Some(data.len() as u64)));
    assert_eq!(seen.done, data.len() as u64);
    assert_eq!(
        seen.calls, 4,
        "4 MiB per read: 3 full reads, then the one reaching eof"
    );

    // The agent has file-rename: the upload is written under a temporary name and
    // renamed into place when complete, leaving no temporary file.
    let atomic = agent.path("atomic.bin");
    let t1 = client
        .upload(&local, &atomic, UploadOptions::default(), &mut ())
        .unwrap();
    assert_eq!(t1, t);
    assert!(fs::read(&atomic).unwrap() == data);
    let leftovers: Vec<_> = fs::read_dir(atomic.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let up = agent.path("up.bin");
    let opts = UploadOptions {
        in_place: true,
        perm: Some(0o640),
        ..Default::default()
    };
    let mut seen = Seen::default();
    let t2 = client.upload(&local, &up, opts, &mut seen).unwrap();
    assert_eq!(t2, t);
    assert!(fs::read(&up).unwrap() == data);
    assert_eq!(fs::metadata(&up).unwrap().mode() & 0o7777, 0o640);
    assert_eq!(seen.calls, 4);

    // The original's 4 KiB chunks work too.
    let small = UploadOptions {
        in_place: true,
        chunk: Some(4096),
        ..Default::default()
    };
    let part = &data[..100_000];
    let up2 = agent.path("up2.bin");
    let mut seen = Seen::default();
    client
        .upload_from(&mut &part[..], &up2, small, &mut seen)
        .unwrap();
    assert_eq!(fs::read(&up2).unwrap(), part);
    assert_eq!(seen.calls, 25);

    // Empty files.
    let empty = agent.path("empty");
    client
        .upload_from(&mut &b""[..], &empty, small, &mut ())
        .unwrap();
    assert_eq!(fs::read(&empty).unwrap(), b"");
    let mut out = Vec::new();
    let t = client.download_to(&empty, &mut out, &mut ()).unwrap();
    assert_eq!(
        (t.bytes, t.md5.as_str()),
        (0, "d41d8cd98f00b204e9800998ecf8427e")
    );
}

#[test]
fn a_failed_download_leaves_nothing_behind() {
    let agent = TestAgent::start(&[]);
    let client = agent.client();
    let local = agent.path("out");
    let e = client
        .download(agent.dir.path(), &local, &mut ())
        .unwrap_err();
    assert_eq!(e.errno(), Some(nix::errno::Errno::EISDIR), "{e}");
    let names: Vec<_> = fs::read_dir(agent.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ga.sock"]);
    // A local destination that cannot be created names itself.
    let e = client
        .download(&agent.sock, Path::new("/nonexistent-dir/x"), &mut ())
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent-dir/"), "{e}");
}

#[test]
fn read_file_and_list_dir() {
    let agent = TestAgent::start(&[]);
    let client = agent.client();
    fs::write(agent.path("b"), b"bee").unwrap();
    fs::write(agent.path("a"), b"").unwrap();
    fs::create_dir(agent.path("c")).unwrap();
    assert_eq!(client.read_file(&agent.path("b")).unwrap(), b"bee");
    assert_eq!(client.read_file(&agent.path("a")).unwrap(), b"");
    let names: Vec<String> = client
        .list_dir(agent.dir.path())
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["a", "b", "c", "ga.sock"]);
    let e = client.list_dir(&agent.path("b")).unwrap_err();
    assert_eq!(e.errno(), Some(nix::errno::Errno::ENOTDIR), "{e}");
}

/// Opening a FIFO blocks in the agent until a writer comes: a reply that arrives
/// only when the test lets it, so the timeout is certain and the late reply is stale.
#[test]
fn a_slow_reply_times_out_then_arrives_stale_and_is_discarded() {
    let agent = TestAgent::start(&[]);
    let client = agent.client();
    let fifo = agent.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let args = serde_json::value::to_raw_value(&serde_json::json!({"path": fifo})).unwrap();
    let e = client
        .call_raw("file-open", Some(&args), Some(Duration::from_millis(200)))
        .unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
    // Let the open finish: its reply (a handle number) now comes, late.
    let writer = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    // The next calls resync and get their own replies, never the stale handle.
    assert_eq!(client.ping().unwrap(), "0.9.0");
    let names = client.commands().unwrap();
    assert!(names.contains(&"file-open".to_string()));
    drop(writer);
}

#[test]
fn a_pipelined_upload_that_fails_reports_the_first_error_and_leaves_the_agent_clean() {
    let agent = TestAgent::start(&[]);
    let client = agent.client();
    assert!(client.info().unwrap().ordered_io());
    // The filesystem fills up in the middle of the first chunk, while more writes
    // are already on their way.
    // A 2 MiB tmpfs.
    let small = Tmpfs::mount_at(agent.path("small"), "2m");
    let data = random_bytes(5 * LARGE_CHUNK, 0x5a11);
    let opts = UploadOptions {
        in_place: true,
        ..Default::default()
    };
    let target = small.path().join("big");
    let e = client
        .upload_from(&mut &data[..], &target, opts, &mut ())
        .unwrap_err();
    assert_eq!(e.errno().map(|e| e as i32), Some(28), "{e}");
    let small_chunks = UploadOptions {
        chunk: Some(4096),
        ..opts
    };
    let target2 = small.path().join("small");
    let e = client
        .upload_from(&mut &data[..100_000], &target2, small_chunks, &mut ())
        .unwrap_err();
    assert_eq!(e.errno().map(|e| e as i32), Some(28), "{e}");
    // The connection is still in step and no descriptor is left on either file.
    assert_eq!(client.ping().unwrap(), env!("CARGO_PKG_VERSION"));
    let fds = fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .unwrap()
        .filter_map(|e| fs::read_link(e.unwrap().path()).ok())
        .filter(|t| t.starts_with(small.path()))
        .count();
    assert_eq!(fds, 0, "a handle on the full filesystem is still open");
}
