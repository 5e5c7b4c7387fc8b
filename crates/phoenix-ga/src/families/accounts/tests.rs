//! The family's operations on account files and homes in a temporary directory (never
//! the machine's /etc), checked on what the files hold afterwards.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use sha_crypt::{PasswordVerifier, ShaCrypt};

use super::*;

const UID: u32 = 4321;
const GID: u32 = 4322;
const CMD: &str = "guest-test";

/// A temporary /etc with root, `alice` (in /etc/shadow), `bob` (not in it) and `carol`
/// (an empty password field in /etc/passwd), their homes beside it.
struct Fixture {
    dir: tempfile::TempDir,
    accounts: Accounts,
}

const SHADOW: &str = "root:*:19000:0:99999:7:::\n\
    alice:!:19000:0:99999:7::20000:\n\
    carol:$6$old$hash:19000::::::\n\
    zed:*:1:::::: \n";

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let home = |name: &str| dir.path().join("home").join(name);
        let passwd = format!(
            "root:x:0:0:root:/root:/bin/sh\n\
             alice:x:{UID}:{GID}:Alice:{}:/bin/sh\n\
             bob:x:{}:{GID}::{}:/bin/sh\n\
             carol::{}:{GID}::{}:/bin/sh\n",
            home("alice").display(),
            UID + 1,
            home("bob").display(),
            UID + 2,
            home("carol").display(),
        );
        std::fs::write(etc.join("passwd"), passwd).unwrap();
        std::fs::write(etc.join("shadow"), SHADOW).unwrap();
        std::fs::set_permissions(etc.join("shadow"), PermissionsExt::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(etc.join("shadow"), Some(0), Some(42)).unwrap();
        for name in ["alice", "bob", "carol"] {
            std::fs::create_dir_all(home(name)).unwrap();
        }
        std::os::unix::fs::chown(home("alice"), Some(UID), Some(GID)).unwrap();
        let accounts = Accounts::with_etc(etc, Arc::new(Gate::default()));
        Fixture { dir, accounts }
    }

    fn etc(&self, name: &str) -> String {
        String::from_utf8(std::fs::read(self.dir.path().join("etc").join(name)).unwrap()).unwrap()
    }

    fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join("home").join(name)
    }

    fn set(&self, user: &str, password: &[u8], crypted: bool) -> Result<(), Error> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(password);
        self.accounts.set_password(CMD, user, &b64, crypted)
    }

    fn line(&self, file: &str, user: &str) -> String {
        self.etc(file)
            .lines()
            .find(|l| l.split(':').next() == Some(user))
            .unwrap_or_else(|| panic!("no {user} in {file}"))
            .to_string()
    }
}

fn today() -> String {
    password::today().unwrap().to_string()
}

/// The file without `user`'s line.
fn others(text: &str, user: &str) -> String {
    text.lines()
        .filter(|l| l.split(':').next() != Some(user))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn a_plain_password_is_hashed_into_shadow_and_nothing_else_changes() {
    let f = Fixture::new();
    let passwd = f.etc("passwd");
    f.set("alice", b"s3cret pass:word", false).unwrap();
    let line = f.line("shadow", "alice");
    let fields: Vec<&str> = line.split(':').collect();
    assert_eq!(fields.len(), 9, "{line}");
    assert!(fields[1].starts_with("$6$"), "{line}");
    ShaCrypt::SHA512
        .verify_password(b"s3cret pass:word", fields[1])
        .unwrap();
    assert_eq!(fields[2], today());
    // Ageing fields, expiry and every other line as they were.
    assert_eq!(&fields[3..], ["0", "99999", "7", "", "20000", ""]);
    assert_eq!(others(&f.etc("shadow"), "alice"), others(SHADOW, "alice"));
    assert!(f.etc("shadow").ends_with("zed:*:1:::::: \n"));
    assert_eq!(f.etc("passwd"), passwd);
    let m = std::fs::metadata(f.dir.path().join("etc/shadow")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 42, 0o640));
    assert!(!f.dir.path().join("etc/shadow+").exists());
    assert!(f.dir.path().join("etc/.pwd.lock").exists());
}

