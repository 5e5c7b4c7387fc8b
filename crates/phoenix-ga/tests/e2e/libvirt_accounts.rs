//! libvirt's account commands with our agent on its port: `virsh set-user-password`
//! (plain and `--encrypted`) checked against the guest's /etc/shadow with the guest's
//! own crypt, and `virsh set-user-sshkeys` (adding, `--reset`, `--remove`) and
//! `get-user-sshkeys` checked against the guest's `authorized_keys`, its owner and
//! modes. The throwaway users exist only in the guest. (`virsh guestinfo --user` lists
//! logged-in users, `guest-get-users`, which is not this family's.)

use std::io::Write as _;
use std::sync::MutexGuard;

use phoenix_e2e::Guest;

use crate::accounts::{line, stat, Users, K1, K2, K3};
use crate::libvirt::our_guest;

/// The libvirt domain shared with tests/e2e/libvirt.rs, or `None` when libvirt tests
/// are skipped or qemu-ga serves libvirt's port (`PHOENIX_E2E_LIBVIRT_PEER=qemu-ga`: it
/// would run `chpasswd`, which the busybox guest lacks).
fn guest() -> Option<MutexGuard<'static, Guest>> {
    our_guest()
}

/// Runs virsh on the domain (`DOMAIN` in `args` is replaced); its output.
fn virsh(g: &Guest, args: &[&str]) -> phoenix_e2e::ShOutput {
    let dom = g.domain().expect("a libvirt guest").to_string();
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "DOMAIN" { dom.as_str() } else { a })
        .collect();
    g.virsh(&args)
}

/// [`virsh`], panicking with its stderr unless it exits 0; its stdout.
fn virsh_ok(g: &Guest, args: &[&str]) -> String {
    let dom = g.domain().expect("a libvirt guest").to_string();
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "DOMAIN" { dom.as_str() } else { a })
        .collect();
    crate::libvirt::virsh_ok(g, &args)
}

/// A file of keys on the host, one per line, for `--file`.
fn keys_file(keys: &[&str]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for k in keys {
        writeln!(f, "{k}").unwrap();
    }
    f.flush().unwrap();
    f
}

#[test]
fn virsh_set_user_password_plain_and_encrypted() {
    let Some(g) = guest() else { return };
    let mut users = Users::new(&g);
    let user = "phx-virsh-pw";
    users.add(user, 5400, Some("!:19000:0:99999:7:::"));
    let password = "virsh pass:word";

    virsh_ok(&g, &["set-user-password", "DOMAIN", user, password]);
    let l = line(&g, "/etc/shadow", user);
    let hash = l.split(':').nth(1).unwrap().to_string();
    let salt = hash.split('$').nth(2).unwrap_or_else(|| panic!("{l}"));
    let guest_hash = g.sh_ok(&format!("mkpasswd -m sha512 '{password}' '{salt}'"));
    assert_eq!(hash, guest_hash.trim(), "{l}");
    assert_eq!(stat(&g, "/etc/shadow"), "640 0 0");

    let crypted = g.sh_ok("mkpasswd -m sha512 'encrypted pw' 'virshSALTvirsh12'");
    let crypted = crypted.trim();
    virsh_ok(
        &g,
        &["set-user-password", "DOMAIN", user, crypted, "--encrypted"],
    );
    assert_eq!(
        line(&g, "/etc/shadow", user).split(':').nth(1),
        Some(crypted)
    );

    // An unknown user: virsh fails with the agent's words; nothing changes.
    let before = g.sh_ok("md5sum /etc/shadow /etc/passwd");
    let out = virsh(
        &g,
        &["set-user-password", "DOMAIN", "phx-virsh-nobody", "x"],
    );
    assert_ne!(out.status, 0);
    assert!(
        out.stderr
            .contains("failed to lookup user 'phx-virsh-nobody'"),
        "{}",
        out.stderr
    );
    assert_eq!(g.sh_ok("md5sum /etc/shadow /etc/passwd"), before);
    let log = g.agent_log();
    assert!(
        log.contains("command=guest-set-user-password"),
        "libvirt's requests reached us"
    );
    assert!(
        !log.contains(password) && !log.contains("encrypted pw"),
        "{log}"
    );
}

