//! Configuration: the command line ([`cli`]), the configuration file ([`file`]) that
//! adds to it, and what they mean for the agent (its listeners).

mod cli;
pub mod file;

pub use cli::*;

use phoenix_proto::Dialect;

use crate::envelope;
use crate::listener::{Listener, Transport};

impl Cli {
    /// What the agent serves.
    pub fn listeners(&self) -> Vec<Listener> {
        let path = self.path();
        let transport = match self.method {
            Method::VirtioSerial | Method::IsaSerial => Transport::Port(path),
            Method::UnixListen => Transport::Unix(path),
        };
        vec![Listener {
            transport,
            envelope: envelope::of(Dialect::Phoenix),
        }]
    }
}
