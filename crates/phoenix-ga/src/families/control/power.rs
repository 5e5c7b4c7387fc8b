//! `guest-shutdown`: a power request made through the guest's own init
//! ([`init`](super::init) says which and how), so its services stop cleanly; the
//! kernel alone (sync(2), reboot(2)) only where nothing else can be asked.
//!
//! The adapter thaws a freeze first: an init that unmounts or syncs a frozen
//! filesystem would hang there, and the guest would never go down.

use std::time::Duration;

use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::helper;
use super::init::{self, Mode, Plan};
use super::Sources;
use crate::error::{Context as _, Error};

/// How long `systemctl poweroff` or `shutdown` may take to accept the request.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks the guest's init to do `mode`. Returns once the request is made (the guest
/// goes down afterwards); an error if it could not be made.
pub fn shutdown(src: &Sources, mode: Mode) -> Result<(), Error> {
    let init = init::detect(&src.root);
    let plan = init::plan(init, mode, &|name| helper::find(&src.bin_dirs, name));
    tracing::warn!(?mode, ?init, ?plan, "guest-shutdown: asking the guest to go down");
    match plan {
        Plan::Run(program, args) => helper::run(&program, &args, HELPER_TIMEOUT),
        Plan::SignalInit(signal) => kill(Pid::from_raw(1), signal)
            .context(|| format!("signal init (PID 1) with {signal}")),
        Plan::Kernel => kernel(mode),
    }
}

/// The last resort: flush the filesystems and have the kernel stop the machine.
fn kernel(mode: Mode) -> Result<(), Error> {
    nix::unistd::sync();
    let cmd = match mode {
        Mode::Powerdown => libc::RB_POWER_OFF,
        Mode::Halt => libc::RB_HALT_SYSTEM,
        Mode::Reboot => libc::RB_AUTOBOOT,
    };
    // SAFETY: reboot(2) takes a command number and no memory; it returns only on error.
    let rc = unsafe { libc::reboot(cmd) };
    if rc == 0 {
        return Ok(());
    }
    Err(Error::os(
        format!("reboot(2) to {}", mode.verb()),
        std::io::Error::last_os_error(),
    ))
}
