//! `passwd` and `ssh-keys` against agents on a private /etc and private homes
//! (`PrivateEtc`: a mount namespace of their own, throwaway users that exist only
//! there): phoenix-ga in both dialects, and Debian's qemu-ga for the keys. The tests
//! look at the private /etc/shadow (checked with OpenSSL's crypt) and
//! `authorized_keys` afterwards. The password from a terminal is typed on a pty whose
//! echo the test reads back.

mod common;

use std::io::{BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use common::ctl_at as ctl;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::termios::{tcgetattr, LocalFlags};
use phoenix_testkit::{agent_binary, Launch, PrivateEtc, QemuGa, TestAgent};

const CTL: &str = env!("CARGO_BIN_EXE_phoenix-ctl");
const UID: u32 = 4601;
const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICtlOne one@host";
const K2: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCtlTwo two@host";

fn accounts() -> PrivateEtc {
    let etc = PrivateEtc::new();
    etc.add_user("phx-alice", UID, Some("!:19000:0:99999:7:::"));
    etc
}

/// Our agent on `etc`, in `dialect`.
fn ours(etc: &PrivateEtc, dialect: &str) -> TestAgent {
    Launch::new(agent_binary())
        .wrapper(&etc.wrapper())
        .start(&["--dialect", dialect])
}

fn ok(sock: &Path, args: &[&str], stdin: &[u8]) -> String {
    let out = ctl(sock, args, stdin);
    assert!(
        out.status.success(),
        "phoenix-ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(sock: &Path, args: &[&str], stdin: &[u8]) -> (i32, String) {
    let out = ctl(sock, args, stdin);
    assert!(!out.status.success(), "phoenix-ctl {args:?} succeeded");
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The hash field of `user`'s line in the private /etc/shadow.
fn hash_of(etc: &PrivateEtc, user: &str) -> String {
    etc.read("shadow")
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .and_then(|l| l.split(':').nth(1))
        .unwrap()
        .to_string()
}

/// OpenSSL's crypt of `password` with the salt and method of `hash`.
fn openssl_crypt(password: &str, hash: &str) -> String {
    let salt = hash.split('$').nth(2).expect("a $6$ hash");
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn passwd_from_stdin_and_crypted_in_both_dialects() {
    for dialect in ["phoenix", "qga"] {
        let etc = accounts();
        let agent = ours(&etc, dialect);
        let sock = agent.sock.as_path();
        assert_eq!(ok(sock, &["passwd", "phx-alice"], b"pw from stdin\n"), "");
        let hash = hash_of(&etc, "phx-alice");
        assert_eq!(hash, openssl_crypt("pw from stdin", &hash), "{dialect}");
        // CRLF, and only the first line.
        ok(sock, &["passwd", "phx-alice"], b"second pw\r\nignored\n");
        let hash = hash_of(&etc, "phx-alice");
        assert_eq!(hash, openssl_crypt("second pw", &hash), "{dialect}");

        let crypted = openssl_crypt("crypted pw", "$6$ctlSALTctlSALT1$");
        let out = ok(
            sock,
            &["--json", "passwd", "--crypted", "phx-alice"],
            format!("{crypted}\n").as_bytes(),
        );
        assert_eq!(out, "true\n");
        assert_eq!(hash_of(&etc, "phx-alice"), crypted);

        // Nothing to set: a usage error, nothing sent.
        let shadow = etc.read("shadow");
        assert_eq!(fails(sock, &["passwd", "phx-alice"], b"").0, 2);
        assert_eq!(fails(sock, &["passwd", "phx-alice"], b"\n").0, 2);
        let (code, err) = fails(sock, &["passwd", "--crypted", "phx-alice"], b"plain\n");
        assert_eq!(code, 1);
        assert!(err.contains("not a crypt(3) hash"), "{err}");
        let (code, err) = fails(sock, &["passwd", "phx-nobody"], b"pw\n");
        assert_eq!(code, 1);
        assert!(err.contains("failed to lookup user 'phx-nobody'"), "{err}");
        assert_eq!(etc.read("shadow"), shadow);
    }
}

/// A pty whose slave is in the terminal's usual mode (echo on): the master, and the
/// slave opened as a file.
fn pty() -> (nix::pty::PtyMaster, std::fs::File) {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let path = ptsname_r(&master).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(path)
        .unwrap();
    (master, slave)
}

/// Types `lines` on a terminal for `phoenix-ctl passwd phx-alice`, each after a
/// prompt; the exit status, stderr, and everything the terminal echoed.
fn passwd_on_a_tty(sock: &Path, lines: &[&str]) -> (i32, String, String) {
    let (master, slave) = pty();
    let mut child = Command::new(CTL)
        .arg("-s")
        .arg(sock)
        .args(["passwd", "phx-alice"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut master_file = master;
    for line in lines {
        // Wait for the prompt (it is printed once echo is off).
        let mut prompt = Vec::new();
        while !prompt.ends_with(b": ") {
            let mut byte = [0u8; 1];
            if stderr.read(&mut byte).unwrap() == 0 {
                break;
            }
            prompt.push(byte[0]);
        }
        seen.push_str(&String::from_utf8_lossy(&prompt));
        master_file
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    // What the terminal showed: read without blocking.
    let flags = fcntl(master_file.as_raw_fd(), FcntlArg::F_GETFL).unwrap();
    fcntl(
        master_file.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut echoed = Vec::new();
    let _ = master_file.read_to_end(&mut echoed);
    // Echo is back on for whoever uses the terminal next.
    let t = tcgetattr(slave.as_fd()).unwrap();
    assert!(t.local_flags.contains(LocalFlags::ECHO), "echo left off");
    (
        status.code().unwrap(),
        seen,
        String::from_utf8_lossy(&echoed).into_owned(),
    )
}

#[test]
fn passwd_on_a_terminal_reads_twice_without_echo() {
    let etc = accounts();
    let agent = ours(&etc, "phoenix");
    let sock = agent.sock.as_path();
    let (code, stderr, echoed) = passwd_on_a_tty(sock, &["typed secret", "typed secret"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("New password for phx-alice: ")
            && stderr.contains("Retype the new password for phx-alice: "),
        "{stderr}"
    );
    assert!(!echoed.contains("typed secret"), "echoed: {echoed:?}");
    let hash = hash_of(&etc, "phx-alice");
    assert_eq!(hash, openssl_crypt("typed secret", &hash));

    let shadow = etc.read("shadow");
    let (code, stderr, _) = passwd_on_a_tty(sock, &["one", "two"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("the passwords do not match"), "{stderr}");
    assert_eq!(etc.read("shadow"), shadow);
}

/// Ctrl-C (SIGINT) while the password is asked for: the process ends by the signal,
/// and the terminal has its echo back; nothing is set.
#[test]
fn an_interrupted_passwd_gives_the_terminal_its_echo_back() {
    let etc = accounts();
    let agent = ours(&etc, "phoenix");
    let shadow = etc.read("shadow");
    for signal in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let (_master, slave) = pty();
        let mut child = Command::new(CTL)
            .arg("-s")
            .arg(&agent.sock)
            .args(["passwd", "phx-alice"])
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let mut prompt = Vec::new();
        while !prompt.ends_with(b": ") {
            let mut byte = [0u8; 1];
            assert_eq!(stderr.read(&mut byte).unwrap(), 1, "no prompt");
            prompt.push(byte[0]);
        }
        let t = tcgetattr(slave.as_fd()).unwrap();
        assert!(
            !t.local_flags.contains(LocalFlags::ECHO),
            "echo on while asking"
        );
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(signal as i32)
        );
        let t = tcgetattr(slave.as_fd()).unwrap();
        assert!(
            t.local_flags.contains(LocalFlags::ECHO),
            "echo left off ({signal})"
        );
    }
    assert_eq!(etc.read("shadow"), shadow);
}

#[test]
fn ssh_keys_against_both_dialects_and_qemu_ga() {
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keys.path(), format!("# my keys\n{K1}\n\n{K2}\n")).unwrap();
    let file = keys.path().to_str().unwrap();
    for peer in ["phoenix", "qga", "qemu-ga"] {
        let etc = accounts();
        let (_ours, _qemu, sock) = if peer == "qemu-ga" {
            let q = QemuGa::start(&etc.wrapper(), &[]);
            let sock = q.sock.clone();
            (None, Some(q), sock)
        } else {
            let a = ours(&etc, peer);
            let sock = a.sock.clone();
            (Some(a), None, sock)
        };
        let sock = sock.as_path();
        let path = etc.home("phx-alice").join(".ssh/authorized_keys");
        let read = || std::fs::read_to_string(&path).unwrap();

        assert_eq!(ok(sock, &["ssh-keys", "add", "phx-alice", file], b""), "");
        assert_eq!(read().trim_end(), format!("{K1}\n{K2}"), "{peer}");
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!((m.mode() & 0o777, m.uid(), m.gid()), (0o600, UID, UID));
        // From stdin, already there: not added twice.
        ok(
            sock,
            &["ssh-keys", "add", "phx-alice"],
            format!("{K1}\n").as_bytes(),
        );
        assert_eq!(read().trim_end(), format!("{K1}\n{K2}"), "{peer}");

        let mut listed: Vec<String> = ok(sock, &["ssh-keys", "list", "phx-alice"], b"")
            .lines()
            .map(String::from)
            .collect();
        // qemu-ga lists them backwards.
        listed.sort();
        let mut want = vec![K1.to_string(), K2.to_string()];
        want.sort();
        assert_eq!(listed, want, "{peer}");
        let json = ok(sock, &["--json", "ssh-keys", "list", "phx-alice"], b"");
        let mut json: Vec<String> = serde_json::from_str(&json).unwrap();
        json.sort();
        assert_eq!(json, want);

        ok(
            sock,
            &["ssh-keys", "remove", "phx-alice", "-"],
            format!("{K1}\n").as_bytes(),
        );
        assert_eq!(read().trim_end(), K2, "{peer}");
        ok(
            sock,
            &["ssh-keys", "add", "--reset", "phx-alice", file],
            b"",
        );
        assert_eq!(read().trim_end(), format!("{K1}\n{K2}"), "{peer}");
        assert_eq!(
            ok(
                sock,
                &[
                    "--json",
                    "ssh-keys",
                    "add",
                    "--reset",
                    "phx-alice",
                    "/dev/null"
                ],
                b""
            ),
            "true\n"
        );
        assert_eq!(read().trim(), "", "{peer}");

        // Usage errors and the agent's refusals.
        assert_eq!(
            fails(sock, &["ssh-keys", "add", "phx-alice"], b"\n# only\n").0,
            2
        );
        assert_eq!(fails(sock, &["ssh-keys", "remove", "phx-alice"], b"").0, 2);
        let (code, err) = fails(sock, &["ssh-keys", "add", "phx-alice", "/nonexistent"], b"");
        assert_eq!(code, 1);
        assert!(err.contains("open /nonexistent"), "{err}");
        let (code, err) = fails(sock, &["ssh-keys", "list", "phx-nobody"], b"");
        assert_eq!(code, 1, "{peer}: {err}");
    }
}