#[test]
fn a_crypted_password_is_stored_as_it_came() {
    let f = Fixture::new();
    let hash = "$y$j9T$TNbDQmH63vqfcxZc76apl.$ZVv4WqkHcO/46FPVMaioezx/7rG4dffRHNJIntNYKZ0";
    f.set("alice", hash.as_bytes(), true).unwrap();
    assert_eq!(
        f.line("shadow", "alice"),
        format!("alice:{hash}:{}:0:99999:7::20000:", today())
    );
    f.set("alice", b"!", true).unwrap();
    assert!(f.line("shadow", "alice").starts_with("alice:!:"));
}

#[test]
fn a_user_without_a_shadow_line_gets_one() {
    let f = Fixture::new();
    let passwd = f.etc("passwd");
    f.set("bob", b"pw", false).unwrap();
    let line = f.line("shadow", "bob");
    let fields: Vec<&str> = line.split(':').collect();
    assert_eq!(fields.len(), 9, "{line}");
    ShaCrypt::SHA512.verify_password(b"pw", fields[1]).unwrap();
    assert_eq!(fields[2], today());
    assert!(fields[3..].iter().all(|f| f.is_empty()), "{line}");
    assert!(f.etc("shadow").starts_with(SHADOW), "appended");
    assert_eq!(f.etc("passwd"), passwd);
}

#[test]
fn passwd_is_pointed_at_shadow_when_it_was_not() {
    let f = Fixture::new();
    let passwd = f.etc("passwd");
    f.set("carol", b"pw", false).unwrap();
    let fields: Vec<String> = f.line("shadow", "carol").split(':').map(String::from).collect();
    ShaCrypt::SHA512
        .verify_password(b"pw", fields[1].as_str())
        .unwrap();
    assert_eq!(
        f.etc("passwd"),
        passwd.replace("carol::", "carol:x:"),
        "only carol's field changed"
    );
}

#[test]
fn without_shadow_the_hash_goes_to_passwd() {
    let f = Fixture::new();
    std::fs::remove_file(f.dir.path().join("etc/shadow")).unwrap();
    let passwd = f.etc("passwd");
    f.set("alice", b"pw", false).unwrap();
    let line = f.line("passwd", "alice");
    let hash = line.split(':').nth(1).unwrap();
    ShaCrypt::SHA512.verify_password(b"pw", hash).unwrap();
    assert_eq!(others(&f.etc("passwd"), "alice"), others(&passwd, "alice"));
    assert!(!f.dir.path().join("etc/shadow").exists());
}

#[test]
fn refusals_change_nothing_and_never_quote_the_password() {
    let f = Fixture::new();
    let (passwd, shadow) = (f.etc("passwd"), f.etc("shadow"));
    let secret = "Tr0ub4dor&3";
    let cases: [(&str, Vec<u8>, bool, i32, &str); 8] = [
        ("nobody", secret.into(), false, libc::ENOENT, "failed to lookup user 'nobody'"),
        ("alice", format!("{secret}\n").into(), false, -1, "forbidden characters in raw password"),
        ("alice", format!("{secret}\0x").into(), false, -1, "forbidden characters"),
        ("alice", secret.into(), true, libc::EINVAL, "not a crypt(3) hash"),
        ("alice", format!("$6$salt${secret}:x").into(), true, libc::EINVAL, "not a crypt(3)"),
        ("alice", Vec::new(), false, -1, "the password is empty"),
        ("alice", vec![b'a'; 513], false, -1, "longer than 512 bytes"),
        ("al:ice", secret.into(), false, -1, "forbidden characters in username"),
    ];
    for (user, password, crypted, code, words) in cases {
        let e = f.set(user, &password, crypted).unwrap_err();
        let message = e.message();
        assert_eq!(e.code(), code, "{message}");
        assert!(message.contains(words), "{message}");
        assert!(!message.contains(secret), "{message}");
        assert!(!format!("{e:?}").contains(secret));
    }
    let e = f.accounts.set_password(CMD, "alice", "c2Vj!!", false).unwrap_err();
    assert_eq!(e.message(), "invalid arguments: Base64 data contains invalid characters");
    let e = f.accounts.set_password(CMD, "alice", "c2Vjc", false).unwrap_err();
    assert_eq!(e.message(), "invalid arguments: Base64 data is invalid");
    // Padding may be left out, as glib's decoder allows.
    f.accounts.set_password(CMD, "bob", "cHc", false).unwrap();
    assert_eq!(f.etc("passwd"), passwd);
    assert!(f.etc("shadow").starts_with(&shadow));
}

