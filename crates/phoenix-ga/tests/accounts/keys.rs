//! The ssh key commands on a private /etc and throwaway homes: the file's lines, modes
//! and owners, and the planted links refused with nothing written where they point.

use super::*;

const GET: &str = "guest-ssh-get-authorized-keys";
const ADD: &str = "guest-ssh-add-authorized-keys";
const REMOVE: &str = "guest-ssh-remove-authorized-keys";
const UID: u32 = 4301;

const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@host";
const K2: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQTwo two@host";
const K3: &str = "from=\"10.0.0.0/8\",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIThree three";

fn accounts() -> PrivateEtc {
    let etc = PrivateEtc::new();
    etc.add_user("phx-alice", UID, Some("!:19000:0:99999:7:::"));
    etc
}

#[test]
fn keys_are_added_listed_and_removed() {
    for d in BOTH {
        let ours = Ours::start(accounts(), d);
        let home = ours.etc.home("phx-alice");
        let ssh = home.join(".ssh");
        let file = ssh.join("authorized_keys");
        let mut c = ours.conn();
        let user = json!("phx-alice");
        assert_eq!(
            ours.ok(&mut c, GET, json!({"username": user})),
            json!({"keys": []})
        );
        assert_eq!(
            ours.ok(&mut c, REMOVE, json!({"username": user, "keys": [K1]})),
            json!({})
        );
        assert!(!ssh.exists(), "removing creates nothing");

        assert_eq!(
            ours.ok(&mut c, ADD, json!({"username": user, "keys": [K1, K2]})),
            json!({})
        );
        let (mode, uid, gid, _) = stat(&ssh);
        assert_eq!((mode, uid, gid), (0o700, UID, UID));
        let (mode, uid, gid, _) = stat(&file);
        assert_eq!((mode, uid, gid), (0o600, UID, UID));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{K1}\n{K2}\n")
        );

        // Comments and options stay; duplicates are not added; order is the file's.
        std::fs::write(&file, format!("# mine\n{K1}\n\n{K2}\n")).unwrap();
        ours.ok(
            &mut c,
            ADD,
            json!({"username": user, "keys": [K3, K1, format!("  {K3} ")]}),
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("# mine\n{K1}\n\n{K2}\n{K3}\n")
        );
        assert_eq!(
            ours.ok(&mut c, GET, json!({"username": user})),
            json!({"keys": [K1, K2, K3]})
        );
        let inode = stat(&file).3;
        ours.ok(
            &mut c,
            REMOVE,
            json!({"username": user, "keys": [K2, "ssh-ed25519 AAAAabsent"]}),
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("# mine\n{K1}\n\n{K3}\n")
        );
        let (mode, uid, gid, new_inode) = stat(&file);
        assert_eq!((mode, uid, gid), (0o600, UID, UID));
        assert_ne!(new_inode, inode, "replaced, not rewritten in place");

        ours.ok(
            &mut c,
            ADD,
            json!({"username": user, "keys": [K2], "reset": true}),
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{K2}\n"));
        let left: Vec<_> = std::fs::read_dir(&ssh)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["authorized_keys"], "no temporary file left");

        let f = ours.fails(
            &mut c,
            ADD,
            json!({"username": user, "keys": [K1, "bad\nkey"]}),
        );
        assert!(
            f.text.ends_with("invalid OpenSSH public key: 'bad\\nkey'"),
            "{f:?}"
        );
        let f = ours.fails(&mut c, GET, json!({"username": "phx-nobody"}));
        assert!(
            f.text.contains("failed to lookup user 'phx-nobody'"),
            "{f:?}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{K2}\n"));
    }
}

/// A `~/.ssh` pointing at a directory like /root/.ssh (here one outside every home,
/// holding root's keys) is refused by every command, and nothing there changes.
#[test]
fn a_planted_ssh_link_is_refused() {
    for d in BOTH {
        let etc = accounts();
        let root_ssh = etc.outside("root-ssh");
        std::fs::create_dir(&root_ssh).unwrap();
        let roots = root_ssh.join("authorized_keys");
        std::fs::write(&roots, "ssh-ed25519 AAAAroot root@host\n").unwrap();
        let home = etc.home("phx-alice");
        std::os::unix::fs::symlink(&root_ssh, home.join(".ssh")).unwrap();
        let before = (stat(&root_ssh), stat(&roots));
        let ours = Ours::start(etc, d);
        let mut c = ours.conn();
        let user = json!("phx-alice");
        for (name, args) in [
            (ADD, json!({"username": user, "keys": [K1]})),
            (ADD, json!({"username": user, "keys": [K1], "reset": true})),
            (
                REMOVE,
                json!({"username": user, "keys": ["ssh-ed25519 AAAAroot root@host"]}),
            ),
            (GET, json!({"username": user})),
        ] {
            let f = ours.fails(&mut c, name, args);
            assert_eq!(
                f.text,
                format!(
                    "{}/.ssh is a symbolic link: refusing to follow it",
                    home.display()
                ),
                "{name}"
            );
            if d == Dialect::Phoenix {
                assert_eq!(f.code, Some(i64::from(libc::ELOOP)));
            }
        }
        assert_eq!(
            std::fs::read_to_string(&roots).unwrap(),
            "ssh-ed25519 AAAAroot root@host\n"
        );
        assert_eq!((stat(&root_ssh), stat(&roots)), before);
        assert_eq!(std::fs::read_dir(&root_ssh).unwrap().count(), 1);
    }
}

