//! The accounts family: a user's password and authorized ssh keys, with qemu-ga's
//! commands (`guest-set-user-password`, `guest-ssh-get-authorized-keys`,
//! `-add-authorized-keys`, `-remove-authorized-keys`), answered in both dialects.
//!
//! qemu-ga runs `chpasswd`, which minimal guests lack, and writes keys as root through
//! whatever `~/.ssh` is, a link to /etc included. Here:
//!
//! - [`passwd`]: users, from /etc/passwd itself (the static agent has no NSS);
//! - [`colon`]: a user's line of /etc/passwd or /etc/shadow, other bytes kept;
//! - [`crypt`]: SHA-512 crypt of a plain password, the shape of a crypted one;
//! - [`lock`]: the account files' lock, /etc/.pwd.lock, as lckpwdf(3) takes it;
//! - [`replace`]: a file replaced atomically, owner, mode and SELinux label kept;
//! - [`password`]: the update of /etc/shadow;
//! - [`keys`] and [`sshdir`]: `authorized_keys`' lines, and the walk from the home
//!   directory that never follows a link the user planted;
//! - [`qga`]: the adapters.
//!
//! The writes are refused while the filesystems are frozen (and checked again once the
//! lock is held); reading the keys is not, since a read cannot block on a frozen
//! filesystem (the kernel skips the access-time update then).

pub(crate) mod colon;
pub(crate) mod crypt;
pub(crate) mod keys;
pub(crate) mod lock;
pub(crate) mod passwd;
pub(crate) mod password;
mod qga;
pub(crate) mod replace;
pub(crate) mod sshdir;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use phoenix_proto::types::accounts::cmd;
use phoenix_proto::Dialect;

use super::{Family, Setup};
use crate::command::{entry, entry_in, Entry};
use crate::error::Error;
use crate::gate::Gate;
use crate::sync::lock;
use keys::AuthorizedKeys;
use passwd::User;
use sshdir::SshDir;

/// The accounts family's state: where the account files are (/etc; tests point it
/// elsewhere), and the frozen gate, read again once the lock is held.
#[derive(Debug)]
pub struct Accounts {
    etc: PathBuf,
    gate: Arc<Gate>,
    /// Held across each read, change and write of an `authorized_keys`, so that two
    /// requests at once (on two connections) cannot each write back a file without the
    /// other's keys.
    keys_update: Mutex<()>,
}

impl Family for Accounts {
    fn new(setup: &Setup<'_>) -> Self {
        Accounts::with_etc("/etc".into(), setup.gate.clone())
    }

    fn commands(&self) -> &'static [Entry] {
        static COMMANDS: [Entry; 8] = [
            entry::<cmd::GuestSetUserPassword>(),
            entry::<cmd::GuestSshGetAuthorizedKeys>(),
            entry::<cmd::GuestSshAddAuthorizedKeys>(),
            entry::<cmd::GuestSshRemoveAuthorizedKeys>(),
            entry_in::<cmd::GuestSetUserPassword>(Dialect::Phoenix),
            entry_in::<cmd::GuestSshGetAuthorizedKeys>(Dialect::Phoenix),
            entry_in::<cmd::GuestSshAddAuthorizedKeys>(Dialect::Phoenix),
            entry_in::<cmd::GuestSshRemoveAuthorizedKeys>(Dialect::Phoenix),
        ];
        &COMMANDS
    }
}

impl Accounts {
    /// The family with its account files in `etc`.
    pub fn with_etc(etc: PathBuf, gate: Arc<Gate>) -> Self {
        Accounts {
            etc,
            gate,
            keys_update: Mutex::new(()),
        }
    }

    /// Refuses a write begun before a freeze that is now in force.
    fn thawed(&self, command: &str) -> Result<(), Error> {
        if self.gate.is_closed() {
            return Err(Error::Frozen(command.to_string()));
        }
        Ok(())
    }

    /// The user `name` of /etc/passwd.
    fn user(&self, name: &str) -> Result<User, Error> {
        passwd::check_name(name)?;
        let path = self.etc.join("passwd");
        let text = std::fs::read(&path).map_err(|e| Error::os(format!("read {}", path.display()), e))?;
        passwd::find(&text, name)
    }

    /// Sets `name`'s password from the base64 `password` (plain, or a crypt(3) hash
    /// if `crypted`).
    pub fn set_password(
        &self,
        command: &str,
        name: &str,
        password: &str,
        crypted: bool,
    ) -> Result<(), Error> {
        passwd::check_name(name)?;
        let hash = password::new_hash(password, crypted)?;
        let etc = self.etc.display().to_string();
        let update = password::Update {
            etc: &self.etc,
            wait: lock::WAIT,
            today: password::today(),
        };
        let waiting = || {
            tracing::info!(lock = %format!("{etc}/{}", lock::LOCK_FILE), "waiting for the account files' lock");
        };
        update.set(name, &hash, waiting, || self.thawed(command))?;
        tracing::info!(user = name, crypted, "password set");
        Ok(())
    }

    /// The keys of `name`'s `authorized_keys`, in file order; none when it (or
    /// `~/.ssh`) is missing.
    pub fn authorized_keys(&self, name: &str) -> Result<Vec<String>, Error> {
        let user = self.user(name)?;
        let home = sshdir::open_home(&user)?;
        let Some(dir) = SshDir::open(&home, &user, false)? else {
            return Ok(Vec::new());
        };
        Ok(match dir.read_keys()? {
            Some(file) => AuthorizedKeys::parse(&file.content).keys(),
            None => Vec::new(),
        })
    }

    /// Adds `keys` to `name`'s `authorized_keys` (replaces them all if `reset`).
    pub fn add_authorized_keys(
        &self,
        command: &str,
        name: &str,
        keys: &[String],
        reset: bool,
    ) -> Result<(), Error> {
        keys.iter().try_for_each(|k| keys::check(k))?;
        let user = self.user(name)?;
        let home = sshdir::open_home(&user)?;
        let _update = lock(&self.keys_update);
        self.thawed(command)?;
        let dir = SshDir::open(&home, &user, true)?
            .ok_or_else(|| Error::Internal("~/.ssh was not created".into()))?;
        let existing = dir.read_keys()?;
        let existed = existing.is_some();
        let old = existing.unwrap_or_default();
        let mut file = if reset {
            AuthorizedKeys::default()
        } else {
            AuthorizedKeys::parse(&old.content)
        };
        file.add(keys);
        let new = file.to_bytes();
        if new != old.content || !existed {
            dir.write_keys(&user, &new, old.label)?;
        }
        tracing::info!(user = name, keys = keys.len(), reset, "authorized keys added");
        Ok(())
    }

    /// Removes `keys` from `name`'s `authorized_keys`; a key that is not there, or a
    /// missing file, is no error.
    pub fn remove_authorized_keys(&self, command: &str, name: &str, keys: &[String]) -> Result<(), Error> {
        keys.iter().try_for_each(|k| keys::check(k))?;
        let user = self.user(name)?;
        let home = sshdir::open_home(&user)?;
        let _update = lock(&self.keys_update);
        let Some(dir) = SshDir::open(&home, &user, false)? else {
            return Ok(());
        };
        let Some(old) = dir.read_keys()? else {
            return Ok(());
        };
        let mut file = AuthorizedKeys::parse(&old.content);
        if file.remove(keys) {
            self.thawed(command)?;
            dir.write_keys(&user, &file.to_bytes(), old.label)?;
        }
        tracing::info!(user = name, keys = keys.len(), "authorized keys removed");
        Ok(())
    }
}
