//! Transports: how bytes reach the dispatcher and replies reach the host.
//!
//! * [`port`]: a virtio-serial port or a serial tty (one host at a time, which comes
//!   and goes while the device stays open);
//! * [`unix`]: a UNIX socket the agent listens on (one stream per client).

use std::io;
use std::sync::Arc;

use phoenix_proto::LineFramer;

use crate::agent::Agent;
use crate::config::Method;
use crate::dispatch::{self, Sink};

pub mod port;
pub mod unix;

/// Size of one read from the host.
const READ_BUF: usize = 64 << 10;

/// Serves the configured transport until a fatal error; clean exits go through
/// [`Agent::exit`].
pub fn serve(agent: &Arc<Agent>) -> io::Result<()> {
    let path = agent.config.path();
    match agent.config.method {
        Method::VirtioSerial | Method::IsaSerial => port::serve(agent, &path),
        Method::UnixListen => unix::serve(agent, &path),
    }
}

/// Feeds bytes read from a host into the framer and dispatches every frame.
fn pump(agent: &Arc<Agent>, framer: &mut LineFramer, data: &[u8], sink: &Arc<dyn Sink>) {
    framer.push(data, |frame| dispatch::handle(agent, frame, sink));
}