/// An `authorized_keys` pointing at /etc/shadow is refused: nothing of /etc/shadow is
/// read into a reply or a file, and /etc/shadow is as it was.
#[test]
fn a_planted_keys_link_is_refused() {
    for d in BOTH {
        let etc = accounts();
        let ssh = etc.home("phx-alice").join(".ssh");
        std::fs::create_dir(&ssh).unwrap();
        std::os::unix::fs::chown(&ssh, Some(UID), Some(UID)).unwrap();
        // The path the agent sees: the private /etc is mounted on /etc.
        std::os::unix::fs::symlink("/etc/shadow", ssh.join("authorized_keys")).unwrap();
        let shadow = etc.read("shadow");
        let before = stat(&etc.path("shadow"));
        let ours = Ours::start(etc, d);
        let mut c = ours.conn();
        let user = json!("phx-alice");
        for (name, args) in [
            (ADD, json!({"username": user, "keys": [K1]})),
            (ADD, json!({"username": user, "keys": [K1], "reset": true})),
            (
                REMOVE,
                json!({"username": user, "keys": ["root:*:19000:0:99999:7:::"]}),
            ),
            (GET, json!({"username": user})),
        ] {
            let f = ours.fails(&mut c, name, args);
            assert!(
                f.text
                    .ends_with("/.ssh/authorized_keys is a symbolic link: refusing to follow it"),
                "{f:?}"
            );
            assert!(!f.text.contains("root:*"), "{f:?}");
        }
        assert_eq!(ours.etc.read("shadow"), shadow);
        assert_eq!(stat(&ours.etc.path("shadow")), before);
        let link = std::fs::symlink_metadata(ssh.join("authorized_keys")).unwrap();
        assert!(link.file_type().is_symlink(), "the link is left as it was");
        assert_eq!(std::fs::read_dir(&ssh).unwrap().count(), 1);
    }
}

/// The names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `~/.ssh` a link to /etc (the agent's, private): every command refuses, and neither
/// `/etc/authorized_keys` nor anything else appears in /etc, which keeps its owner.
#[test]
fn a_ssh_link_to_etc_is_refused() {
    for d in BOTH {
        let etc = accounts();
        let home = etc.home("phx-alice");
        std::os::unix::fs::symlink("/etc", home.join(".ssh")).unwrap();
        std::os::unix::fs::lchown(home.join(".ssh"), Some(UID), Some(UID)).unwrap();
        let before = (names(&etc.etc()), stat(&etc.etc()), etc.read("shadow"));
        let ours = Ours::start(etc, d);
        let mut c = ours.conn();
        for (name, args) in [
            (ADD, json!({"username": "phx-alice", "keys": [K1]})),
            (
                ADD,
                json!({"username": "phx-alice", "keys": [K1], "reset": true}),
            ),
            (REMOVE, json!({"username": "phx-alice", "keys": [K1]})),
            (GET, json!({"username": "phx-alice"})),
        ] {
            let f = ours.fails(&mut c, name, args);
            assert_eq!(
                f.text,
                format!(
                    "{}/.ssh is a symbolic link: refusing to follow it",
                    home.display()
                ),
                "{name}"
            );
        }
        let after = (
            names(&ours.etc.etc()),
            stat(&ours.etc.etc()),
            ours.etc.read("shadow"),
        );
        assert_eq!(after, before, "/etc untouched");
    }
}