#[test]
fn virsh_set_user_sshkeys_add_reset_remove() {
    let Some(g) = guest() else { return };
    let mut users = Users::new(&g);
    let user = "phx-virsh-keys";
    let id = 5401;
    let home = users.add(user, id, None);
    let file = format!("{home}/.ssh/authorized_keys");

    let two = keys_file(&[K1, K2]);
    virsh_ok(
        &g,
        &[
            "set-user-sshkeys",
            "DOMAIN",
            user,
            "--file",
            two.path().to_str().unwrap(),
        ],
    );
    assert_eq!(g.sh_ok(&format!("cat {file}")), format!("{K1}\n{K2}\n"));
    assert_eq!(stat(&g, &format!("{home}/.ssh")), format!("700 {id} {id}"));
    assert_eq!(stat(&g, &file), format!("600 {id} {id}"));
    // Again, with a third: no duplicates.
    let three = keys_file(&[K2, K3]);
    virsh_ok(
        &g,
        &[
            "set-user-sshkeys",
            "DOMAIN",
            user,
            "--file",
            three.path().to_str().unwrap(),
        ],
    );
    assert_eq!(
        g.sh_ok(&format!("cat {file}")),
        format!("{K1}\n{K2}\n{K3}\n")
    );
    // This virsh prints the keys one after the other with nothing between them
    // (`vshPrint(ctl, "%s", key)`), as it does with qemu-ga, whose keys carry no
    // newline either.
    assert_eq!(
        virsh_ok(&g, &["get-user-sshkeys", "DOMAIN", user]).trim_end(),
        format!("{K1}{K2}{K3}")
    );

    let one = keys_file(&[K2]);
    virsh_ok(
        &g,
        &[
            "set-user-sshkeys",
            "DOMAIN",
            user,
            "--remove",
            "--file",
            one.path().to_str().unwrap(),
        ],
    );
    assert_eq!(g.sh_ok(&format!("cat {file}")), format!("{K1}\n{K3}\n"));
    virsh_ok(
        &g,
        &[
            "set-user-sshkeys",
            "DOMAIN",
            user,
            "--reset",
            "--file",
            one.path().to_str().unwrap(),
        ],
    );
    assert_eq!(g.sh_ok(&format!("cat {file}")), format!("{K2}\n"));
    assert_eq!(stat(&g, &file), format!("600 {id} {id}"));
    // `--reset` without a file empties it.
    virsh_ok(&g, &["set-user-sshkeys", "DOMAIN", user, "--reset"]);
    assert_eq!(g.sh_ok(&format!("cat {file}")), "");
    assert_eq!(
        virsh_ok(&g, &["get-user-sshkeys", "DOMAIN", user]).trim(),
        ""
    );

    // ~/.ssh a link to /etc: virsh fails with our words, /etc as it was.
    g.sh_ok(&format!(
        "rm -rf {home}/.ssh && ln -s /etc {home}/.ssh && chown -h {id}:{id} {home}/.ssh"
    ));
    let etc = || g.sh_ok("ls -lAn --full-time /etc; md5sum /etc/shadow /etc/passwd");
    let before = etc();
    let out = virsh(
        &g,
        &[
            "set-user-sshkeys",
            "DOMAIN",
            user,
            "--file",
            two.path().to_str().unwrap(),
        ],
    );
    assert_ne!(out.status, 0);
    assert!(
        out.stderr
            .contains(".ssh is a symbolic link: refusing to follow it"),
        "{}",
        out.stderr
    );
    assert_eq!(etc(), before);
}
