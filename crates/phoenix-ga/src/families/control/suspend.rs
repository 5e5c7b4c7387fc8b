//! `guest-suspend-ram`, `-disk` and `-hybrid`, where the guest kernel can do them.
//!
//! What the kernel offers is read first, so a guest that cannot gets a clear error
//! and not a half-done attempt: /sys/power/state lists `mem` (suspend to RAM) and
//! `disk` (hibernation); /sys/power/disk lists the hibernation modes (`suspend` is
//! hybrid: the image is written, then the guest sleeps in RAM). Hibernating also needs
//! an active swap device (/proc/swaps) to write the image to, and a resume device
//! (/sys/power/resume, set by `resume=` on the kernel command line or by the
//! initramfs) to come back from it: without one, the guest would power off and then
//! boot afresh, losing what ran. Under systemd those two are its own checks
//! (`systemctl hibernate` finds the swap and may record the resume device itself).
//!
//! Then: `systemctl suspend|hibernate|hybrid-sleep` when systemd runs (its sleep hooks
//! and inhibitors apply), else the kernel directly: `mem` or `disk` written to
//! /sys/power/state (hybrid: `suspend` to /sys/power/disk first, the previous mode
//! put back after). qemu-ga also tries pm-utils, gone from current distributions.
//! The write returns when the guest wakes up; the host sees the suspend happen.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;

use super::helper;
use super::init::{self, Init};
use super::Sources;
use crate::error::{Context as _, Error};

/// How long `systemctl suspend` may take (it returns after the wake-up; the monotonic
/// clock the wait counts does not run while the guest sleeps).
const HELPER_TIMEOUT: Duration = Duration::from_secs(300);

/// Which sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sleep {
    /// Suspend to RAM (S3).
    Ram,
    /// Hibernate (S4).
    Disk,
    /// Hibernate, then suspend to RAM.
    Hybrid,
}

impl Sleep {
    /// systemctl's verb.
    fn verb(self) -> &'static str {
        match self {
            Sleep::Ram => "suspend",
            Sleep::Disk => "hibernate",
            Sleep::Hybrid => "hybrid-sleep",
        }
    }

    /// /sys/power/state's word.
    fn state(self) -> &'static str {
        match self {
            Sleep::Ram => "mem",
            Sleep::Disk | Sleep::Hybrid => "disk",
        }
    }
}

/// The words of a sysfs list, selection brackets removed (`[platform] shutdown`).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .map(|w| w.trim_start_matches('[').trim_end_matches(']'))
}

/// A small sysfs or procfs file; `None` when it does not exist.
fn read(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::os(format!("read {}", path.display()), e)),
    }
}

fn unsupported(message: String) -> Error {
    Error::errno(Errno::EOPNOTSUPP, message)
}

