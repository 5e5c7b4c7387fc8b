//! Accounts: `guest-set-user-password` and `guest-ssh-get-authorized-keys`,
//! `-add-authorized-keys`, `-remove-authorized-keys`. qemu-ga's commands, which
//! phoenix-rs answers under the same names in both dialects, so these calls are the same
//! on either connection (and work against qemu-ga itself).

use base64::Engine as _;
use phoenix_proto::qga::Empty;
use phoenix_proto::types::accounts::cmd::{
    GuestSetUserPassword, GuestSshAddAuthorizedKeys, GuestSshGetAuthorizedKeys,
    GuestSshRemoveAuthorizedKeys,
};
use phoenix_proto::types::accounts::{
    GuestSetUserPasswordArgs, GuestSshAddAuthorizedKeysArgs, GuestSshGetAuthorizedKeysArgs,
    GuestSshRemoveAuthorizedKeysArgs, Secret,
};

use crate::{Client, ClientError};

impl Client {
    /// `guest-set-user-password`: sets `user`'s password to `password` (bytes, sent
    /// base64-encoded), which is the password itself, hashed by the agent, or with
    /// `crypted` a crypt(3) hash (`$6$SALT$HASH`) stored as it is. The encoded copy
    /// is a [`Secret`], overwritten once sent.
    pub fn set_user_password(
        &self,
        user: &str,
        password: &[u8],
        crypted: bool,
    ) -> Result<(), ClientError> {
        let args = GuestSetUserPasswordArgs {
            username: user.to_string(),
            password: Secret::new(base64::engine::general_purpose::STANDARD.encode(password)),
            crypted,
        };
        let Empty {} = self.invoke::<GuestSetUserPassword>(&args)?;
        Ok(())
    }

    /// `guest-ssh-get-authorized-keys`: the keys of `user`'s `~/.ssh/authorized_keys`
    /// (phoenix-rs: in file order, none when the file is missing; qemu-ga lists them
    /// backwards and fails on a missing file).
    pub fn ssh_authorized_keys(&self, user: &str) -> Result<Vec<String>, ClientError> {
        let args = GuestSshGetAuthorizedKeysArgs {
            username: user.to_string(),
        };
        Ok(self.invoke::<GuestSshGetAuthorizedKeys>(&args)?.keys)
    }

    /// `guest-ssh-add-authorized-keys`: adds the `keys` that are not there yet, or with
    /// `reset` makes them the whole file. `reset` is sent only when true (qemu-ga
    /// before 5.2 has no such argument).
    pub fn ssh_add_authorized_keys(
        &self,
        user: &str,
        keys: &[String],
        reset: bool,
    ) -> Result<(), ClientError> {
        let args = GuestSshAddAuthorizedKeysArgs {
            username: user.to_string(),
            keys: keys.to_vec(),
            reset: reset.then_some(true),
        };
        let Empty {} = self.invoke::<GuestSshAddAuthorizedKeys>(&args)?;
        Ok(())
    }

    /// `guest-ssh-remove-authorized-keys`: removes the `keys`; a key that is not there
    /// is no error.
    pub fn ssh_remove_authorized_keys(
        &self,
        user: &str,
        keys: &[String],
    ) -> Result<(), ClientError> {
        let args = GuestSshRemoveAuthorizedKeysArgs {
            username: user.to_string(),
            keys: keys.to_vec(),
        };
        let Empty {} = self.invoke::<GuestSshRemoveAuthorizedKeys>(&args)?;
        Ok(())
    }
}
