//! The command families, one folder each: the family's state and operations (typed
//! Rust, no JSON), and the adapters of its wire commands. The [`families!`] list at
//! the end is where a family is registered: one line each.

use std::any::Any;
use std::io;
use std::sync::Arc;

use crate::agent::Agent;
use crate::command::Entry;
use crate::config::Cli;
use crate::gate::Gate;

/// What a family is given when the agent is built.
#[derive(Debug)]
pub struct Setup<'a> {
    /// The agent's configuration.
    pub config: &'a Cli,
    /// The frozen gate, for the one family that closes it.
    pub gate: &'a Arc<Gate>,
}

/// A command family: its state, its commands and its hooks.
pub trait Family: Any + Send + Sync {
    /// The family's state when the agent starts.
    fn new(setup: &Setup<'_>) -> Self
    where
        Self: Sized;

    /// The family's commands, in the order `get-commands` lists them.
    fn commands(&self) -> &'static [Entry];

    /// Starts what the family runs beside the requests (a timer, a panic hook); called
    /// once, after the agent is built and before it serves.
    fn start(&self, _agent: &Arc<Agent>) -> io::Result<()> {
        Ok(())
    }

    /// The first thing a clean exit does, before the exit hooks and while commands may
    /// still be running; must not block for long.
    fn before_exit(&self) {}
}

/// Every family of the agent, each reachable by its type.
#[derive(Default)]
pub struct Families {
    families: Vec<Arc<dyn Family>>,
    states: Vec<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Families {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Families")
            .field("count", &self.families.len())
            .finish()
    }
}

impl Families {
    fn add<F: Family>(&mut self, family: F) {
        let family = Arc::new(family);
        self.families.push(family.clone());
        self.states.push(family);
    }

    /// The family of type `F`. Panics if it was not registered in [`build`] (a bug
    /// that every test of its commands would show).
    pub fn get<F: Family>(&self) -> &F {
        self.states
            .iter()
            .find_map(|s| s.downcast_ref::<F>())
            .unwrap_or_else(|| panic!("family {} is not registered", std::any::type_name::<F>()))
    }

    /// Every family, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Family> {
        self.families.iter().map(|f| &**f)
    }
}

/// Declares the family modules and [`build`], which makes them in this order.
macro_rules! families {
    ($($module:ident :: $family:ident,)*) => {
        $(pub mod $module;)*

        /// Builds every family. The order is the order of `get-commands`.
        pub fn build(setup: &Setup<'_>) -> Families {
            let mut families = Families::default();
            $(families.add(<$module::$family as Family>::new(setup));)*
            families
        }
    };
}

// Every family: its folder and its type, in the order `get-commands` lists them.
families! {
    core::Core,
    files::Files,
    system::System,
    storage::Storage,
    net::Net,
    freeze::Freeze,
    accounts::Accounts,
    control::Control,
    exec::Exec,
}
