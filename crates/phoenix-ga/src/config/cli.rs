//! The command line (its definition only, which the man page is generated from: no
//! dependency on the rest of the agent).
//!
//! The original agent is launched as `phoenix-ga -p PATH [-debug] [-v]` (Go flags, one
//! dash for long names); those lines keep working. qemu-ga's command line works too
//! (`-m`, `-p`, `-t`, `-b`, `-a`, `-F`, `-D`, `-l`, `-f`, `-d`, `-r`, `-c`, `-V`), so a
//! unit or script written for qemu-ga starts this agent unchanged; started under the
//! name `qemu-ga`, `-v` is qemu-ga's verbose rather than the original's version.
//! Everything else has a `--long` flag.

use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

/// The protocol spoken on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DialectArg {
    /// The Phoenix guest agent's protocol.
    Phoenix,
    /// QEMU's guest agent protocol (libvirt, Proxmox, OpenStack).
    Qga,
}

/// How the agent reaches the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// A virtio-serial port in the guest (the host end is a QEMU chardev).
    VirtioSerial,
    /// A serial tty, put in raw mode.
    IsaSerial,
    /// A UNIX socket the agent creates and listens on (containers, tests, demos).
    UnixListen,
    /// An AF_VSOCK port the agent listens on: `-p CID:PORT`, CID 4294967295 (or -1)
    /// for any (Firecracker, Cloud Hypervisor, kata, QEMU's vhost-vsock-pci).
    VsockListen,
}

/// The virtio-serial port of the Phoenix dialect.
pub const PHOENIX_PORT: &str = "/dev/virtio-ports/org.guest-agent.0";

/// The virtio-serial port of the qemu-ga dialect.
pub const QGA_PORT: &str = "/dev/virtio-ports/org.qemu.guest_agent.0";

/// Where `-m vsock-listen` listens without `-p`: any CID, port 1023 (the packaged
/// unit's `--vsock` too). The port is below 1024, so only a privileged process can bind
/// it (no guest user can take it before the agent); clear of kata-agent's 1024 (the
/// first unprivileged port, which many guest agents take), Phoenix v2's gRPC 8383 and
/// systemd's sshd-over-vsock 22. docs/deployment.md says more.
pub const DEFAULT_VSOCK: &str = "4294967295:1023";

/// The vsock any-CID (qemu-ga's spelling; `-1` is accepted too).
pub const VSOCK_ANY_CID: u32 = u32::MAX;

/// qemu-ga's fsfreeze hook, run when `-F` is given without a path.
pub const DEFAULT_FSFREEZE_HOOK: &str = "/etc/qemu/fsfreeze-hook";

