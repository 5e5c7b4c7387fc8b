//! Which init runs the guest, and how to ask it to power down, halt or reboot.
//!
//! - systemd, when /run/systemd/system exists (what sd_booted(3) checks): `systemctl
//!   poweroff|halt|reboot`.
//! - busybox init, when PID 1 runs busybox as the `init` (or `linuxrc`) applet: the
//!   signals it takes, SIGUSR2 (power off), SIGUSR1 (halt), SIGTERM (reboot). Busybox
//!   picks the applet from the name it was run as (`/sbin/init` linked to busybox), or
//!   from its first argument when run as `busybox`: `/bin/busybox sh /init`, a shell
//!   script as PID 1, is no init and ignores those signals.
//! - otherwise `shutdown -h -P|-H +0` or `shutdown -r +0` (sysvinit, and what qemu-ga
//!   runs), else `poweroff`, `halt` or `reboot` (busybox's signal PID 1; an init that
//!   takes those signals acts on them);
//! - with none of these, sync(2) and reboot(2): the kernel stops at once, the
//!   guest's services are not stopped first.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

/// What `guest-shutdown` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Power off (`powerdown`, the default).
    Powerdown,
    /// Stop without powering off.
    Halt,
    /// Restart.
    Reboot,
}

impl Mode {
    /// `mode` as the schema spells it; `None` for another word.
    pub fn parse(mode: Option<&str>) -> Option<Mode> {
        match mode {
            None | Some("powerdown") => Some(Mode::Powerdown),
            Some("halt") => Some(Mode::Halt),
            Some("reboot") => Some(Mode::Reboot),
            Some(_) => None,
        }
    }

    /// systemctl's verb, and the name of the program that does it alone.
    pub fn verb(self) -> &'static str {
        match self {
            Mode::Powerdown => "poweroff",
            Mode::Halt => "halt",
            Mode::Reboot => "reboot",
        }
    }
}

/// The init running the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// systemd.
    Systemd,
    /// busybox's init.
    Busybox,
    /// Something else (sysvinit, OpenRC's, a shell script, an init of a container).
    Other,
}

/// Finds the init of the system whose root is `root` ("/" for the real one; tests give
/// a tree with `run/systemd/system`, `proc/1/cmdline` and `proc/1/exe`).
pub fn detect(root: &Path) -> Init {
    if root.join("run/systemd/system").is_dir() {
        return Init::Systemd;
    }
    let cmdline = std::fs::read(root.join("proc/1/cmdline")).unwrap_or_default();
    let exe = std::fs::read_link(root.join("proc/1/exe")).ok();
    if is_busybox_init(&cmdline, exe.as_deref()) {
        Init::Busybox
    } else {
        Init::Other
    }
}

/// Whether PID 1, run as `cmdline` (NUL-separated) from `exe`, is busybox's init.
pub fn is_busybox_init(cmdline: &[u8], exe: Option<&Path>) -> bool {
    let is_busybox = |name: &[u8]| name.starts_with(b"busybox");
    let exe_name = exe
        .and_then(Path::file_name)
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_default();
    if !is_busybox(&exe_name) {
        return false;
    }
    let mut args = cmdline.split(|&b| b == 0);
    let base = |arg: &[u8]| -> Vec<u8> {
        arg.rsplit(|&b| b == b'/').next().unwrap_or_default().to_vec()
    };
    let mut applet = base(args.next().unwrap_or_default());
    if is_busybox(&applet) {
        applet = base(args.next().unwrap_or_default());
    }
    applet == b"init" || applet == b"linuxrc"
}

/// How a power request is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Run this program with these arguments (systemctl, shutdown, poweroff...).
    Run(PathBuf, Vec<String>),
    /// Send this signal to PID 1 (busybox init).
    SignalInit(Signal),
    /// sync(2), then reboot(2).
    Kernel,
}

/// The message `shutdown` broadcasts, as qemu-ga's.
const WALL: &str = "hypervisor initiated shutdown";

