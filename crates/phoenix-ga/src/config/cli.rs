//! The command line (its definition only, which the man page is generated from: no
//! dependency on the rest of the agent).
//!
//! The original agent is launched as `phoenix-ga -p PATH [-debug] [-v]` (Go flags, one
//! dash for long names); those lines keep working. Everything else has a `--long` flag.

use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

/// How the agent reaches the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// A virtio-serial port in the guest (the host end is a QEMU chardev).
    VirtioSerial,
    /// A serial tty, put in raw mode.
    IsaSerial,
    /// A UNIX socket the agent creates and listens on (containers, tests, demos).
    UnixListen,
}

impl Method {
    /// The path used when `-p` is not given.
    pub fn default_path(self) -> &'static str {
        match self {
            Method::VirtioSerial => "/dev/virtio-ports/org.guest-agent.0",
            Method::IsaSerial => "/dev/ttyS0",
            Method::UnixListen => "/run/phoenix-ga.sock",
        }
    }
}

/// Phoenix guest agent: answers the host's JSON commands.
#[derive(Debug, Parser)]
#[command(
    name = "phoenix-ga",
    version,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Cli {
    /// Transport to the host.
    #[arg(
        short = 'm',
        long = "method",
        value_enum,
        default_value = "virtio-serial"
    )]
    pub method: Method,

    /// Device or socket path (default depends on the method).
    #[arg(short = 'p', long = "path")]
    pub path: Option<PathBuf>,

    /// Log every request and reply (to stderr or the log file).
    #[arg(long = "debug")]
    pub debug: bool,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,

    /// Commands to refuse, comma-separated; they are left out of get-commands.
    #[arg(long = "block-commands", value_delimiter = ',', value_name = "A,B")]
    pub block_commands: Vec<String>,

    /// The only commands to answer, comma-separated (ping and get-commands stay
    /// available unless blocked).
    #[arg(long = "allow-commands", value_delimiter = ',', value_name = "A,B")]
    pub allow_commands: Option<Vec<String>>,

    /// Longest request line in bytes; longer lines get an error reply.
    #[arg(long = "max-line-bytes", default_value_t = phoenix_proto::DEFAULT_MAX_LINE,
          value_parser = clap::value_parser!(usize))]
    pub max_line_bytes: usize,

    /// Worker threads that run commands concurrently.
    #[arg(long = "max-workers", default_value_t = 16, value_parser = parse_positive)]
    pub max_workers: usize,

    /// Requests accepted but not yet answered; past it the agent stops reading until
    /// replies go out.
    #[arg(long = "max-in-flight", default_value_t = 256, value_parser = parse_positive)]
    pub max_in_flight: usize,

    /// Open file handles allowed at once (file-open past it fails with EMFILE).
    #[arg(long = "max-handles", default_value_t = 1024, value_parser = parse_positive)]
    pub max_handles: usize,

    /// Seconds after which frozen filesystems thaw by themselves (0 disables).
    #[arg(long = "freeze-timeout", default_value_t = 600)]
    pub freeze_timeout: u64,

    /// Directory of the agent's runtime state (the freeze marker); a tmpfs, never a
    /// filesystem fs-freeze may freeze.
    #[arg(long = "state-dir", default_value = "/run/phoenix-ga")]
    pub state_dir: PathBuf,

    /// Also log to this file (held in memory while filesystems are frozen).
    #[arg(long = "log-file")]
    pub log_file: Option<PathBuf>,

    /// Configuration file of `key = value` lines named like these flags (default
    /// /etc/phoenix-ga.conf, read when present); flags on the command line win.
    #[arg(long = "config")]
    pub config: Option<PathBuf>,
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Long options the Go original spelled with one dash.
const GO_STYLE: &[&str] = &[
    "debug",
    "version",
    "method",
    "path",
    "block-commands",
    "allow-commands",
    "max-line-bytes",
    "max-workers",
    "max-in-flight",
    "max-handles",
    "freeze-timeout",
    "log-file",
    "config",
    "state-dir",
];

/// Rewrites Go-style `-debug` / `-path=X` into `--debug` / `--path=X`.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 || a.starts_with("--") || !a.starts_with('-') {
                return a;
            }
            let name = a[1..].split('=').next().unwrap_or_default();
            if GO_STYLE.contains(&name) {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

impl Cli {
    /// The transport path, with the method's default filled in.
    pub fn path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from(self.method.default_path()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let v = normalize_args(args.iter().map(|s| s.to_string()));
        Cli::try_parse_from(v).unwrap()
    }

    #[test]
    fn original_launch_line() {
        let c = parse(&["phoenix-ga", "-p", "/dev/vport0p1", "-debug"]);
        assert!(c.debug);
        assert_eq!(c.method, Method::VirtioSerial);
        assert_eq!(c.path(), PathBuf::from("/dev/vport0p1"));
    }

    #[test]
    fn defaults() {
        let c = parse(&["phoenix-ga"]);
        assert_eq!(
            c.path(),
            PathBuf::from("/dev/virtio-ports/org.guest-agent.0")
        );
        assert_eq!(c.max_line_bytes, 64 << 20);
        assert_eq!(c.max_handles, 1024);
        assert_eq!(c.freeze_timeout, 600);
        let c = parse(&["phoenix-ga", "-m", "unix-listen"]);
        assert_eq!(c.path(), PathBuf::from("/run/phoenix-ga.sock"));
    }

    #[test]
    fn lists_and_go_style_values() {
        let c = parse(&[
            "phoenix-ga",
            "-block-commands=file-write,route-add",
            "--allow-commands",
            "ping,get-commands",
        ]);
        assert_eq!(c.block_commands, vec!["file-write", "route-add"]);
        assert_eq!(c.allow_commands.unwrap(), vec!["ping", "get-commands"]);
    }

    #[test]
    fn rejects_zero_workers() {
        let v = normalize_args(["x", "--max-workers", "0"].map(String::from));
        Cli::try_parse_from(v).unwrap_err();
    }
}
