//! `freeze`, `thaw` and `freeze-status`.

use phoenix_client::Client;

use crate::output;
use crate::Result;

/// `freeze [MOUNTPOINT...]`: all freezable filesystems when none are named.
pub fn freeze(client: &Client, mountpoints: &[String], json: bool) -> Result {
    client.fs_freeze((!mountpoints.is_empty()).then_some(mountpoints))?;
    if json {
        output::json(&true)?;
    }
    Ok(())
}

/// `thaw`.
pub fn thaw(client: &Client, json: bool) -> Result {
    client.fs_unfreeze()?;
    if json {
        output::json(&true)?;
    }
    Ok(())
}

/// `freeze-status`: `frozen` or `thawed` (`true`/`false` with `--json`).
pub fn status(client: &Client, json: bool) -> Result {
    let frozen = client.get_freeze_status()?;
    if json {
        output::json(&frozen)?;
    } else {
        println!("{}", if frozen { "frozen" } else { "thawed" });
    }
    Ok(())
}
