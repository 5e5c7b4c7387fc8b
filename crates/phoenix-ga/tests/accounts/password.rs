//! `guest-set-user-password` on a private /etc: the shadow line, checked with OpenSSL's
//! crypt, every other line, the file's mode, owner and inode, and what the log holds.

use super::*;

const PASSWORD: &str = "correct horse:battery staple";
const CMD: &str = "guest-set-user-password";

fn accounts() -> PrivateEtc {
    let etc = PrivateEtc::new();
    etc.add_user("phx-alice", 4101, Some("!:19000:0:99999:7::20500:"));
    etc.add_user("phx-bob", 4102, None);
    etc.add_user("phx-carol", 4103, Some("*:19000::::::"));
    etc
}

#[test]
fn a_password_is_set_in_shadow_and_verifies() {
    for d in BOTH {
        let ours = Ours::start(accounts(), d);
        let etc = &ours.etc;
        let (passwd, shadow) = (etc.read("passwd"), etc.read("shadow"));
        let before = stat(&etc.path("shadow"));
        let mut c = ours.conn();
        let args = json!({"username": "phx-alice", "password": b64(PASSWORD.as_bytes()), "crypted": false});
        assert_eq!(ours.ok(&mut c, CMD, args), json!({}));

        let after = etc.read("shadow");
        let line = line_of(&after, "phx-alice").unwrap();
        let fields: Vec<&str> = line.split(':').collect();
        assert_eq!(fields.len(), 9, "{line}");
        assert_eq!(fields[1], openssl_crypt(PASSWORD, fields[1]), "{d:?}");
        assert_ne!(
            fields[1],
            openssl_crypt("correct horse:battery stapl", fields[1])
        );
        assert_eq!(fields[2], today());
        assert_eq!(&fields[3..], ["0", "99999", "7", "", "20500", ""]);
        assert_eq!(without(&after, "phx-alice"), without(&shadow, "phx-alice"));
        assert_eq!(
            after.lines().position(|l| l.starts_with("phx-alice:")),
            shadow.lines().position(|l| l.starts_with("phx-alice:")),
            "the line stays in its place"
        );
        assert_eq!(etc.read("passwd"), passwd);
        let now = stat(&etc.path("shadow"));
        assert_eq!(
            (now.0, now.1, now.2),
            (0o640, 0, phoenix_testkit::SHADOW_GID)
        );
        assert_ne!(now.3, before.3, "replaced by a new file");
        assert!(!etc.path("shadow+").exists());
        assert_eq!(stat(&etc.path(".pwd.lock")).0, 0o600);

        // Crypted: stored as it came (here OpenSSL's, with another salt).
        let hash = openssl_crypt("other", "$6$0123456789abcdef$");
        let args =
            json!({"username": "phx-carol", "password": b64(hash.as_bytes()), "crypted": true});
        ours.ok(&mut c, CMD, args);
        assert_eq!(
            line_of(&etc.read("shadow"), "phx-carol").unwrap(),
            format!("phx-carol:{hash}:{}::::::", today())
        );

        // The password is in no log line, nor its base64.
        let log = ours.log();
        assert!(log.contains("password set"), "{log}");
        assert!(!log.contains("correct horse"), "{log}");
        assert!(!log.contains(&b64(PASSWORD.as_bytes())), "{log}");
    }
}

#[test]
fn a_user_without_a_shadow_line_gets_one_and_passwd_keeps_x() {
    for d in BOTH {
        let ours = Ours::start(accounts(), d);
        let etc = &ours.etc;
        let (passwd, shadow) = (etc.read("passwd"), etc.read("shadow"));
        let mut c = ours.conn();
        let args = json!({"username": "phx-bob", "password": b64(b"pw of bob"), "crypted": false});
        ours.ok(&mut c, CMD, args);
        let after = etc.read("shadow");
        assert!(after.starts_with(&shadow), "appended: {after}");
        let line = line_of(&after, "phx-bob").unwrap();
        let hash = line.split(':').nth(1).unwrap();
        assert_eq!(
            line,
            format!(
                "phx-bob:{}:{}::::::",
                openssl_crypt("pw of bob", hash),
                today()
            )
        );
        assert_eq!(etc.read("passwd"), passwd);
    }
}

