//! Files and directories: the table of open handles and the operations on files
//! ([`io`]: open, read, write, seek, flush, close, MD5; [`meta`]: stat, chown, chmod,
//! rename, mkdir, list), and the commands over them: the Phoenix dialect's
//! ([`phoenix`]) and qemu-ga's ([`qga`]), on one handle table.
//!
//! Errors carry the errno of the failing call and name the path.

pub(crate) mod encoding;
mod handles;
pub mod io;
mod meta;
mod phoenix;
mod qga;

use phoenix_proto::types::files::cmd;
use phoenix_proto::types::files::qga::cmd as qga_cmd;

use super::{Family, Setup};
use crate::command::{entry, Entry};
use crate::error::Error;
use handles::Handles;

/// The files family: its open handles.
#[derive(Debug)]
pub struct Files {
    handles: Handles,
}

impl Files {
    /// Succeeds if handle `id` is open; EBADF otherwise.
    pub fn check_open(&self, id: u64) -> Result<(), Error> {
        self.handles.get(id).map(drop)
    }
}

impl Family for Files {
    /// A family allowing `--max-handles` open handles.
    fn new(setup: &Setup<'_>) -> Self {
        Self {
            handles: Handles::new(setup.config.max_handles),
        }
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 17] = [
            entry::<cmd::FileOpen>(),
            entry::<cmd::FileRead>(),
            entry::<cmd::FileWrite>(),
            entry::<cmd::FileClose>(),
            entry::<cmd::GetFileMd5sum>(),
            entry::<cmd::FileChown>(),
            entry::<cmd::FileChmod>(),
            entry::<cmd::FileStat>(),
            entry::<cmd::DirectoryCreate>(),
            entry::<cmd::DirectoryList>(),
            entry::<cmd::FileRename>(),
            entry::<qga_cmd::GuestFileOpen>(),
            entry::<qga_cmd::GuestFileClose>(),
            entry::<qga_cmd::GuestFileRead>(),
            entry::<qga_cmd::GuestFileWrite>(),
            entry::<qga_cmd::GuestFileSeek>(),
            entry::<qga_cmd::GuestFileFlush>(),
        ];
        &COMMANDS
    }
}
