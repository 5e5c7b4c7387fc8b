//! Files and directories: `file-open`, `file-read`, `file-write`, `file-close`,
//! `get-file-md5sum`, `file-chown`, `file-chmod`, `file-stat`, `directory-create`,
//! `directory-list`; and qemu-ga's `guest-file-*` commands ([`qga`]).
//!
//! Paths are JSON strings; a handle is the agent's own number (starting at 1), not an
//! OS descriptor. Arguments default only where the command reference documents a
//! default (plus `count`, our extension, and the booleans `force` / `eof`, whose
//! absence has always meant false).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod qga;

/// Bytes `file-read` returns per call when `count` is absent (the original's fixed size).
pub const DEFAULT_READ_COUNT: u64 = 4096;

/// Largest `count` `file-read` accepts: 32 MiB, whose reply (base64) fits well within
/// a 64 MiB line.
pub const MAX_READ_COUNT: u64 = 32 << 20;

/// Largest permission value accepted: the permission bits plus setuid, setgid, sticky.
pub const MAX_PERM: u32 = 0o7777;

fn default_mode() -> String {
    "r".to_string()
}

fn default_file_perm() -> u32 {
    0o644
}

fn default_dir_perm() -> u32 {
    0o755
}

fn default_count() -> u64 {
    DEFAULT_READ_COUNT
}

/// `file-open` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOpen {
    /// The file to open.
    pub path: PathBuf,
    /// `"r"` (read) or `"w"` (write-only, create, truncate); default `"r"`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Permissions of a file that mode `"w"` creates, in decimal; default 420 (0644).
    /// Applied exactly, whatever the agent's umask.
    #[serde(default = "default_file_perm")]
    pub perm: u32,
    /// In mode `"w"`: when the file is a running executable (ETXTBSY), unlink it and
    /// create it anew.
    #[serde(default)]
    pub force: bool,
}

/// Arguments of the commands that only name a handle (`file-close`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleArgs {
    /// A handle `file-open` returned.
    pub handle_id: u64,
}

/// `file-read` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRead {
    /// A handle `file-open` returned.
    pub handle_id: u64,
    /// Compatible extension: bytes to read, 1 to [`MAX_READ_COUNT`]; default 4096.
    #[serde(default = "default_count")]
    pub count: u64,
}

/// `file-read` return value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReadResult {
    /// The bytes read, standard padded base64.
    pub bufb64: String,
    /// True when this read reached the end of the file (the handle is then closed).
    pub eof: bool,
}

/// `file-write` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWrite {
    /// A handle `file-open` returned in mode `"w"`.
    pub handle_id: u64,
    /// The bytes to append, standard padded base64.
    pub bufb64: String,
    /// True on the last chunk: the file is made durable (fsync) and the handle closed.
    #[serde(default)]
    pub eof: bool,
}

/// Arguments of the commands that take only a path (`get-file-md5sum`, `file-stat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathArgs {
    /// The file.
    pub path: PathBuf,
}

/// `file-rename` arguments (extension): rename(2), replacing `dst` atomically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRename {
    /// The existing file.
    pub src: PathBuf,
    /// Its new name; an existing file there is replaced in one step.
    pub dst: PathBuf,
}

/// `file-chown` arguments. -1 leaves the id unchanged (as chown(2) does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChown {
    /// The file (a final symlink is followed).
    pub path: PathBuf,
    /// New owner; default 0.
    #[serde(default)]
    pub uid: i64,
    /// New group; default 0.
    #[serde(default)]
    pub gid: i64,
}

/// `file-chmod` arguments; `perm` is required (the original set mode 000 without it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChmod {
    /// The file (a final symlink is followed).
    pub path: PathBuf,
    /// New permissions in decimal, at most 4095 (07777).
    pub perm: u32,
}

/// `directory-create` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryCreate {
    /// The directory; missing parents are created too.
    pub path: PathBuf,
    /// Permissions of every directory created, in decimal; default 493 (0755).
    #[serde(default = "default_dir_perm")]
    pub perm: u32,
}

/// `directory-list` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryList {
    /// The directory.
    pub path: PathBuf,
    /// At most this many entries; 0 or less (the default) means all.
    #[serde(default)]
    pub n: i64,
}

/// `file-stat` return value and each `directory-list` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// The last component of the path (`/` for the root).
    pub name: String,
    /// Whether it is a directory (a symlink to one is not).
    pub isdir: bool,
    /// The lstat(2) result.
    pub stat: Stat,
}

/// A seconds + nanoseconds timestamp, as Go prints `syscall.Timespec`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct Timespec {
    /// Seconds since the epoch.
    pub Sec: i64,
    /// Nanoseconds.
    pub Nsec: i64,
}

