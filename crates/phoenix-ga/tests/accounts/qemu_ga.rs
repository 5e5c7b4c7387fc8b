//! Against Debian's qemu-ga, each agent on a private /etc of its own with the same
//! throwaway users: the same requests get replies of the same shape and errors of the
//! same class, with the same words where qemu-ga's are the schema's or its own checks'.
//! Where the two differ on purpose (docs/commands/accounts.md), the test says so and
//! checks both sides, qemu-ga's included, so that the documentation stays true.
//!
//! qemu-ga is never asked to set a password: it would run `chpasswd`, whose PAM stack
//! logs to this machine's syslog and flushes its nscd cache even from the private
//! namespace. Its password commands here fail before anything is written (argument
//! errors, an unknown user); its key commands, which it runs itself, write only in
//! the test's temporary homes and the private /etc.

use phoenix_testkit::{qga_call, shape, QemuGa};

use super::*;

const UID: u32 = 4401;
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey one@host";
const KEY2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey two@host";

fn accounts() -> PrivateEtc {
    let etc = PrivateEtc::new();
    etc.add_user("phx-alice", UID, Some("!:19000:0:99999:7:::"));
    etc.add_user("phx-bob", UID + 1, None);
    etc
}

/// Both agents, each on its own private /etc.
struct Pair {
    ours: Ours,
    qemu: QemuGa,
    qemu_etc: PrivateEtc,
}

impl Pair {
    fn start() -> Self {
        let qemu_etc = accounts();
        let qemu = QemuGa::start(&qemu_etc.wrapper(), &[]);
        Pair {
            ours: Ours::start(accounts(), Dialect::Qga),
            qemu,
            qemu_etc,
        }
    }
}

/// The request sent to both, and the two replies.
fn both(ours: &mut RawConn, qemu: &mut RawConn, name: &str, args: Value) -> (Value, Value) {
    (
        qga_call(ours, name, args.clone()),
        qga_call(qemu, name, args),
    )
}