impl Method {
    /// The path used when `-p` is not given (virtio-serial: the Phoenix port; without
    /// `-p`, the agent serves both ports, see `Cli::listeners`).
    pub fn default_path(self) -> &'static str {
        match self {
            Method::VirtioSerial => PHOENIX_PORT,
            Method::IsaSerial => "/dev/ttyS0",
            Method::UnixListen => "/run/phoenix-ga.sock",
            Method::VsockListen => DEFAULT_VSOCK,
        }
    }

    /// The name qemu-ga's configuration file gives the method.
    pub fn name(self) -> &'static str {
        match self {
            Method::VirtioSerial => "virtio-serial",
            Method::IsaSerial => "isa-serial",
            Method::UnixListen => "unix-listen",
            Method::VsockListen => "vsock-listen",
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

    /// Device or socket path, or CID:PORT for vsock-listen (CID 4294967295 or -1: any;
    /// default any CID, port 1023). Without it, virtio-serial serves both agent ports
    /// that exist: org.guest-agent.0 (Phoenix) and org.qemu.guest_agent.0 (qemu-ga).
    #[arg(short = 'p', long = "path", allow_hyphen_values = true)]
    pub path: Option<PathBuf>,

    /// Also listen on this vsock port, beside the listeners of -m: [CID:]PORT[:DIALECT]
    /// (CID 4294967295 or -1, the default: any; DIALECT phoenix or qga, default as
    /// --dialect says, else phoenix). Repeat it, or separate with commas, for several.
    #[arg(long = "vsock", value_delimiter = ',', value_name = "CID:PORT",
          value_parser = VsockSpec::parse, allow_hyphen_values = true)]
    pub vsock: Vec<VsockSpec>,

    /// Seconds a host may take no byte of a reply before it is dropped (a socket
    /// client with it; on a port, the replies until the port takes bytes again), so a
    /// host that stops reading or leaves never holds a worker for longer.
    #[arg(long = "send-timeout", default_value_t = 60, value_name = "S",
          value_parser = parse_positive_u64)]
    pub send_timeout: u64,

    /// Protocol of the listener: a port given with -p gets it from its name
    /// (org.qemu.guest_agent.* speaks qga); a socket or tty speaks phoenix unless the
    /// agent was started as qemu-ga.
    #[arg(long = "dialect", value_enum)]
    pub dialect: Option<DialectArg>,

    /// Log every request and reply (to stderr or the log file).
    #[arg(long = "debug", visible_alias = "verbose")]
    pub debug: bool,

    /// Print the version and exit.
    #[arg(short = 'v', short_alias = 'V', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,

    /// Commands to refuse, comma-separated; they are left out of get-commands and
    /// shown disabled by guest-info. A name no dialect has is an error.
    #[arg(long = "block-commands", value_delimiter = ',', value_name = "A,B")]
    pub block_commands: Vec<String>,

    /// The only commands to answer, comma-separated (with the blocked ones taken out);
    /// name every command a host needs, ping and get-commands included. A name no
    /// dialect has is an error.
    #[arg(long = "allow-commands", value_delimiter = ',', value_name = "A,B")]
    pub allow_commands: Option<Vec<String>>,

    /// qemu-ga's spelling of --block-commands; a name this agent does not know is
    /// logged and ignored, as qemu-ga does.
    #[arg(
        short = 'b',
        long = "block-rpcs",
        value_delimiter = ',',
        value_name = "A,B"
    )]
    pub block_rpcs: Vec<String>,

    /// qemu-ga's spelling of --allow-commands; a name this agent does not know is
    /// logged and ignored, as qemu-ga does.
    #[arg(
        short = 'a',
        long = "allow-rpcs",
        value_delimiter = ',',
        value_name = "A,B"
    )]
    pub allow_rpcs: Option<Vec<String>>,

    /// Run this program with `freeze` before a freeze and `thaw` after the thaw
    /// (database flushes); without a path, /etc/qemu/fsfreeze-hook. Bounded by
    /// --fsfreeze-hook-timeout.
    #[arg(short = 'F', long = "fsfreeze-hook", num_args = 0..=1,
          default_missing_value = DEFAULT_FSFREEZE_HOOK, value_name = "PATH")]
    pub fsfreeze_hook: Option<PathBuf>,

    /// Seconds the fsfreeze hook may run before it is killed and the freeze (or thaw)
    /// goes on without it.
    #[arg(long = "fsfreeze-hook-timeout", default_value_t = 60, value_name = "S")]
    pub fsfreeze_hook_timeout: u64,

    /// Print the configuration in qemu-ga's file format and exit.
    #[arg(short = 'D', long = "dump-conf")]
    pub dump_conf: bool,

    /// Write the agent's process id to this file (removed on a clean exit).
    #[arg(short = 'f', long = "pidfile", value_name = "PATH")]
    pub pidfile: Option<PathBuf>,

    /// Detach from the terminal and run in the background.
    #[arg(short = 'd', long = "daemonize", alias = "daemon")]
    pub daemonize: bool,

    /// When a port or device is missing at start, wait for it to appear instead of
    /// failing.
    #[arg(short = 'r', long = "retry-path")]
    pub retry_path: bool,

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
    #[arg(
        short = 't',
        long = "state-dir",
        alias = "statedir",
        default_value = "/run/phoenix-ga"
    )]
    pub state_dir: PathBuf,

    /// Also log to this file (held in memory while filesystems are frozen).
    #[arg(short = 'l', long = "log-file", alias = "logfile")]
    pub log_file: Option<PathBuf>,

    /// Set when the agent was started under qemu-ga's name (not a flag).
    #[arg(skip)]
    pub as_qemu_ga: bool,

    /// Configuration file of `key = value` lines named like these flags (qemu-ga's
    /// format and key names too); flags on the command line win. Default
    /// /etc/phoenix-ga.conf, and also /etc/qemu/qemu-ga.conf (or $QGA_CONF) when
    /// started as qemu-ga; each read when present.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
}

