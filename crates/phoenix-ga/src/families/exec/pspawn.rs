//! Starting a child without a terminal through `posix_spawn`, which glibc does with
//! `clone(CLONE_VM | CLONE_VFORK)`: the agent's page tables are not copied, as a
//! `fork` copies them. On this project's nested-virtualisation CI machine that halves
//! the time from `guest-exec` to a started child (about 1,150 µs down to 550 µs for
//! `/bin/true`); in any guest it saves the copy of the agent's mappings.
//!
//! The child gets what [`spawn`](super::spawn)'s fork path gives it: a session of its
//! own (`POSIX_SPAWN_SETSID`, glibc 2.26), an empty signal mask and every signal at its
//! default action (glibc's internal two included, which its spawn would leave ignored), its three streams, and no other descriptor (`closefrom` after the
//! `dup2`s, glibc 2.34). A terminal (`TIOCSCTTY`) still takes the fork path, and so
//! does whatever `posix_spawn` cannot do as `execvp` does: a program found by name is
//! looked up here in the child's own `PATH`, and a file without a `#!` line
//! (`ENOEXEC`, which `execvp` hands to `/bin/sh`) is started again through the fork
//! path.

use std::ffi::{CString, OsStr, OsString};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::Error;

/// A child's standard stream as the spawn wires it.
#[derive(Debug)]
pub enum Stream<'a> {
    /// /dev/null.
    Null,
    /// This descriptor (the child's end of a pipe).
    Fd(&'a OwnedFd),
    /// The same as standard output (standard error only).
    Stdout,
}

/// What `posix_spawn` starts.
#[derive(Debug)]
pub struct Spawn<'a> {
    /// The program's file, found ([`find`]).
    pub program: &'a Path,
    /// The arguments, the program's name as given first.
    pub argv: &'a [&'a str],
    /// The environment.
    pub env: &'a [(OsString, OsString)],
    /// Standard input, output and error.
    pub streams: [Stream<'a>; 3],
}

