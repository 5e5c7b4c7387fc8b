//! Host-side client for the Phoenix guest agent.
//!
//! Connects to the host end of the guest's port (the QEMU chardev UNIX socket), or to
//! the agent's own `unix-listen` socket, or to a character device, or to the agent's
//! vsock port: through the host's AF_VSOCK (`vsock:CID:PORT`) or through a VMM's
//! hybrid vsock socket (`hvsock:/path/to/socket:PORT`: Firecracker, Cloud Hypervisor,
//! vhost-device-vsock); see [`Target`]. Many calls may be
//! in flight at once from several threads; replies are matched to calls by tag.
//!
//! ```no_run
//! let client = phoenix_client::Client::connect("/run/vm1-ga.sock")?;
//! println!("agent {}", client.ping()?);
//! # Ok::<(), phoenix_client::ClientError>(())
//! ```

pub mod api;
mod conn;
mod error;
mod stream;
mod target;
pub mod transfer;

pub use api::AgentInfo;
pub use conn::{Client, Options, Pending};
pub use error::{AgentError, ClientError, Report};
pub use phoenix_proto::Dialect;
pub use target::Target;
pub use transfer::{Progress, Transfer, UploadOptions};
