//! Files and directories: every `file-*` and `directory-*` command and
//! `get-file-md5sum`.
//!
//! All of them touch a disk, so all run on the worker pool and none runs while the
//! filesystems are frozen. A connection's reads and writes of one handle run in the
//! order it sent them, so a host may pipeline a transfer. Errors carry the errno of the failing call and name the path.

mod handles;
pub(crate) mod io;
mod meta;

pub use handles::Handles;

use super::{Command, Run};

const fn worker(name: &'static str, handler: super::Handler) -> Command {
    Command {
        name,
        run: Run::Worker,
        while_frozen: false,
        handler,
    }
}

/// A command on a handle: runs in request order with the connection's other requests
/// on the same handle.
const fn ordered(
    name: &'static str,
    handler: super::Handler,
    nowait: Option<super::NoWait>,
) -> Command {
    Command {
        name,
        run: Run::Ordered(nowait),
        while_frozen: false,
        handler,
    }
}

/// The files family's table.
pub static COMMANDS: &[Command] = &[
    worker("file-open", io::file_open),
    ordered("file-read", io::file_read, Some(io::file_read_nowait)),
    ordered("file-write", io::file_write, None),
    // Not ordered: a close takes effect at once, even while a read on the handle is
    // stuck (a FIFO with no writer), which is how a host gives up on it.
    worker("file-close", io::file_close),
    worker("get-file-md5sum", io::file_md5sum),
    worker("file-chown", meta::file_chown),
    worker("file-chmod", meta::file_chmod),
    worker("file-stat", meta::file_stat),
    worker("directory-create", meta::directory_create),
    worker("directory-list", meta::directory_list),
    worker("file-rename", meta::file_rename),
];
