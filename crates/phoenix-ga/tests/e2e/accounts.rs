//! Accounts in a real guest, through both dialects: passwords checked against the
//! guest's /etc/shadow with the guest's own crypt (busybox's `mkpasswd`), keys' lines,
//! owners and modes checked with the guest's `stat`, and the planted links refused with
//! /etc as it was. The throwaway users exist only in the guest (an initramfs, gone at
//! power-off) and are removed again when a test ends.

use std::time::Duration;

use phoenix_client::{Client, ClientError, Dialect, Options};
use phoenix_e2e::Guest;

use crate::guest;
use crate::qga::QGA_PORT;

/// errno of a symbolic link refused.
const ELOOP: i32 = 40;

const PASSWORD: &str = "e2e horse:battery staple";
pub(crate) const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eOne one@host";
pub(crate) const K2: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQE2eTwo two@host";
pub(crate) const K3: &str = "no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eThree three";

/// A client of each dialect: the Phoenix port and qemu-ga's.
fn clients(g: &Guest) -> [(Dialect, Client); 2] {
    let qga = Client::connect_with(
        g.port_socket(QGA_PORT),
        Options {
            timeout: Some(Duration::from_secs(60)),
            ..Options::dialect(Dialect::Qga)
        },
    )
    .unwrap();
    [(Dialect::Phoenix, g.client()), (Dialect::Qga, qga)]
}

/// Throwaway users of the guest, removed (lines and homes) when dropped, with the
/// account files the guest did not have before.
pub(crate) struct Users<'g> {
    g: &'g Guest,
    names: Vec<String>,
}

impl<'g> Users<'g> {
    pub(crate) fn new(g: &'g Guest) -> Self {
        // The initramfs has no account files of its own: root's lines, as a distribution
        // has them, if missing.
        // What it makes is listed in CREATED, and removed again when dropped.
        g.sh_ok(
            "rm -f /run/phx-accounts.created; \
             for f in passwd group shadow; do \
                 [ -e /etc/$f ] || echo /etc/$f >>/run/phx-accounts.created; done; \
             touch /etc/passwd /etc/group; \
             grep -q '^root:' /etc/passwd || echo 'root:x:0:0:root:/root:/bin/sh' >>/etc/passwd; \
             [ -e /etc/shadow ] || echo 'root:*:19000:0:99999:7:::' >/etc/shadow; \
             chown 0:0 /etc/shadow && chmod 0640 /etc/shadow",
        );
        Users {
            g,
            names: Vec::new(),
        }
    }

    /// Adds `name` (uid and gid `id`, home /home/NAME, 0755, its own), with
    /// `shadow` as the rest of its /etc/shadow line if given.
    pub(crate) fn add(&mut self, name: &str, id: u32, shadow: Option<&str>) -> String {
        self.names.push(name.to_string());
        let home = format!("/home/{name}");
        let shadow = shadow
            .map(|rest| format!("echo '{name}:{rest}' >>/etc/shadow;"))
            .unwrap_or_default();
        self.g.sh_ok(&format!(
            "set -e; sed -i '/^{name}:/d' /etc/passwd /etc/group /etc/shadow; \
             echo '{name}:x:{id}:{id}:e2e:{home}:/bin/sh' >>/etc/passwd; \
             echo '{name}:x:{id}:' >>/etc/group; {shadow} \
             rm -rf {home}; mkdir -p {home}; chown {id}:{id} {home}; chmod 0755 {home}"
        ));
        home
    }
}

impl Drop for Users<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.g.try_run(
                &format!(
                    "sed -i '/^{name}:/d' /etc/passwd /etc/group /etc/shadow; \
                     rm -rf /home/{name}"
                ),
                Duration::from_secs(60),
            );
        }
        let _ = self.g.try_run(
            "[ -f /run/phx-accounts.created ] && xargs rm -f </run/phx-accounts.created; \
             rm -f /run/phx-accounts.created; rmdir /home 2>/dev/null; true",
            Duration::from_secs(60),
        );
    }
}

/// The guest's line of `user` in `file`.
pub(crate) fn line(g: &Guest, file: &str, user: &str) -> String {
    g.sh_ok(&format!("grep '^{user}:' {file}"))
        .trim()
        .to_string()
}

/// `file` without `user`'s line.
fn others(g: &Guest, file: &str, user: &str) -> String {
    g.sh_ok(&format!("grep -v '^{user}:' {file}; true"))
}

/// `stat -c '%a %u %g'` in the guest.
pub(crate) fn stat(g: &Guest, path: &str) -> String {
    g.sh_ok(&format!("stat -c '%a %u %g' {path}"))
        .trim()
        .to_string()
}