fn parse_positive_u64(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A vsock listener: `[CID:]PORT[:DIALECT]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VsockSpec {
    /// The CID to bind ([`VSOCK_ANY_CID`]: whichever the guest has).
    pub cid: u32,
    /// The port.
    pub port: u32,
    /// The dialect, when the value names one.
    pub dialect: Option<DialectArg>,
}

impl VsockSpec {
    /// Parses `[CID:]PORT[:DIALECT]`; CID `-1` is the any-CID, as 4294967295 is.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts: Vec<&str> = text.split(':').collect();
        let dialect = match parts.last() {
            Some(&"phoenix") => Some(DialectArg::Phoenix),
            Some(&"qga") => Some(DialectArg::Qga),
            _ => None,
        };
        if dialect.is_some() {
            parts.pop();
        }
        let (cid, port) = match parts[..] {
            [port] => (VSOCK_ANY_CID, port),
            [cid, port] => (parse_cid(cid)?, port),
            _ => return Err(format!("{text:?}: expected [CID:]PORT[:phoenix|qga]")),
        };
        let port = match port.parse::<u32>() {
            Ok(u32::MAX) => return Err("port 4294967295 is the any-port: name a port".into()),
            Ok(p) => p,
            Err(_) => return Err(format!("{port:?} is not a vsock port (0 to 4294967294)")),
        };
        Ok(Self { cid, port, dialect })
    }
}

fn parse_cid(cid: &str) -> Result<u32, String> {
    match cid {
        "-1" => Ok(VSOCK_ANY_CID),
        c => c
            .parse::<u32>()
            .map_err(|_| format!("{c:?} is not a CID (0 to 4294967295, or -1 for any)")),
    }
}

impl std::fmt::Display for VsockSpec {
    /// The form [`VsockSpec::parse`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.cid, self.port)?;
        match self.dialect {
            Some(DialectArg::Phoenix) => f.write_str(":phoenix"),
            Some(DialectArg::Qga) => f.write_str(":qga"),
            None => Ok(()),
        }
    }
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
    "dialect",
    "vsock",
    "send-timeout",
];

/// Whether the program was started under qemu-ga's name (installed in its place).
pub fn invoked_as_qemu_ga(argv0: &str) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == "qemu-ga")
}

/// Rewrites Go-style `-debug` / `-path=X` into `--debug` / `--path=X`.
///
/// Started as qemu-ga, `-v` is qemu-ga's `--verbose` (our `--debug`).
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut qemu_ga = false;
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                qemu_ga = invoked_as_qemu_ga(&a);
                return a;
            }
            if qemu_ga && a == "-v" {
                return "--debug".to_string();
            }
            if a.starts_with("--") || !a.starts_with('-') {
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
    fn vsock_specs() {
        let spec = |t| VsockSpec::parse(t);
        let any = VSOCK_ANY_CID;
        let ok = |cid, port, dialect| Ok(VsockSpec { cid, port, dialect });
        assert_eq!(spec("1023"), ok(any, 1023, None));
        assert_eq!(spec("-1:1024"), ok(any, 1024, None));
        assert_eq!(spec("4294967295:1024"), ok(any, 1024, None));
        assert_eq!(spec("3:5:qga"), ok(3, 5, Some(DialectArg::Qga)));
        assert_eq!(spec("7:phoenix"), ok(any, 7, Some(DialectArg::Phoenix)));
        for bad in [
            "",
            "x",
            "-2:5",
            "1:2:3",
            "1:2:3:qga",
            "5:-1",
            "1:4294967295",
            "4294967296:1",
            "1:2:ssh",
            ":5",
        ] {
            assert!(spec(bad).is_err(), "{bad:?} parsed");
        }
        for text in ["4294967295:1023", "3:5:qga", "2:9:phoenix"] {
            assert_eq!(spec(text).unwrap().to_string(), text);
        }
        // On the command line, -1 is a value, not a flag.
        let c = parse(&[
            "phoenix-ga",
            "-m",
            "vsock-listen",
            "-p",
            "-1:5",
            "--vsock",
            "-1:6",
        ]);
        assert_eq!(c.method, Method::VsockListen);
        assert_eq!(c.path(), PathBuf::from("-1:5"));
        assert_eq!(c.vsock, [spec("6").unwrap()]);
        let v = normalize_args(["x", "--send-timeout", "0"].map(String::from));
        Cli::try_parse_from(v).unwrap_err();
    }

    #[test]
    fn rejects_zero_workers() {
        let v = normalize_args(["x", "--max-workers", "0"].map(String::from));
        Cli::try_parse_from(v).unwrap_err();
    }
}