/// The file `name` names for a child whose environment is `env`: `name` itself when it
/// holds a `/`, else the first executable regular file of that name in the child's
/// `PATH` (an empty entry is the current directory). `None` when there is none: the
/// fork path then gives `execvp`'s own error.
pub fn find(name: &str, env: &[(OsString, OsString)]) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = env.iter().find(|(k, _)| k == "PATH")?.1.as_bytes();
    path.split(|&b| b == b':')
        .map(|dir| match dir {
            b"" => Path::new(".").join(name),
            dir => Path::new(OsStr::from_bytes(dir)).join(name),
        })
        .find(|file| {
            std::fs::metadata(file)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Starts the child; its pid. `Ok(None)` when the fork path must do it: a file that is
/// not an executable format (`ENOEXEC`), or a child end that is one of the agent's own
/// standard descriptors (a `dup2` onto itself would leave it close-on-exec).
pub fn spawn(s: &Spawn<'_>) -> Result<Option<i32>, Error> {
    let low = s.streams.iter().any(|st| match st {
        Stream::Fd(fd) => fd.as_raw_fd() < 3,
        _ => false,
    });
    if low {
        return Ok(None);
    }
    let cstr = |bytes: &[u8]| CString::new(bytes).map_err(|e| Error::invalid(e.to_string()));
    let program = cstr(s.program.as_os_str().as_bytes())?;
    let argv = s
        .argv
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = s
        .env
        .iter()
        .map(|(k, v)| cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<Result<Vec<_>, _>>()?;
    let argv_ptrs = null_terminated(&argv);
    let envp_ptrs = null_terminated(&envp);

    let mut actions = FileActions::new()?;
    for (target, stream) in (0..).zip(&s.streams) {
        match stream {
            Stream::Null => actions.open_null(target)?,
            Stream::Fd(fd) => actions.dup2(fd.as_raw_fd(), target)?,
            Stream::Stdout => actions.dup2(1, target)?,
        }
    }
    actions.close_from(3)?;
    let attrs = Attrs::new()?;

    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is valid for the call: `pid` a local, `program` and the
    // argument and environment strings are NUL-terminated and outlive the call, both
    // pointer arrays end with a null pointer, and the file actions and attributes were
    // initialised by their constructors and are destroyed only after the call.
    let rc = unsafe {
        libc::posix_spawn(
            &mut pid,
            program.as_ptr(),
            actions.as_ptr(),
            attrs.as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
        )
    };
    match rc {
        0 => Ok(Some(pid)),
        libc::ENOEXEC => Ok(None),
        n => Err(super::spawn::spawn_errno(s.argv[0], Errno::from_raw(n))),
    }
}

/// Pointers to `strings`, then a null pointer, as `execve` takes them.
fn null_terminated(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings
        .iter()
        .map(|c| c.as_ptr().cast_mut())
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect()
}

/// `rc` of a posix_spawn helper as a result.
fn check(rc: libc::c_int, what: &str) -> Result<(), Error> {
    match rc {
        0 => Ok(()),
        n => Err(Error::os(what, std::io::Error::from_raw_os_error(n))),
    }
}

/// Initialised `posix_spawn_file_actions_t`, destroyed on drop.
struct FileActions(Box<libc::posix_spawn_file_actions_t>);

impl FileActions {
    fn new() -> Result<Self, Error> {
        let mut raw = Box::new(MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit());
        // SAFETY: init writes the whole object behind the pointer, which is valid.
        let rc = unsafe { libc::posix_spawn_file_actions_init(raw.as_mut_ptr()) };
        check(rc, "posix_spawn_file_actions_init")?;
        // SAFETY: initialised just above.
        Ok(Self(unsafe { raw.assume_init() }))
    }

    fn as_ptr(&self) -> *const libc::posix_spawn_file_actions_t {
        &*self.0
    }

    fn dup2(&mut self, fd: libc::c_int, target: libc::c_int) -> Result<(), Error> {
        // SAFETY: the object is initialised and exclusively borrowed; the call records
        // the action and takes integers.
        let rc = unsafe { libc::posix_spawn_file_actions_adddup2(&mut *self.0, fd, target) };
        check(rc, "posix_spawn_file_actions_adddup2")
    }

    fn open_null(&mut self, target: libc::c_int) -> Result<(), Error> {
        let flags = if target == 0 {
            libc::O_RDONLY
        } else {
            libc::O_WRONLY
        };
        // SAFETY: as in `dup2`; glibc copies the path (a static NUL-terminated string).
        let rc = unsafe {
            libc::posix_spawn_file_actions_addopen(
                &mut *self.0,
                target,
                c"/dev/null".as_ptr(),
                flags,
                0,
            )
        };
        check(rc, "posix_spawn_file_actions_addopen")
    }

    fn close_from(&mut self, fd: libc::c_int) -> Result<(), Error> {
        // SAFETY: as in `dup2`.
        let rc = unsafe { libc::posix_spawn_file_actions_addclosefrom_np(&mut *self.0, fd) };
        check(rc, "posix_spawn_file_actions_addclosefrom_np")
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once, here.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut *self.0) };
    }
}

/// `posix_spawnattr_t` for a child in a session of its own, with an empty signal mask
/// and every signal at its default action; destroyed on drop.
struct Attrs(Box<libc::posix_spawnattr_t>);

impl Attrs {
    fn new() -> Result<Self, Error> {
        let mut raw = Box::new(MaybeUninit::<libc::posix_spawnattr_t>::uninit());
        // SAFETY: init writes the whole object behind the pointer, which is valid.
        let rc = unsafe { libc::posix_spawnattr_init(raw.as_mut_ptr()) };
        check(rc, "posix_spawnattr_init")?;
        // SAFETY: initialised just above.
        let mut attrs = Self(unsafe { raw.assume_init() });
        let flags = i32::from(libc::POSIX_SPAWN_SETSID)
            | libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF;
        let flags = i16::try_from(flags).map_err(|e| Error::Internal(e.to_string()))?;
        let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: the sets are locals that sigemptyset and sigfillset initialise
        // before they are read or changed; a sigset_t is an array of unsigned longs,
        // one bit per signal from bit 0 (signal 1) on, and the internal signals' bits
        // lie within its first 64; the attribute object is initialised and ours.
        let rc = unsafe {
            libc::sigemptyset(empty.as_mut_ptr());
            libc::sigfillset(all.as_mut_ptr());
            // glibc's own signals (32 and 33), which sigfillset leaves out and
            // sigaddset refuses: without them here, glibc's spawn leaves them ignored
            // in the child, and an ignored signal stays ignored across exec.
            let words = all.as_mut_ptr().cast::<libc::c_ulong>();
            let per_word = usize::try_from(libc::c_ulong::BITS).unwrap_or(64);
            for sig in 32..libc::SIGRTMIN() {
                let bit = usize::try_from(sig - 1).unwrap_or(0);
                *words.add(bit / per_word) |= 1 << (bit % per_word);
            }
            let a: *mut libc::posix_spawnattr_t = &mut *attrs.0;
            [
                libc::posix_spawnattr_setflags(a, flags),
                libc::posix_spawnattr_setsigmask(a, empty.as_ptr()),
                libc::posix_spawnattr_setsigdefault(a, all.as_ptr()),
            ]
        };
        for rc in rc {
            check(rc, "posix_spawnattr")?;
        }
        Ok(attrs)
    }

    fn as_ptr(&self) -> *const libc::posix_spawnattr_t {
        &*self.0
    }
}

impl Drop for Attrs {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once, here.
        unsafe { libc::posix_spawnattr_destroy(&mut *self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_in_the_childs_path_and_paths_are_taken_as_given() {
        let env = |p: &str| vec![(OsString::from("PATH"), OsString::from(p))];
        assert_eq!(
            find("sh", &env("/nonexistent:/bin")),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(find("sh", &env("/nonexistent")), None);
        assert_eq!(find("sh", &[]), None);
        // A directory or a file without an execute bit is not a program.
        assert_eq!(find("etc", &env("/")), None);
        assert_eq!(find("passwd", &env("/etc")), None);
        assert_eq!(
            find("./x/y", &env("/bin")),
            Some(PathBuf::from("./x/y"))
        );
    }
}