#[test]
fn refused_once_frozen_while_it_waited() {
    let f = Fixture::new();
    f.accounts.gate.close();
    let e = f.set("alice", b"pw", false).unwrap_err();
    f.accounts.gate.open();
    assert!(matches!(e, Error::Frozen(ref c) if c == CMD), "{e:?}");
    assert_eq!(f.etc("shadow"), SHADOW);
}

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn mode_owner(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

#[test]
fn keys_are_added_listed_and_removed_with_the_user_s_modes() {
    let f = Fixture::new();
    let a = &f.accounts;
    assert_eq!(a.authorized_keys("alice").unwrap(), Vec::<String>::new());
    a.remove_authorized_keys(CMD, "alice", &keys(&["k0"])).unwrap();
    assert!(!f.home("alice").join(".ssh").exists(), "remove creates nothing");
    a.add_authorized_keys(CMD, "alice", &keys(&["ssh-ed25519 AAAA1 one", "ssh-ed25519 AAAA2 two"]), false)
        .unwrap();
    let ssh = f.home("alice").join(".ssh");
    assert_eq!(mode_owner(&ssh), (0o700, UID, GID));
    assert_eq!(mode_owner(&ssh.join("authorized_keys")), (0o600, UID, GID));
    a.add_authorized_keys(CMD, "alice", &keys(&["ssh-ed25519 AAAA3 three", "ssh-ed25519 AAAA1 one"]), false)
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(ssh.join("authorized_keys")).unwrap(),
        "ssh-ed25519 AAAA1 one\nssh-ed25519 AAAA2 two\nssh-ed25519 AAAA3 three\n"
    );
    assert_eq!(
        a.authorized_keys("alice").unwrap(),
        keys(&["ssh-ed25519 AAAA1 one", "ssh-ed25519 AAAA2 two", "ssh-ed25519 AAAA3 three"])
    );
    a.remove_authorized_keys(CMD, "alice", &keys(&["ssh-ed25519 AAAA2 two", "absent"])).unwrap();
    assert_eq!(
        a.authorized_keys("alice").unwrap(),
        keys(&["ssh-ed25519 AAAA1 one", "ssh-ed25519 AAAA3 three"])
    );
    a.add_authorized_keys(CMD, "alice", &keys(&["ssh-ed25519 AAAA9 nine"]), true).unwrap();
    assert_eq!(a.authorized_keys("alice").unwrap(), keys(&["ssh-ed25519 AAAA9 nine"]));
    a.add_authorized_keys(CMD, "alice", &[], true).unwrap();
    assert_eq!(std::fs::read(ssh.join("authorized_keys")).unwrap(), b"");
    let leftovers: Vec<_> = std::fs::read_dir(&ssh).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn keys_added_at_once_from_many_requests_are_all_kept() {
    let f = Fixture::new();
    let a = &f.accounts;
    // Eight requests at once (as from eight connections), ten keys each: each reads
    // the file, adds its key and writes it back; none may write over another's.
    std::thread::scope(|s| {
        for t in 0..8 {
            s.spawn(move || {
                for k in 0..10 {
                    let key = format!("ssh-ed25519 AAAA{t}x{k} t{t}");
                    a.add_authorized_keys(CMD, "alice", &[key], false).unwrap();
                }
            });
        }
    });
    assert_eq!(a.authorized_keys("alice").unwrap().len(), 80);
}

#[test]
fn a_planted_ssh_link_is_refused_and_nothing_is_written_there() {
    let f = Fixture::new();
    let target = f.dir.path().join("etc-like");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("authorized_keys"), b"root's\n").unwrap();
    std::os::unix::fs::symlink(&target, f.home("alice").join(".ssh")).unwrap();
    let before = mode_owner(&target);
    let a = &f.accounts;
    for e in [
        a.add_authorized_keys(CMD, "alice", &keys(&["ssh-ed25519 AAAA x"]), false).unwrap_err(),
        a.add_authorized_keys(CMD, "alice", &keys(&["ssh-ed25519 AAAA x"]), true).unwrap_err(),
        a.remove_authorized_keys(CMD, "alice", &keys(&["root's"])).unwrap_err(),
        a.authorized_keys("alice").unwrap_err(),
    ] {
        assert_eq!(e.code(), libc::ELOOP, "{}", e.message());
        assert!(e.message().ends_with("/.ssh is a symbolic link: refusing to follow it"), "{}", e.message());
    }
    assert_eq!(std::fs::read(target.join("authorized_keys")).unwrap(), b"root's\n");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
    assert_eq!(mode_owner(&target), before);
}

