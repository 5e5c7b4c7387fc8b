//! A private /etc for the accounts tests, so that no test ever touches this machine's
//! accounts: a temporary directory holding an `etc` of its own (root and the test's
//! throwaway users, plus copies of what `chpasswd`, PAM and the dynamic linker read)
//! and the users' homes, and a wrapper that runs an agent in a mount namespace of its
//! own with that `etc` bind-mounted over /etc. The users exist only there.
//!
//! The wrapper refuses to start the agent unless the bind took effect (it looks for
//! [`MARKER`] in /etc first), so a failed mount cannot leave an agent on the real
//! /etc. The test reads and changes the files through [`PrivateEtc::path`] from
//! outside the namespace: they are the same files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::process::{must, path_str};

/// The file the wrapper looks for in /etc before it starts the agent.
pub const MARKER: &str = ".phoenix-private-etc";

/// What is copied from the machine's /etc when present: PAM and the shadow suite's
/// settings (for qemu-ga's `chpasswd`), and the dynamic linker's cache. Never an
/// account file.
const COPIED: &[&str] = &[
    "pam.d",
    "pam.conf",
    "security",
    "login.defs",
    "nsswitch.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "libaudit.conf",
    "localtime",
];

/// The group id of `shadow`, which owns /etc/shadow on Debian.
pub const SHADOW_GID: u32 = 42;

/// A private /etc and homes; see the module documentation. Removed when dropped.
#[derive(Debug)]
pub struct PrivateEtc {
    dir: tempfile::TempDir,
    wrapper: Vec<String>,
}

impl Default for PrivateEtc {
    fn default() -> Self {
        Self::new()
    }
}

impl PrivateEtc {
    /// An `etc` with root only (`root:x` in passwd, `root:*` in shadow, shadow 0640
    /// root:shadow) and an empty `home`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // Searchable by the throwaway users, whose homes are below it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        for name in COPIED {
            let from = Path::new("/etc").join(name);
            if from.symlink_metadata().is_ok() {
                must("cp", &["-a", path_str(&from), path_str(&etc)]);
            }
        }
        let write = |name: &str, text: &str, mode: u32, gid: u32| {
            let path = etc.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            std::os::unix::fs::chown(&path, Some(0), Some(gid)).unwrap();
        };
        write("passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644, 0);
        write("group", "root:x:0:\nshadow:x:42:\n", 0o644, 0);
        write("shadow", "root:*:19000:0:99999:7:::\n", 0o640, SHADOW_GID);
        write("gshadow", "root:*::\nshadow:*::\n", 0o640, SHADOW_GID);
        write(MARKER, "", 0o644, 0);
        let script = format!(
            "mount --bind \"$0\" /etc && [ -e /etc/{MARKER} ] && exec \"$@\" \
             || {{ echo 'private /etc not in place' >&2; exit 99; }}"
        );
        let wrapper = vec![
            "unshare".into(),
            "-m".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            script,
            path_str(&etc).to_string(),
        ];
        PrivateEtc { dir, wrapper }
    }

    /// The wrapper command that runs a program (appended) with this `etc` as /etc:
    /// for [`Launch::wrapper`](crate::Launch::wrapper) and
    /// [`QemuGa::start`](crate::QemuGa::start).
    pub fn wrapper(&self) -> Vec<&str> {
        self.wrapper.iter().map(String::as_str).collect()
    }

    /// The private `etc`.
    pub fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// A file of the private `etc` (`shadow`, `.pwd.lock`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.etc().join(name)
    }

    /// The text of a file of the private `etc`.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// The home of a user added with [`PrivateEtc::add_user`].
    pub fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join("home").join(user)
    }

    /// A directory beside the homes, outside every home (where a test's planted link
    /// points).
    pub fn outside(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Adds user `name` with uid and gid `id` to passwd and group (password field
    /// `x`), and to shadow when `shadow` is the rest of its line there (`!:19000:0:99999:7:::`),
    /// and makes its home, 0755 and its own. Returns the home.
    pub fn add_user(&self, name: &str, id: u32, shadow: Option<&str>) -> PathBuf {
        let home = self.home(name);
        let append = |file: &str, line: String| {
            let path = self.path(file);
            let mut text = std::fs::read_to_string(&path).unwrap();
            text.push_str(&line);
            std::fs::write(&path, text).unwrap();
        };
        append(
            "passwd",
            format!("{name}:x:{id}:{id}:test user:{}:/bin/sh\n", home.display()),
        );
        append("group", format!("{name}:x:{id}:\n"));
        if let Some(rest) = shadow {
            append("shadow", format!("{name}:{rest}\n"));
        }
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&home, Some(id), Some(id)).unwrap();
        home
    }
}