#[test]
fn same_shapes_classes_and_words() {
    let p = Pair::start();
    let (mut ours, mut qemu) = (p.ours.conn(), p.qemu.raw());
    let pw = b64(b"pw");
    // Same class and the same words.
    let same_words = [
        (
            "guest-set-user-password",
            json!({"username": "phx-alice", "password": pw}),
        ),
        (
            "guest-set-user-password",
            json!({"username": "phx-alice", "password": pw, "crypted": "no"}),
        ),
        (
            "guest-set-user-password",
            json!({"username": "phx-alice", "password": pw, "crypted": false, "x": 1}),
        ),
        (
            "guest-set-user-password",
            json!({"username": "phx-alice", "password": "!!!", "crypted": false}),
        ),
        (
            "guest-set-user-password",
            json!({"username": "phx-alice", "password": b64(b"a\nb"), "crypted": false}),
        ),
        (
            "guest-set-user-password",
            json!({"username": "phx:alice", "password": pw, "crypted": false}),
        ),
        ("guest-ssh-get-authorized-keys", json!({})),
        (
            "guest-ssh-add-authorized-keys",
            json!({"username": "phx-alice", "keys": "x"}),
        ),
        (
            "guest-ssh-add-authorized-keys",
            json!({"username": "phx-alice", "keys": [KEY], "reset": 1}),
        ),
        (
            "guest-ssh-add-authorized-keys",
            json!({"username": "phx-alice", "keys": ["# comment"]}),
        ),
        (
            "guest-ssh-remove-authorized-keys",
            json!({"username": "phx-alice", "keys": ["# comment"]}),
        ),
        (
            "guest-ssh-remove-authorized-keys",
            json!({"username": "phx-alice", "keys": [KEY], "reset": true}),
        ),
    ];
    for (name, args) in same_words {
        let (a, b) = both(&mut ours, &mut qemu, name, args.clone());
        assert_eq!(qga_err(&a), qga_err(&b), "{name} {args}");
    }
    // Same class, our own words (qemu-ga's come from chpasswd or say "Success"; we
    // escape the line break of a key where qemu-ga quotes it raw).
    let same_class = [
        (
            "guest-ssh-add-authorized-keys",
            json!({"username": "phx-alice", "keys": ["bad\nkey"]}),
        ),
        (
            "guest-ssh-remove-authorized-keys",
            json!({"username": "phx-alice", "keys": ["bad\nkey"]}),
        ),
        (
            "guest-set-user-password",
            json!({"username": "phx-nobody", "password": pw, "crypted": false}),
        ),
        (
            "guest-ssh-get-authorized-keys",
            json!({"username": "phx-nobody"}),
        ),
        (
            "guest-ssh-add-authorized-keys",
            json!({"username": "phx-nobody", "keys": [KEY]}),
        ),
        (
            "guest-ssh-remove-authorized-keys",
            json!({"username": "phx-nobody", "keys": [KEY]}),
        ),
    ];
    for (name, args) in same_class {
        let (a, b) = both(&mut ours, &mut qemu, name, args.clone());
        assert_eq!(qga_err(&a).0, "GenericError", "{name}: {a}");
        assert_eq!(qga_err(&b).0, "GenericError", "{name}: {b}");
    }
    // Successes: the same shapes.
    let successes = [
        (
            "guest-ssh-add-authorized-keys",
            json!({"username": "phx-alice", "keys": [KEY, KEY2]}),
        ),
        (
            "guest-ssh-add-authorized-keys",
            json!({"username": "phx-alice", "keys": [KEY]}),
        ),
        (
            "guest-ssh-get-authorized-keys",
            json!({"username": "phx-alice"}),
        ),
        (
            "guest-ssh-remove-authorized-keys",
            json!({"username": "phx-alice", "keys": ["ssh-ed25519 AAAAabsent"]}),
        ),
        (
            "guest-ssh-remove-authorized-keys",
            json!({"username": "phx-alice", "keys": [KEY2]}),
        ),
        (
            "guest-ssh-add-authorized-keys",
            json!({"username": "phx-alice", "keys": [], "reset": true}),
        ),
    ];
    for (name, args) in successes {
        let (a, b) = both(&mut ours, &mut qemu, name, args.clone());
        assert!(
            a.get("return").is_some() && b.get("return").is_some(),
            "{name} {args}: {a} / {b}"
        );
        assert_eq!(shape(&a), shape(&b), "{name} {args}");
    }
    for etc in [&p.ours.etc, &p.qemu_etc] {
        let file = etc.home("phx-alice").join(".ssh/authorized_keys");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap_or_default().trim(),
            "",
            "reset to nothing"
        );
        let (mode, uid, gid, _) = stat(&file);
        assert_eq!((mode, uid, gid), (0o600, UID, UID));
    }
}

#[test]
fn deliberate_differences() {
    let p = Pair::start();
    let (mut ours, mut qemu) = (p.ours.conn(), p.qemu.raw());
    // No authorized_keys: qemu-ga fails, we list no keys.
    let (a, b) = both(
        &mut ours,
        &mut qemu,
        "guest-ssh-get-authorized-keys",
        json!({"username": "phx-alice"}),
    );
    assert_eq!(a, json!({"return": {"keys": []}}));
    assert!(qga_err(&b).1.contains("No such file or directory"), "{b}");
    // Order: qemu-ga lists the keys backwards.
    both(
        &mut ours,
        &mut qemu,
        "guest-ssh-add-authorized-keys",
        json!({"username": "phx-alice", "keys": [KEY, KEY2]}),
    );
    let (a, b) = both(
        &mut ours,
        &mut qemu,
        "guest-ssh-get-authorized-keys",
        json!({"username": "phx-alice"}),
    );
    assert_eq!(a, json!({"return": {"keys": [KEY, KEY2]}}));
    assert_eq!(b, json!({"return": {"keys": [KEY2, KEY]}}));
    // The last line: ours ends with a newline, qemu-ga's does not.
    let read = |etc: &PrivateEtc| {
        std::fs::read_to_string(etc.home("phx-alice").join(".ssh/authorized_keys")).unwrap()
    };
    assert_eq!(read(&p.ours.etc), format!("{KEY}\n{KEY2}\n"));
    assert_eq!(read(&p.qemu_etc), format!("{KEY}\n{KEY2}"));
    // An empty key (what `virsh set-user-sshkeys --file` sends after the file's last
    // newline): both take it; qemu-ga writes an empty line, we skip it.
    let args = json!({"username": "phx-alice", "keys": [KEY, ""]});
    let (a, b) = both(&mut ours, &mut qemu, "guest-ssh-add-authorized-keys", args);
    assert_eq!(a, json!({"return": {}}));
    assert_eq!(b, json!({"return": {}}));
    assert_eq!(read(&p.ours.etc), format!("{KEY}\n{KEY2}\n"));
    assert_eq!(read(&p.qemu_etc), format!("{KEY}\n{KEY2}\n"));
}

