//! The accounts commands, qemu-ga's, in both dialects (one adapter each, listed twice
//! in the family's table). They run on the pool: they read and write files, and a
//! password waits for the account files' lock. Only the reading of keys runs while
//! the filesystems are frozen.

use phoenix_proto::qga::Empty;
use phoenix_proto::types::accounts::cmd::{
    GuestSetUserPassword, GuestSshAddAuthorizedKeys, GuestSshGetAuthorizedKeys,
    GuestSshRemoveAuthorizedKeys,
};
use phoenix_proto::types::accounts::{
    GuestAuthorizedKeys, GuestSetUserPasswordArgs, GuestSshAddAuthorizedKeysArgs,
    GuestSshGetAuthorizedKeysArgs, GuestSshRemoveAuthorizedKeysArgs,
};
use phoenix_proto::Command as _;

use super::Accounts;
use crate::agent::Agent;
use crate::command::{reply, Command, Outcome, Run};

/// Sets a user's password: hashed here (SHA-512 crypt), or crypted by the host.
impl Command for GuestSetUserPassword {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: GuestSetUserPasswordArgs) -> Outcome {
        agent.family::<Accounts>().set_password(
            Self::NAME,
            &a.username,
            a.password.expose(),
            a.crypted,
        )?;
        reply::<Self>(&Empty {})
    }
}

/// The keys of a user's `authorized_keys`.
impl Command for GuestSshGetAuthorizedKeys {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = true;

    fn run(agent: &Agent, a: GuestSshGetAuthorizedKeysArgs) -> Outcome {
        let keys = agent.family::<Accounts>().authorized_keys(&a.username)?;
        reply::<Self>(&GuestAuthorizedKeys { keys })
    }
}

/// Adds keys to a user's `authorized_keys`, or replaces them all (`reset`).
impl Command for GuestSshAddAuthorizedKeys {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: GuestSshAddAuthorizedKeysArgs) -> Outcome {
        agent.family::<Accounts>().add_authorized_keys(
            Self::NAME,
            &a.username,
            &a.keys,
            a.reset.unwrap_or(false),
        )?;
        reply::<Self>(&Empty {})
    }
}

/// Removes keys from a user's `authorized_keys`.
impl Command for GuestSshRemoveAuthorizedKeys {
    const RUN: Run = Run::Pool;
    const WHILE_FROZEN: bool = false;

    fn run(agent: &Agent, a: GuestSshRemoveAuthorizedKeysArgs) -> Outcome {
        agent
            .family::<Accounts>()
            .remove_authorized_keys(Self::NAME, &a.username, &a.keys)?;
        reply::<Self>(&Empty {})
    }
}
