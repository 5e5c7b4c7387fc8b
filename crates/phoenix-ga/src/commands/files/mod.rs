//! Files and directories: every `file-*` and `directory-*` command and
//! `get-file-md5sum`.
//!
//! All of them touch a disk, so all run on the worker pool and none runs while the
//! filesystems are frozen. Errors carry the errno of the failing call and name the path.

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

/// The files family's table.
pub static COMMANDS: &[Command] = &[
    worker("file-open", io::file_open),
    worker("file-read", io::file_read),
    worker("file-write", io::file_write),
    worker("file-close", io::file_close),
    worker("get-file-md5sum", io::file_md5sum),
    worker("file-chown", meta::file_chown),
    worker("file-chmod", meta::file_chmod),
    worker("file-stat", meta::file_stat),
    worker("directory-create", meta::directory_create),
    worker("directory-list", meta::directory_list),
    worker("file-rename", meta::file_rename),
];