/// The planted links: qemu-ga follows them (root's keys get the user's key and become
/// the user's; /etc/shadow is copied into a file the user owns); we refuse.
#[test]
fn planted_links_qemu_ga_follows_and_we_refuse() {
    let p = Pair::start();
    let (mut ours, mut qemu) = (p.ours.conn(), p.qemu.raw());
    let mut roots = Vec::new();
    for etc in [&p.ours.etc, &p.qemu_etc] {
        let root_ssh = etc.outside("root-ssh");
        std::fs::create_dir(&root_ssh).unwrap();
        std::fs::write(
            root_ssh.join("authorized_keys"),
            "ssh-ed25519 AAAAroot root@host\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(&root_ssh, etc.home("phx-alice").join(".ssh")).unwrap();
        roots.push(root_ssh.join("authorized_keys"));
    }
    let args = json!({"username": "phx-alice", "keys": [KEY]});
    let (a, b) = both(&mut ours, &mut qemu, "guest-ssh-add-authorized-keys", args);
    assert!(
        qga_err(&a)
            .1
            .ends_with(".ssh is a symbolic link: refusing to follow it"),
        "{a}"
    );
    assert_eq!(
        std::fs::read_to_string(&roots[0]).unwrap(),
        "ssh-ed25519 AAAAroot root@host\n"
    );
    assert_eq!(stat(&roots[0]).1, 0);
    assert_eq!(b, json!({"return": {}}));
    assert!(
        std::fs::read_to_string(&roots[1]).unwrap().contains(KEY),
        "qemu-ga wrote root's keys"
    );
    assert_eq!(stat(&roots[1]).1, UID, "and gave them to the user");

    // authorized_keys -> /etc/shadow (the agents' own, private).
    for etc in [&p.ours.etc, &p.qemu_etc] {
        let ssh = etc.home("phx-alice").join(".ssh");
        std::fs::remove_file(&ssh).unwrap();
        std::fs::create_dir(&ssh).unwrap();
        std::os::unix::fs::chown(&ssh, Some(UID), Some(UID)).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", ssh.join("authorized_keys")).unwrap();
    }
    let args = json!({"username": "phx-alice", "keys": [KEY]});
    let (a, b) = both(&mut ours, &mut qemu, "guest-ssh-add-authorized-keys", args);
    assert!(
        qga_err(&a)
            .1
            .ends_with("authorized_keys is a symbolic link: refusing to follow it"),
        "{a}"
    );
    assert!(
        std::fs::symlink_metadata(p.ours.etc.home("phx-alice").join(".ssh/authorized_keys"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(b, json!({"return": {}}));
    let copied =
        std::fs::read_to_string(p.qemu_etc.home("phx-alice").join(".ssh/authorized_keys")).unwrap();
    assert!(
        copied.contains("root:*:19000"),
        "qemu-ga copied /etc/shadow for the user: {copied}"
    );
}