/// Whether the guest can do `sleep`: an error saying why not. `systemd`: the swap and
/// resume checks are left to systemd.
pub fn check(src: &Sources, sleep: Sleep, systemd: bool) -> Result<(), Error> {
    let state_path = src.sys_power.join("state");
    let what = match sleep {
        Sleep::Ram => "suspend to RAM",
        Sleep::Disk => "hibernate",
        Sleep::Hybrid => "hibernate and suspend (hybrid)",
    };
    let Some(state) = read(&state_path)? else {
        return Err(unsupported(format!(
            "the guest kernel cannot {what}: it has no {} (CONFIG_PM_SLEEP)",
            state_path.display()
        )));
    };
    if !words(&state).any(|w| w == sleep.state()) {
        return Err(unsupported(format!(
            "the guest kernel cannot {what}: {} offers \"{}\", not \"{}\"",
            state_path.display(),
            state.trim(),
            sleep.state()
        )));
    }
    if sleep == Sleep::Ram {
        return Ok(());
    }
    let disk_path = src.sys_power.join("disk");
    let modes = read(&disk_path)?.unwrap_or_default();
    if sleep == Sleep::Hybrid && !words(&modes).any(|w| w == "suspend") {
        return Err(unsupported(format!(
            "the guest kernel cannot {what}: {} offers \"{}\", not \"suspend\"",
            disk_path.display(),
            modes.trim()
        )));
    }
    if systemd {
        return Ok(());
    }
    let swaps = read(&src.proc_swaps)?.unwrap_or_default();
    if swaps.lines().skip(1).all(|l| l.trim().is_empty()) {
        return Err(Error::errno(
            Errno::ENODEV,
            format!(
                "cannot {what}: no swap space is active to write the image to ({} lists none)",
                src.proc_swaps.display()
            ),
        ));
    }
    let resume_path = src.sys_power.join("resume");
    if let Some(resume) = read(&resume_path)? {
        if resume.trim() == "0:0" {
            return Err(Error::errno(
                Errno::ENODEV,
                format!(
                    "cannot {what}: no resume device ({} is 0:0; add resume= to the kernel \
                     command line), the guest would boot afresh instead of resuming",
                    resume_path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks, then sleeps; returns after the wake-up.
pub fn suspend(src: &Sources, sleep: Sleep) -> Result<(), Error> {
    let systemd = init::detect(&src.root) == Init::Systemd;
    let systemctl = systemd
        .then(|| helper::find(&src.bin_dirs, "systemctl"))
        .flatten();
    check(src, sleep, systemctl.is_some())?;
    tracing::warn!(?sleep, systemd = systemctl.is_some(), "guest-suspend: the guest goes to sleep");
    if let Some(systemctl) = systemctl {
        return helper::run(&systemctl, &[sleep.verb().to_string()], HELPER_TIMEOUT);
    }
    let state = src.sys_power.join("state");
    if sleep != Sleep::Hybrid {
        return write(&state, sleep.state());
    }
    let disk = src.sys_power.join("disk");
    let before = read(&disk)?.unwrap_or_default();
    let before = before
        .split_whitespace()
        .find(|w| w.starts_with('['))
        .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string());
    write(&disk, "suspend")?;
    let slept = write(&state, "disk");
    if let Some(mode) = before {
        if let Err(e) = write(&disk, &mode) {
            tracing::warn!(error = %e.message(), mode, "hibernation mode not put back");
        }
    }
    slept
}

/// Writes `value` into the sysfs attribute `path`.
fn write(path: &Path, value: &str) -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .context(|| format!("write \"{value}\" to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture root with /sys/power and /proc/swaps as given.
    fn power(state: Option<&str>, disk: &str, resume: Option<&str>, swap: bool) -> (tempfile::TempDir, Sources) {
        let dir = tempfile::tempdir().unwrap();
        let src = Sources::under(dir.path());
        std::fs::create_dir_all(&src.sys_power).unwrap();
        std::fs::create_dir_all(src.proc_swaps.parent().unwrap()).unwrap();
        if let Some(state) = state {
            std::fs::write(src.sys_power.join("state"), state).unwrap();
        }
        std::fs::write(src.sys_power.join("disk"), disk).unwrap();
        if let Some(resume) = resume {
            std::fs::write(src.sys_power.join("resume"), resume).unwrap();
        }
        let mut swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n".to_string();
        if swap {
            swaps.push_str("/dev/vdb                                partition\t1048572\t\t0\t\t-2\n");
        }
        std::fs::write(&src.proc_swaps, swaps).unwrap();
        (dir, src)
    }

    const MODES: &str = "[platform] shutdown reboot suspend test_resume\n";

    #[test]
    fn what_the_kernel_offers() {
        // The e2e guest: everything offered, no swap, no resume device.
        let (_d, src) = power(Some("freeze mem disk\n"), MODES, Some("0:0\n"), false);
        check(&src, Sleep::Ram, false).unwrap();
        let e = check(&src, Sleep::Disk, false).unwrap_err();
        assert_eq!(e.code(), libc::ENODEV);
        assert!(e.message().contains("no swap space is active"), "{}", e.message());
        assert!(check(&src, Sleep::Hybrid, false).unwrap_err().message().contains("swap"));
        // Under systemd, swap and resume are systemd's checks.
        check(&src, Sleep::Disk, true).unwrap();
        // Swap but no resume device.
        let (_d, src) = power(Some("freeze mem disk\n"), MODES, Some("0:0\n"), true);
        let e = check(&src, Sleep::Disk, false).unwrap_err();
        assert!(e.message().contains("no resume device"), "{}", e.message());
        // Both: fine.
        let (_d, src) = power(Some("freeze mem disk\n"), MODES, Some("254:16\n"), true);
        check(&src, Sleep::Disk, false).unwrap();
        check(&src, Sleep::Hybrid, false).unwrap();
        // A kernel that cannot suspend to RAM (no S3), or hybrid.
        let (_d, src) = power(Some("freeze disk\n"), "[shutdown] reboot\n", Some("254:16\n"), true);
        let e = check(&src, Sleep::Ram, false).unwrap_err();
        assert_eq!(e.code(), libc::EOPNOTSUPP);
        assert_eq!(
            e.message(),
            format!(
                "the guest kernel cannot suspend to RAM: {} offers \"freeze disk\", not \"mem\"",
                src.sys_power.join("state").display()
            )
        );
        check(&src, Sleep::Disk, false).unwrap();
        let e = check(&src, Sleep::Hybrid, false).unwrap_err();
        assert!(e.message().contains("not \"suspend\""), "{}", e.message());
        // No power management at all.
        let (_d, src) = power(None, "", None, true);
        let e = check(&src, Sleep::Ram, false).unwrap_err();
        assert_eq!(e.code(), libc::EOPNOTSUPP);
        assert!(e.message().contains("CONFIG_PM_SLEEP"), "{}", e.message());
    }

    #[test]
    fn hybrid_through_sysfs_puts_the_mode_back() {
        // Regular files stand for the attributes: the writes are seen afterwards.
        let (d, src) = power(Some("freeze mem disk\n"), MODES, Some("254:16\n"), true);
        // Never this machine's own /sys/power.
        assert!(src.sys_power.starts_with(d.path()) && src.root.starts_with(d.path()));
        suspend(&src, Sleep::Hybrid).unwrap();
        let read = |name: &str| std::fs::read_to_string(src.sys_power.join(name)).unwrap();
        assert_eq!((read("state").as_str(), read("disk").as_str()), ("disk", "platform"));
    }
}
