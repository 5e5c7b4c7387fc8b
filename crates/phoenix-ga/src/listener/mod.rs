//! Listeners: a transport plus an envelope. A transport ([`port`], [`unix`]) moves
//! bytes and owns the writing side of each host connection (a [`Sink`]); it hands
//! what it reads to a [`Connection`], which frames it into requests and passes them
//! to the dispatcher in the listener's dialect. The agent serves any number of
//! listeners at once, all on the same state.
//!
//! * [`port`]: a virtio-serial port or a serial tty (one host at a time, which comes
//!   and goes while the device stays open);
//! * [`unix`]: a UNIX socket the agent listens on (one stream per client);
//! * [`vsock`]: an AF_VSOCK port the agent listens on (one stream per host
//!   connection; Firecracker, Cloud Hypervisor, kata, QEMU's vhost-vsock).
//!
//! The two socket listeners share their per-client serving ([`stream`]).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use phoenix_proto::LineFramer;

use crate::agent::Agent;
use crate::dispatch::{self, Conn};
use crate::envelope::Envelope;
use crate::reply::Sink;

pub mod port;
pub mod stream;
pub mod unix;
pub mod vsock;

/// Size of one read from the host.
const READ_BUF: usize = 64 << 10;

/// How a listener reaches its hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A virtio-serial port or a serial tty.
    Port(PathBuf),
    /// A UNIX socket the agent creates and listens on.
    Unix(PathBuf),
    /// An AF_VSOCK port the agent listens on, on `cid` ([`vsock::ANY_CID`]: any).
    Vsock {
        /// The guest CID to bind.
        cid: u32,
        /// The port.
        port: u32,
    },
}

/// A transport and the dialect spoken on it.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Where the hosts are.
    pub transport: Transport,
    /// What they speak.
    pub envelope: &'static dyn Envelope,
    /// Whether a missing device is waited for rather than an error.
    pub retry: bool,
}

/// One host connection: its framer and where its requests go.
#[derive(Debug)]
pub struct Connection {
    agent: Arc<Agent>,
    conn: Conn,
    framer: LineFramer,
}

impl Connection {
    /// A connection whose replies go to `sink`.
    pub fn new(agent: &Arc<Agent>, envelope: &'static dyn Envelope, sink: Arc<dyn Sink>) -> Self {
        Self {
            framer: LineFramer::new(agent.config.max_line_bytes),
            agent: Arc::clone(agent),
            conn: Conn::new(envelope, sink),
        }
    }

    /// Handles bytes read from the host: every complete request is dispatched.
    pub fn feed(&mut self, data: &[u8]) {
        let (agent, conn) = (&self.agent, &self.conn);
        self.framer
            .push(data, |frame| dispatch::handle(agent, conn, frame));
    }

    /// The host went away: its partial request is forgotten.
    pub fn reset(&mut self) {
        self.framer.reset();
    }

    /// Whether the framer keeps a long line's buffer for the next one; the transport
    /// calls [`Connection::release`] once the host has been quiet for
    /// [`memory::IDLE`](crate::memory::IDLE).
    pub fn holds_memory(&self) -> bool {
        self.framer.holds_memory()
    }

    /// Gives the kept line buffer back.
    pub fn release(&mut self) {
        self.framer.release();
    }
}

/// Serves every listener until none is left; clean exits go through [`Agent::exit`].
/// Each listener beyond the first gets a thread of its own. A listener that fails (its
/// port is held by another agent, say) is logged and the others go on; the error of
/// the last one is returned.
pub fn serve(agent: &Arc<Agent>, listeners: Vec<Listener>) -> io::Result<()> {
    let alive = Arc::new(AtomicUsize::new(listeners.len()));
    let mut listeners = listeners.into_iter();
    let Some(first) = listeners.next() else {
        return Err(io::Error::other("no listener configured"));
    };
    for listener in listeners {
        let (agent, alive) = (Arc::clone(agent), Arc::clone(&alive));
        thread::Builder::new()
            .name("listener".into())
            .stack_size(256 << 10)
            .spawn(move || {
                if let Err(e) = serve_one(&agent, &listener) {
                    if alive.fetch_sub(1, Ordering::SeqCst) == 1 {
                        tracing::error!("{e}");
                        agent.exit(1);
                    }
                    tracing::error!("{e}; serving the other listeners");
                }
            })?;
    }
    let result = serve_one(agent, &first);
    if let Err(e) = &result {
        if alive.fetch_sub(1, Ordering::SeqCst) > 1 {
            tracing::error!("{e}; serving the other listeners");
            loop {
                thread::park();
            }
        }
    }
    result
}

fn serve_one(agent: &Arc<Agent>, listener: &Listener) -> io::Result<()> {
    let envelope = listener.envelope;
    let connect = |sink| Connection::new(agent, envelope, sink);
    let send_timeout = Duration::from_secs(agent.config.send_timeout);
    tracing::info!(transport = ?listener.transport, dialect = envelope.dialect().name(), "listener");
    match &listener.transport {
        Transport::Port(path) => {
            if listener.retry {
                port::wait_for(path)?;
            }
            port::serve(path, send_timeout, connect)
        }
        Transport::Unix(path) => {
            let socket = unix::bind(path)?;
            let owned = path.clone();
            agent.on_exit(move || {
                let _ = std::fs::remove_file(&owned);
            });
            let agent = Arc::clone(agent);
            unix::serve(socket, path, send_timeout, move |sink| {
                Connection::new(&agent, envelope, sink)
            })
        }
        Transport::Vsock { cid, port } => {
            let agent = Arc::clone(agent);
            vsock::serve(*cid, *port, send_timeout, move |sink| {
                Connection::new(&agent, envelope, sink)
            })
        }
    }
}
