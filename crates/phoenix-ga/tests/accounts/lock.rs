//! The account files' lock: while another program holds /etc/.pwd.lock (here this
//! test, with the process-associated fcntl lock lckpwdf(3) takes), the agent waits and
//! writes nothing; once it is released, the password is set.

use std::os::fd::AsRawFd;

use nix::fcntl::{fcntl, FcntlArg};

use super::*;

fn lock(file: &std::fs::File, kind: i32) {
    let l = libc::flock {
        l_type: libc::c_short::try_from(kind).unwrap(),
        l_whence: 0,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(file.as_raw_fd(), FcntlArg::F_SETLK(&l)).unwrap();
}

#[test]
fn the_update_waits_for_the_shadow_suite_s_lock() {
    for d in BOTH {
        let etc = PrivateEtc::new();
        etc.add_user("phx-alice", 4201, Some("!:19000:0:99999:7:::"));
        let held = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(etc.path(".pwd.lock"))
            .unwrap();
        lock(&held, libc::F_WRLCK);
        let ours = Ours::start(etc, d);
        let shadow = ours.etc.read("shadow");
        let mut c = ours.conn();
        let args = json!({"username": "phx-alice", "password": b64(b"pw"), "crypted": false});
        send(&mut c, "guest-set-user-password", args);
        wait_until("the agent to wait for the lock", || {
            ours.log().contains("waiting for the account files' lock")
        });
        assert_eq!(
            ours.etc.read("shadow"),
            shadow,
            "nothing written without the lock"
        );
        assert!(!ours.etc.path("shadow+").exists());
        lock(&held, libc::F_UNLCK);
        assert_eq!(decode(d, &c.recv()), Ok(json!({})));
        let line = line_of(&ours.etc.read("shadow"), "phx-alice").unwrap();
        let hash = line.split(':').nth(1).unwrap();
        assert_eq!(hash, openssl_crypt("pw", hash));
    }
}