/// How to do `mode` under `init`; `find` gives a program's path by its name.
pub fn plan(init: Init, mode: Mode, find: &dyn Fn(&str) -> Option<PathBuf>) -> Plan {
    if init == Init::Systemd {
        if let Some(systemctl) = find("systemctl") {
            return Plan::Run(systemctl, vec![mode.verb().into()]);
        }
    }
    if init == Init::Busybox {
        return Plan::SignalInit(match mode {
            Mode::Powerdown => Signal::SIGUSR2,
            Mode::Halt => Signal::SIGUSR1,
            Mode::Reboot => Signal::SIGTERM,
        });
    }
    if let Some(shutdown) = find("shutdown") {
        let args: &[&str] = match mode {
            Mode::Powerdown => &["-h", "-P", "+0", WALL],
            Mode::Halt => &["-h", "-H", "+0", WALL],
            Mode::Reboot => &["-r", "+0", WALL],
        };
        return Plan::Run(shutdown, args.iter().map(|a| a.to_string()).collect());
    }
    match find(mode.verb()) {
        Some(program) => Plan::Run(program, Vec::new()),
        None => Plan::Kernel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root with PID 1 run as `cmdline` from `exe`.
    fn root(cmdline: &[u8], exe: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p1 = dir.path().join("proc/1");
        std::fs::create_dir_all(&p1).unwrap();
        std::fs::write(p1.join("cmdline"), cmdline).unwrap();
        if let Some(exe) = exe {
            symlink(exe, p1.join("exe")).unwrap();
        }
        dir
    }

    #[test]
    fn detects_each_init() {
        // systemd: its runtime directory, whatever PID 1 looks like.
        let r = root(b"/sbin/init\0splash\0", Some("/usr/lib/systemd/systemd"));
        std::fs::create_dir_all(r.path().join("run/systemd/system")).unwrap();
        assert_eq!(detect(r.path()), Init::Systemd);
        // busybox init, run as /sbin/init or as `busybox init`.
        let r = root(b"/sbin/init\0", Some("/bin/busybox"));
        assert_eq!(detect(r.path()), Init::Busybox);
        let r = root(b"init\0", Some("/bin/busybox"));
        assert_eq!(detect(r.path()), Init::Busybox);
        let r = root(b"/bin/busybox\0init\0", Some("/bin/busybox"));
        assert_eq!(detect(r.path()), Init::Busybox);
        let r = root(b"/linuxrc\0", Some("/bin/busybox.static"));
        assert_eq!(detect(r.path()), Init::Busybox);
        // A shell script run by busybox (the e2e guest's /init) is no init.
        let r = root(b"/bin/busybox\0sh\0/init\0", Some("/bin/busybox"));
        assert_eq!(detect(r.path()), Init::Other);
        // sysvinit, and a PID 1 we cannot see.
        let r = root(b"/sbin/init\0", Some("/usr/sbin/init"));
        assert_eq!(detect(r.path()), Init::Other);
        let r = root(b"/sbin/init\0", None);
        assert_eq!(detect(r.path()), Init::Other);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(detect(empty.path()), Init::Other);
    }

    #[test]
    fn modes() {
        assert_eq!(Mode::parse(None), Some(Mode::Powerdown));
        assert_eq!(Mode::parse(Some("powerdown")), Some(Mode::Powerdown));
        assert_eq!(Mode::parse(Some("halt")), Some(Mode::Halt));
        assert_eq!(Mode::parse(Some("reboot")), Some(Mode::Reboot));
        for bad in ["", "poweroff", "Reboot", "reboot ", "suspend"] {
            assert_eq!(Mode::parse(Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn plans() {
        let all = |name: &str| Some(PathBuf::from(format!("/usr/sbin/{name}")));
        let none = |_: &str| None;
        let only = |want: &'static str| move |name: &str| (name == want).then(|| PathBuf::from(format!("/bin/{name}")));
        let run = |p: &str, args: &[&str]| Plan::Run(p.into(), args.iter().map(|a| a.to_string()).collect());
        assert_eq!(
            plan(Init::Systemd, Mode::Reboot, &all),
            run("/usr/sbin/systemctl", &["reboot"])
        );
        assert_eq!(plan(Init::Busybox, Mode::Powerdown, &all), Plan::SignalInit(Signal::SIGUSR2));
        assert_eq!(plan(Init::Busybox, Mode::Halt, &none), Plan::SignalInit(Signal::SIGUSR1));
        assert_eq!(plan(Init::Busybox, Mode::Reboot, &all), Plan::SignalInit(Signal::SIGTERM));
        assert_eq!(
            plan(Init::Other, Mode::Powerdown, &all),
            run("/usr/sbin/shutdown", &["-h", "-P", "+0", WALL])
        );
        assert_eq!(
            plan(Init::Other, Mode::Halt, &all),
            run("/usr/sbin/shutdown", &["-h", "-H", "+0", WALL])
        );
        assert_eq!(
            plan(Init::Other, Mode::Reboot, &all),
            run("/usr/sbin/shutdown", &["-r", "+0", WALL])
        );
        // systemd without systemctl (a broken image): what else there is.
        assert_eq!(
            plan(Init::Systemd, Mode::Halt, &only("halt")),
            run("/bin/halt", &[])
        );
        assert_eq!(plan(Init::Other, Mode::Powerdown, &only("poweroff")), run("/bin/poweroff", &[]));
        assert_eq!(plan(Init::Other, Mode::Powerdown, &only("reboot")), Plan::Kernel);
        assert_eq!(plan(Init::Other, Mode::Reboot, &none), Plan::Kernel);
    }
}