#[test]
fn a_planted_keys_link_is_refused() {
    let f = Fixture::new();
    let ssh = f.home("alice").join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    std::os::unix::fs::chown(&ssh, Some(UID), Some(GID)).unwrap();
    let target = f.dir.path().join("etc/shadow");
    std::os::unix::fs::symlink(&target, ssh.join("authorized_keys")).unwrap();
    let a = &f.accounts;
    for e in [
        a.add_authorized_keys(CMD, "alice", &keys(&["ssh-ed25519 AAAA x"]), false).unwrap_err(),
        a.add_authorized_keys(CMD, "alice", &keys(&["ssh-ed25519 AAAA x"]), true).unwrap_err(),
        a.authorized_keys("alice").unwrap_err(),
        a.remove_authorized_keys(CMD, "alice", &keys(&["root:*:19000:0:99999:7:::"])).unwrap_err(),
    ] {
        assert_eq!(e.code(), libc::ELOOP, "{}", e.message());
        assert!(e.message().contains("authorized_keys is a symbolic link"), "{}", e.message());
    }
    assert_eq!(f.etc("shadow"), SHADOW);
    assert_eq!(mode_owner(&target), (0o640, 0, 42));
}

#[test]
fn other_kinds_of_files_are_refused_without_blocking() {
    let f = Fixture::new();
    let ssh = f.home("alice").join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    nix::unistd::mkfifo(&ssh.join("authorized_keys"), nix::sys::stat::Mode::from_bits_truncate(0o600))
        .unwrap();
    let e = f.accounts.authorized_keys("alice").unwrap_err();
    assert!(e.message().ends_with("authorized_keys is not a regular file"), "{}", e.message());
    std::fs::remove_file(ssh.join("authorized_keys")).unwrap();
    std::fs::write(f.dir.path().join("other"), b"k\n").unwrap();
    std::fs::hard_link(f.dir.path().join("other"), ssh.join("authorized_keys")).unwrap();
    let e = f.accounts.authorized_keys("alice").unwrap_err();
    assert!(e.message().contains("has 2 hard links"), "{}", e.message());
    // A ~/.ssh of another user, and a ~/.ssh that is a file.
    std::fs::remove_file(ssh.join("authorized_keys")).unwrap();
    std::os::unix::fs::chown(&ssh, Some(UID + 7), None).unwrap();
    let e = f.accounts.authorized_keys("alice").unwrap_err();
    assert!(e.message().contains(&format!("belongs to uid {}, not to alice", UID + 7)), "{}", e.message());
    std::fs::remove_dir(&ssh).unwrap();
    std::fs::write(&ssh, b"").unwrap();
    let e = f.accounts.add_authorized_keys(CMD, "alice", &keys(&["k"]), false).unwrap_err();
    assert_eq!(e.code(), libc::ENOTDIR, "{}", e.message());
}