#[test]
fn a_minimal_guest_without_shadow_keeps_the_hash_in_passwd() {
    let etc = accounts();
    std::fs::remove_file(etc.path("shadow")).unwrap();
    let ours = Ours::start(etc, Dialect::Qga);
    let etc = &ours.etc;
    let passwd = etc.read("passwd");
    let mut c = ours.conn();
    let args = json!({"username": "phx-alice", "password": b64(b"pw"), "crypted": false});
    ours.ok(&mut c, CMD, args);
    let after = etc.read("passwd");
    let hash = line_of(&after, "phx-alice")
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(hash, openssl_crypt("pw", &hash));
    assert_eq!(without(&after, "phx-alice"), without(&passwd, "phx-alice"));
    assert!(!etc.path("shadow").exists(), "no /etc/shadow made");
    assert_eq!(stat(&etc.path("passwd")).0, 0o644);
}

#[test]
fn refusals_change_nothing_and_never_show_the_password() {
    let secret = "Tr0ub4dor&3";
    for d in BOTH {
        let ours = Ours::start(accounts(), d);
        let etc = &ours.etc;
        let (passwd, shadow) = (etc.read("passwd"), etc.read("shadow"));
        let mut c = ours.conn();
        let cases = [
            (
                json!({"username": "phx-nobody", "password": b64(secret.as_bytes()), "crypted": false}),
                "failed to lookup user 'phx-nobody': no such user in /etc/passwd",
                Some(2),
            ),
            (
                json!({"username": "phx-alice", "password": b64(format!("{secret}\n").as_bytes()), "crypted": false}),
                "forbidden characters in raw password",
                None,
            ),
            (
                json!({"username": "phx-alice", "password": b64(secret.as_bytes()), "crypted": true}),
                "the crypted password is not a crypt(3) hash: not of the form $ID$SALT$HASH",
                Some(22),
            ),
            (
                json!({"username": "phx:alice", "password": b64(secret.as_bytes()), "crypted": false}),
                "forbidden characters in username",
                None,
            ),
            (
                json!({"username": "phx-alice", "password": "!!!", "crypted": false}),
                "Base64 data contains invalid characters",
                None,
            ),
            (
                json!({"username": "phx-alice", "password": b64(b""), "crypted": false}),
                "the password is empty",
                None,
            ),
        ];
        for (args, words, code) in cases {
            let f = ours.fails(&mut c, CMD, args);
            assert!(f.text.contains(words), "{d:?}: {f:?}");
            assert!(!f.text.contains(secret), "{f:?}");
            match d {
                Dialect::Qga => assert_eq!(f.class.as_deref(), Some("GenericError")),
                Dialect::Phoenix => assert_eq!(f.code, Some(code.unwrap_or(-1)), "{f:?}"),
            }
        }
        // A password of the wrong type is not quoted either.
        let f = ours.fails(
            &mut c,
            CMD,
            json!({"username": "phx-alice", "password": 31_415_926, "crypted": false}),
        );
        assert!(!f.text.contains("31415926"), "{f:?}");
        if d == Dialect::Qga {
            assert_eq!(
                f.text,
                "Invalid parameter type for 'password', expected: string"
            );
        }
        // Arguments that are not an object at all (a host's bug), holding the secret.
        let f = ours.fails(&mut c, CMD, json!(secret));
        assert!(!f.text.contains(secret), "{f:?}");
        let f = ours.fails(
            &mut c,
            CMD,
            json!({"username": "phx-alice", "password": b64(b"x")}),
        );
        if d == Dialect::Qga {
            assert_eq!(f.text, "Parameter 'crypted' is missing");
        }
        assert_eq!(etc.read("passwd"), passwd);
        assert_eq!(etc.read("shadow"), shadow);
        let log = ours.log();
        assert!(log.contains("error reply"), "{log}");
        assert!(
            !log.contains(secret) && !log.contains(&b64(secret.as_bytes())),
            "{log}"
        );
        assert!(!log.contains("31415926"), "{log}");
    }
}