/// Linux x86-64 `struct stat` with the key names Go's `syscall.Stat_t` gives it, which
/// existing hosts read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct Stat {
    /// Device of the filesystem.
    pub Dev: u64,
    /// Inode number.
    pub Ino: u64,
    /// Hard links.
    pub Nlink: u64,
    /// File type and permission bits (33188 for a 0644 regular file).
    pub Mode: u32,
    /// Owner.
    pub Uid: u32,
    /// Group.
    pub Gid: u32,
    /// Padding of the C struct, always 0.
    pub X__pad0: i32,
    /// Device a special file stands for.
    pub Rdev: u64,
    /// Size in bytes.
    pub Size: i64,
    /// Preferred I/O size.
    pub Blksize: i64,
    /// 512-byte blocks allocated.
    pub Blocks: i64,
    /// Last access.
    pub Atim: Timespec,
    /// Last modification.
    pub Mtim: Timespec,
    /// Last status change.
    pub Ctim: Timespec,
    /// Reserved words of the C struct, always zero.
    pub X__unused: [i64; 3],
}

/// The files family's commands.
pub mod cmd {
    use super::*;

    crate::commands! { Phoenix;
        /// `file-open`: a new handle.
        FileOpen = "file-open" (super::FileOpen) -> u64;
        /// `file-read`: the next chunk; the read that reaches end of file closes the handle.
        FileRead = "file-read" (super::FileRead) -> FileReadResult;
        /// `file-write`: appends a chunk; `eof` syncs and closes.
        FileWrite = "file-write" (super::FileWrite) -> bool;
        /// `file-close`.
        FileClose = "file-close" (HandleArgs) -> bool;
        /// `get-file-md5sum`: lowercase hex.
        GetFileMd5sum = "get-file-md5sum" (PathArgs) -> String;
        /// `file-chown`.
        FileChown = "file-chown" (super::FileChown) -> bool;
        /// `file-chmod`.
        FileChmod = "file-chmod" (super::FileChmod) -> bool;
        /// `file-stat`: lstat of a path.
        FileStat = "file-stat" (PathArgs) -> super::FileStat;
        /// `directory-create`: `mkdir -p`.
        DirectoryCreate = "directory-create" (super::DirectoryCreate) -> bool;
        /// `directory-list`: the entries, each lstat'ed.
        DirectoryList = "directory-list" (super::DirectoryList) -> Vec<super::FileStat>;
        /// `file-rename` (extension): rename(2).
        FileRename = "file-rename" (super::FileRename) -> bool;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let o: FileOpen = serde_json::from_str(r#"{"path":"/x"}"#).unwrap();
        assert_eq!((o.mode.as_str(), o.perm, o.force), ("r", 420, false));
        let r: FileRead = serde_json::from_str(r#"{"handle_id":3}"#).unwrap();
        assert_eq!(r.count, 4096);
        let d: DirectoryCreate = serde_json::from_str(r#"{"path":"/d"}"#).unwrap();
        assert_eq!(d.perm, 493);
        let c: FileChown = serde_json::from_str(r#"{"path":"/f"}"#).unwrap();
        assert_eq!((c.uid, c.gid), (0, 0));
        let l: DirectoryList = serde_json::from_str(r#"{"path":"/d"}"#).unwrap();
        assert_eq!(l.n, 0);
    }

    #[test]
    fn required_fields_are_required() {
        serde_json::from_str::<FileChmod>(r#"{"path":"/f"}"#).unwrap_err();
        serde_json::from_str::<FileWrite>(r#"{"handle_id":1}"#).unwrap_err();
        serde_json::from_str::<HandleArgs>("{}").unwrap_err();
        serde_json::from_str::<FileChown>(r#"{"path":"/f","uid":"0"}"#).unwrap_err();
    }

    #[test]
    fn write_data_is_unescaped() {
        let w: FileWrite = serde_json::from_str(r#"{"handle_id":1,"bufb64":"QUJD"}"#).unwrap();
        assert_eq!((w.bufb64.as_str(), w.eof), ("QUJD", false));
        let w: FileWrite = serde_json::from_str(r#"{"handle_id":1,"bufb64":"a\/b="}"#).unwrap();
        assert_eq!(w.bufb64, "a/b=");
    }

    #[test]
    fn stat_has_the_go_key_names() {
        let v = serde_json::to_value(Stat::default()).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        let mut want = vec![
            "Dev",
            "Ino",
            "Nlink",
            "Mode",
            "Uid",
            "Gid",
            "X__pad0",
            "Rdev",
            "Size",
            "Blksize",
            "Blocks",
            "Atim",
            "Mtim",
            "Ctim",
            "X__unused",
        ];
        want.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(v["Atim"], serde_json::json!({"Sec": 0, "Nsec": 0}));
        assert_eq!(v["X__unused"], serde_json::json!([0, 0, 0]));
    }
}