#[test]
fn key_refusals() {
    let f = Fixture::new();
    let a = &f.accounts;
    let e = a.add_authorized_keys(CMD, "alice", &keys(&["ok", "bad\nkey"]), false).unwrap_err();
    assert_eq!(e.message(), "invalid arguments: invalid OpenSSH public key: 'bad\\nkey'");
    assert!(!f.home("alice").join(".ssh").exists());
    let e = a.authorized_keys("nobody").unwrap_err();
    assert_eq!(e.code(), libc::ENOENT);
    let e = a.add_authorized_keys(CMD, "nobody", &keys(&["k"]), false).unwrap_err();
    assert_eq!(e.message(), "failed to lookup user 'nobody': no such user in /etc/passwd");
    std::fs::remove_dir(f.home("bob")).unwrap();
    let e = a.add_authorized_keys(CMD, "bob", &keys(&["k"]), false).unwrap_err();
    assert_eq!(e.code(), libc::ENOENT);
    assert!(e.message().starts_with("open the home directory "), "{}", e.message());
}

#[test]
fn the_walk_to_a_home_follows_root_s_links_only() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir_all(real.join("home")).unwrap();
    let user = |home: PathBuf| passwd::User {
        name: "alice".into(),
        uid: UID,
        gid: GID,
        home,
    };
    let ino = |fd: &std::os::fd::OwnedFd| rustix::fs::fstat(fd).unwrap().st_ino;
    let want = rustix::fs::stat(real.join("home")).unwrap().st_ino;
    // Root's links, absolute and relative, one through another.
    std::os::unix::fs::symlink(&real, tmp.path().join("abs")).unwrap();
    std::os::unix::fs::symlink("abs/home", tmp.path().join("rel")).unwrap();
    for home in ["real/home", "abs/home", "rel", "./rel/", "real/../rel"] {
        let fd = sshdir::open_home(&user(tmp.path().join(home))).unwrap();
        assert_eq!(ino(&fd), want, "{home}");
    }
    // The user's link, anywhere on the way.
    std::os::unix::fs::symlink(&real, tmp.path().join("users")).unwrap();
    std::os::unix::fs::lchown(tmp.path().join("users"), Some(UID), Some(GID)).unwrap();
    std::os::unix::fs::symlink("users/home", tmp.path().join("via")).unwrap();
    for home in ["users/home", "via"] {
        let e = sshdir::open_home(&user(tmp.path().join(home))).unwrap_err();
        assert_eq!(e.code(), libc::ELOOP, "{}", e.message());
        assert!(
            e.message().contains(&format!("users is a symbolic link of uid {UID}, not root's")),
            "{}",
            e.message()
        );
    }
    // A loop, a file on the way, a missing home.
    std::os::unix::fs::symlink("loop", tmp.path().join("loop")).unwrap();
    assert_eq!(
        sshdir::open_home(&user(tmp.path().join("loop"))).unwrap_err().code(),
        libc::ELOOP
    );
    std::fs::write(tmp.path().join("file"), b"").unwrap();
    assert_eq!(
        sshdir::open_home(&user(tmp.path().join("file/home"))).unwrap_err().code(),
        libc::ENOTDIR
    );
    let e = sshdir::open_home(&user(tmp.path().join("missing"))).unwrap_err();
    assert_eq!(e.code(), libc::ENOENT);
    assert_eq!(
        e.message(),
        format!(
            "open the home directory {}: No such file or directory",
            tmp.path().join("missing").display()
        )
    );
}