/// A home that is a link the user planted (the user owns the directory above the home
/// and made the home a link to /etc) is refused; a link root made on the way to a home
/// is followed.
#[test]
fn a_home_linked_by_its_user_is_refused_and_root_s_links_are_followed() {
    const MALLORY: u32 = 4302;
    for d in BOTH {
        let etc = accounts();
        // phx-mallory's home is `HOME/inner`, in a directory phx-mallory owns, and
        // `inner` is phx-mallory's link to /etc.
        let above = etc.add_user("phx-mallory", MALLORY, Some("!:19000:0:99999:7:::"));
        let inner = above.join("inner");
        let passwd = etc.read("passwd").replace(
            &format!("{}:", above.display()),
            &format!("{}:", inner.display()),
        );
        std::fs::write(etc.path("passwd"), passwd).unwrap();
        std::os::unix::fs::symlink("/etc", &inner).unwrap();
        std::os::unix::fs::lchown(&inner, Some(MALLORY), Some(MALLORY)).unwrap();
        // phx-alice's home is reached through a link root made.
        let real = etc.home("phx-alice");
        let linked = etc.outside("home/by-root");
        std::os::unix::fs::symlink(&real, &linked).unwrap();
        let passwd = etc.read("passwd").replace(
            &format!("{}:", real.display()),
            &format!("{}:", linked.display()),
        );
        std::fs::write(etc.path("passwd"), passwd).unwrap();
        let before = (names(&etc.etc()), stat(&etc.etc()));

        let ours = Ours::start(etc, d);
        let mut c = ours.conn();
        for (name, args) in [
            (ADD, json!({"username": "phx-mallory", "keys": [K1]})),
            (REMOVE, json!({"username": "phx-mallory", "keys": [K1]})),
            (GET, json!({"username": "phx-mallory"})),
        ] {
            let f = ours.fails(&mut c, name, args);
            assert_eq!(
                f.text,
                format!(
                    "the home directory {}: inner is a symbolic link of uid {MALLORY}, not \
                     root's: refusing to follow it",
                    inner.display()
                ),
                "{name}"
            );
            if d == Dialect::Phoenix {
                assert_eq!(f.code, Some(i64::from(libc::ELOOP)));
            }
        }
        assert_eq!((names(&ours.etc.etc()), stat(&ours.etc.etc())), before);

        ours.ok(&mut c, ADD, json!({"username": "phx-alice", "keys": [K1]}));
        let file = real.join(".ssh/authorized_keys");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{K1}\n"));
        assert_eq!(
            ours.ok(&mut c, GET, json!({"username": "phx-alice"})),
            json!({"keys": [K1]})
        );
    }
}

/// An `authorized_keys` that is a hard link to /etc/shadow (possible where
/// `fs.protected_hardlinks` is off) or a FIFO (which would block a reader) is not read,
/// and a `~/.ssh` of another user is refused.
#[test]
fn hard_links_fifos_and_foreign_directories_are_refused() {
    for d in BOTH {
        let etc = accounts();
        let ssh = etc.home("phx-alice").join(".ssh");
        std::fs::create_dir(&ssh).unwrap();
        std::os::unix::fs::chown(&ssh, Some(UID), Some(UID)).unwrap();
        // Made by root here; the same file as the private /etc/shadow.
        std::fs::hard_link(etc.path("shadow"), ssh.join("authorized_keys")).unwrap();
        let shadow = etc.read("shadow");
        let ours = Ours::start(etc, d);
        let mut c = ours.conn();
        for (name, args) in [
            (ADD, json!({"username": "phx-alice", "keys": [K1]})),
            (GET, json!({"username": "phx-alice"})),
        ] {
            let f = ours.fails(&mut c, name, args);
            assert!(
                f.text
                    .ends_with("authorized_keys has 2 hard links: refusing to read it"),
                "{f:?}"
            );
            assert!(!f.text.contains("root:*"), "{f:?}");
        }
        assert_eq!(ours.etc.read("shadow"), shadow);

        std::fs::remove_file(ssh.join("authorized_keys")).unwrap();
        nix::unistd::mkfifo(&ssh.join("authorized_keys"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let f = ours.fails(&mut c, GET, json!({"username": "phx-alice"}));
        assert!(f.text.ends_with("is not a regular file"), "{f:?}");

        std::fs::remove_file(ssh.join("authorized_keys")).unwrap();
        std::os::unix::fs::chown(&ssh, Some(UID + 7), Some(UID + 7)).unwrap();
        let f = ours.fails(&mut c, ADD, json!({"username": "phx-alice", "keys": [K1]}));
        assert!(
            f.text
                .contains(&format!("belongs to uid {}, not to phx-alice", UID + 7)),
            "{f:?}"
        );
        assert_eq!(std::fs::read_dir(&ssh).unwrap().count(), 0);
    }
}

/// What `virsh set-user-sshkeys --file` sends: the file split at each newline, so an
/// empty key after the last one (and a `\r` at the end of each key of a CRLF file).
/// The blank keys are skipped and the `\r`s dropped; a comment is still refused.
#[test]
fn keys_as_virsh_sends_them() {
    for d in BOTH {
        let ours = Ours::start(accounts(), d);
        let file = ours.etc.home("phx-alice").join(".ssh/authorized_keys");
        let mut c = ours.conn();
        let user = json!("phx-alice");
        ours.ok(&mut c, ADD, json!({"username": user, "keys": [K1, K2, ""]}));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{K1}\n{K2}\n")
        );
        ours.ok(
            &mut c,
            ADD,
            json!({"username": user, "keys": [format!("{K3}\r"), format!("{K1}\r"), ""], "reset": true}),
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{K3}\n{K1}\n")
        );
        std::fs::write(&file, format!("{K3}\n\n{K1}\n")).unwrap();
        ours.ok(&mut c, REMOVE, json!({"username": user, "keys": [K1, ""]}));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{K3}\n\n"),
            "the user's blank line stays"
        );
        let f = ours.fails(&mut c, ADD, json!({"username": user, "keys": ["# c", ""]}));
        assert!(
            f.text.ends_with("invalid OpenSSH public key: '# c'"),
            "{f:?}"
        );
    }
}
