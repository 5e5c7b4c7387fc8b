//! Running the guest's own programs for power requests (`systemctl`, `shutdown`,
//! `poweroff`): found in the system's directories, run with no input, a sane `PATH`,
//! a process group of their own (a signal to the agent's group does not reach them),
//! their standard error kept for the error reply, and a bounded wait.
//!
//! The child is waited for by its own pid (`Child::wait` on a thread that owns it), so
//! no other child's status is taken. One that does not finish in time is left to run
//! (a shutdown under way is not interrupted) and reaped by that thread whenever it
//! ends; the request gets an error saying so.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::errno::Errno;

use crate::error::Error;

/// The `PATH` helpers get.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// At most this much of a helper's standard error goes into the error reply.
const STDERR_KEPT: usize = 2000;

/// The first of `dirs` holding an executable file `name`.
pub fn find(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Runs `program` with `args` and waits up to `timeout`; an error unless it exits 0.
pub fn run(program: &Path, args: &[String], timeout: Duration) -> Result<(), Error> {
    let shown = std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let child = Command::new(program)
        .args(args)
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::os(format!("run {shown}"), e))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("power-helper".into())
        .stack_size(64 << 10)
        .spawn(move || {
            let _ = tx.send(child.wait_with_output());
        })
        .map_err(|e| Error::os("start a thread to wait for the helper", e))?;
    let output = match rx.recv_timeout(timeout) {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(Error::os(format!("wait for {shown}"), e)),
        Err(_) => {
            return Err(Error::errno(
                Errno::ETIMEDOUT,
                format!(
                    "{shown} (pid {pid}) did not finish within {} ms; it is left to run",
                    timeout.as_millis()
                ),
            ))
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    let end = (0..=stderr.len().min(STDERR_KEPT))
        .rev()
        .find(|&i| stderr.is_char_boundary(i))
        .unwrap_or(0);
    let how = match (output.status.code(), output.status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => output.status.to_string(),
    };
    let mut message = format!("{shown} failed ({how})");
    if !stderr.is_empty() {
        message.push_str(": ");
        message.push_str(&stderr[..end]);
    }
    Err(Error::errno(Errno::EIO, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_in_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        let mk = |dir: &Path, mode: u32| {
            let p = dir.join("poweroff");
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        assert_eq!(find(&dirs, "poweroff"), None);
        let in_b = mk(b.path(), 0o755);
        assert_eq!(find(&dirs, "poweroff"), Some(in_b));
        // Not executable: skipped; a directory of that name too.
        mk(a.path(), 0o644);
        assert_eq!(find(&dirs, "poweroff"), Some(b.path().join("poweroff")));
        std::fs::create_dir(a.path().join("halt")).unwrap();
        assert_eq!(find(&dirs, "halt"), None);
    }

    #[test]
    fn exit_status_and_stderr_make_the_error() {
        let sh = PathBuf::from("/bin/sh");
        run(&sh, &["-c".into(), "exit 0".into()], Duration::from_secs(20)).unwrap();
        let e = run(
            &sh,
            &["-c".into(), "echo 'Operation inhibited' >&2; exit 1".into()],
            Duration::from_secs(20),
        )
        .unwrap_err();
        assert_eq!(e.code(), libc::EIO);
        assert_eq!(
            e.message(),
            "/bin/sh -c echo 'Operation inhibited' >&2; exit 1 failed (exit status 1): \
             Operation inhibited"
        );
        // The child has the sane PATH, not the agent's.
        run(&sh, &["-c".into(), format!("test \"$PATH\" = {PATH}")], Duration::from_secs(20)).unwrap();
        let e = run(Path::new("/nonexistent/x"), &[], Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.code(), libc::ENOENT);
    }

    #[test]
    fn a_helper_that_hangs_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
        let e = run(Path::new("/bin/sh"), &["-c".into(), script], Duration::from_millis(300))
            .unwrap_err();
        assert_eq!(e.code(), libc::ETIMEDOUT);
        assert!(e.message().contains("did not finish within 300 ms"), "{}", e.message());
        // Still running (not killed); end it here.
        let read = || std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let pid: i32 = loop {
            match read() {
                Some(pid) => break pid,
                None if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                None => panic!("the helper never started"),
            }
        };
        let pid = nix::unistd::Pid::from_raw(pid);
        nix::sys::signal::kill(pid, None).unwrap();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    }
}