/// The error reply of a call.
fn agent_err<T: std::fmt::Debug>(r: Result<T, ClientError>) -> phoenix_client::AgentError {
    match r {
        Err(ClientError::Agent(e)) => e,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[test]
fn a_password_set_through_both_dialects_verifies_in_the_guest() {
    let Some(g) = guest() else { return };
    for (i, (dialect, c)) in clients(&g).into_iter().enumerate() {
        let mut users = Users::new(&g);
        let user = format!("phx-e2e-pw{i}");
        users.add(
            &user,
            5100 + u32::try_from(i).unwrap(),
            Some("!:19000:0:99999:7:::"),
        );
        let shadow = others(&g, "/etc/shadow", &user);
        let passwd = g.sh_ok("cat /etc/passwd");

        c.set_user_password(&user, PASSWORD.as_bytes(), false)
            .unwrap_or_else(|e| panic!("{dialect:?}: {e}"));
        let l = line(&g, "/etc/shadow", &user);
        let fields: Vec<&str> = l.split(':').collect();
        assert_eq!(fields.len(), 9, "{l}");
        let hash = fields[1];
        assert!(hash.starts_with("$6$"), "{l}");
        // The guest's own crypt, with the hash's salt, gives the same hash.
        let salt = hash.split('$').nth(2).unwrap();
        let guest_hash = g.sh_ok(&format!("mkpasswd -m sha512 '{PASSWORD}' '{salt}'"));
        assert_eq!(hash, guest_hash.trim(), "{dialect:?}");
        let wrong = g.sh_ok(&format!("mkpasswd -m sha512 'e2e horse' '{salt}'"));
        assert_ne!(hash, wrong.trim());
        let today = g.sh_ok("echo $(( $(date +%s) / 86400 ))");
        assert_eq!(
            fields[2],
            today.trim(),
            "the day of the change, the guest's"
        );
        assert_eq!(&fields[3..], ["0", "99999", "7", "", "", ""]);
        assert_eq!(others(&g, "/etc/shadow", &user), shadow, "other lines kept");
        assert_eq!(g.sh_ok("cat /etc/passwd"), passwd);
        assert_eq!(stat(&g, "/etc/shadow"), "640 0 0");
        assert_eq!(
            g.sh_ok("ls -A /etc | grep -c '^shadow+$'; true").trim(),
            "0"
        );

        // Crypted: a hash the guest's mkpasswd made, stored as it is.
        let crypted = g.sh_ok("mkpasswd -m sha512 'crypted pw' 'e2eSALTe2eSALT12'");
        let crypted = crypted.trim();
        c.set_user_password(&user, crypted.as_bytes(), true)
            .unwrap_or_else(|e| panic!("{dialect:?}: {e}"));
        let l = line(&g, "/etc/shadow", &user);
        assert_eq!(l.split(':').nth(1), Some(crypted), "{l}");

        // Refusals: an unknown user, a crypted value that is no hash; nothing changes.
        let before = g.sh_ok("md5sum /etc/shadow /etc/passwd");
        let e = agent_err(c.set_user_password("phx-e2e-nobody", b"x", false));
        assert!(
            e.message.contains("failed to lookup user 'phx-e2e-nobody'"),
            "{e}"
        );
        let e = agent_err(c.set_user_password(&user, b"plain", true));
        assert!(e.message.contains("not a crypt(3) hash"), "{e}");
        if dialect == Dialect::Qga {
            assert_eq!(e.class.as_deref(), Some("GenericError"));
        }
        assert_eq!(g.sh_ok("md5sum /etc/shadow /etc/passwd"), before);
        let log = g.agent_log();
        assert!(
            !log.contains(PASSWORD) && !log.contains("crypted pw"),
            "{log}"
        );
    }
}

#[test]
fn ssh_keys_through_both_dialects_with_owner_and_modes() {
    let Some(g) = guest() else { return };
    for (i, (dialect, c)) in clients(&g).into_iter().enumerate() {
        let mut users = Users::new(&g);
        let user = format!("phx-e2e-keys{i}");
        let id = 5200 + u32::try_from(i).unwrap();
        let home = users.add(&user, id, None);
        let (ssh, file) = (
            format!("{home}/.ssh"),
            format!("{home}/.ssh/authorized_keys"),
        );
        let keys = |list: &[&str]| list.iter().map(|k| k.to_string()).collect::<Vec<_>>();

        assert_eq!(c.ssh_authorized_keys(&user).unwrap(), Vec::<String>::new());
        c.ssh_add_authorized_keys(&user, &keys(&[K1, K2]), false)
            .unwrap_or_else(|e| panic!("{dialect:?}: {e}"));
        assert_eq!(stat(&g, &ssh), format!("700 {id} {id}"));
        assert_eq!(stat(&g, &file), format!("600 {id} {id}"));
        assert_eq!(g.sh_ok(&format!("cat {file}")), format!("{K1}\n{K2}\n"));

        // No duplicates; a comment the user wrote stays.
        g.sh_ok(&format!("echo '# mine' >>{file}"));
        c.ssh_add_authorized_keys(&user, &keys(&[K2, K3, K1]), false)
            .unwrap();
        assert_eq!(
            g.sh_ok(&format!("cat {file}")),
            format!("{K1}\n{K2}\n# mine\n{K3}\n")
        );
        assert_eq!(c.ssh_authorized_keys(&user).unwrap(), keys(&[K1, K2, K3]));

        // Removed: replaced by a new file (another inode), with the same owner and mode.
        let inode = g.sh_ok(&format!("stat -c %i {file}"));
        c.ssh_remove_authorized_keys(&user, &keys(&[K2, "ssh-ed25519 AAAAabsent"]))
            .unwrap();
        assert_eq!(
            g.sh_ok(&format!("cat {file}")),
            format!("{K1}\n# mine\n{K3}\n")
        );
        assert_ne!(g.sh_ok(&format!("stat -c %i {file}")), inode);
        assert_eq!(stat(&g, &file), format!("600 {id} {id}"));

        c.ssh_add_authorized_keys(&user, &keys(&[K2]), true)
            .unwrap();
        assert_eq!(g.sh_ok(&format!("cat {file}")), format!("{K2}\n"));
        assert_eq!(g.sh_ok(&format!("ls -A {ssh}")), "authorized_keys\n");
        assert_eq!(stat(&g, &file), format!("600 {id} {id}"));
    }
}

#[test]
fn planted_links_are_refused_in_the_guest() {
    let Some(g) = guest() else { return };
    for (i, (dialect, c)) in clients(&g).into_iter().enumerate() {
        let mut users = Users::new(&g);
        let user = format!("phx-e2e-evil{i}");
        let id = 5300 + u32::try_from(i).unwrap();
        let home = users.add(&user, id, Some("!:19000:0:99999:7:::"));
        let etc = || g.sh_ok("ls -lAn --full-time /etc; md5sum /etc/shadow /etc/passwd");
        let key = vec![K1.to_string()];
        let check = |e: phoenix_client::AgentError, what: &str| {
            assert!(
                e.message
                    .ends_with(&format!("{what} is a symbolic link: refusing to follow it")),
                "{dialect:?}: {e}"
            );
            match dialect {
                Dialect::Phoenix => assert_eq!(e.code, ELOOP),
                Dialect::Qga => assert_eq!(e.class.as_deref(), Some("GenericError")),
            }
        };

        // ~/.ssh -> /etc: neither /etc/authorized_keys nor any change in /etc.
        g.sh_ok(&format!(
            "ln -s /etc {home}/.ssh && chown -h {id}:{id} {home}/.ssh"
        ));
        let before = etc();
        check(
            agent_err(c.ssh_add_authorized_keys(&user, &key, false)),
            ".ssh",
        );
        check(
            agent_err(c.ssh_add_authorized_keys(&user, &key, true)),
            ".ssh",
        );
        check(agent_err(c.ssh_remove_authorized_keys(&user, &key)), ".ssh");
        check(agent_err(c.ssh_authorized_keys(&user)), ".ssh");
        assert_eq!(etc(), before, "/etc changed");

        // authorized_keys -> /etc/shadow: not read into a reply, not written.
        g.sh_ok(&format!(
            "rm {home}/.ssh && mkdir -m 700 {home}/.ssh && chown {id}:{id} {home}/.ssh && \
             ln -s /etc/shadow {home}/.ssh/authorized_keys"
        ));
        check(
            agent_err(c.ssh_add_authorized_keys(&user, &key, false)),
            "authorized_keys",
        );
        check(agent_err(c.ssh_authorized_keys(&user)), "authorized_keys");
        assert_eq!(etc(), before, "/etc changed");
        assert_eq!(
            g.sh_ok(&format!("readlink {home}/.ssh/authorized_keys")),
            "/etc/shadow\n"
        );

        // A home the user made a link to /etc (in a directory the user owns).
        g.sh_ok(&format!(
            "rm -rf {home}/.ssh && ln -s /etc {home}/inner && chown -h {id}:{id} {home}/inner && \
             sed -i 's#^{user}:x:{id}:{id}:e2e:{home}:#{user}:x:{id}:{id}:e2e:{home}/inner:#' /etc/passwd"
        ));
        let before = etc();
        let e = agent_err(c.ssh_add_authorized_keys(&user, &key, false));
        assert!(
            e.message.ends_with(&format!(
                "inner is a symbolic link of uid {id}, not root's: refusing to follow it"
            )),
            "{dialect:?}: {e}"
        );
        assert_eq!(etc(), before, "/etc changed");
    }
}
