//! The command line: `phoenix-ctl [-s SOCKET] [--timeout S] [--json] COMMAND ...`.
//!
//! Subcommands are shaped like the tools people know (`ip`, `ls`, `chmod`, `cp`), so
//! their arguments read the same way.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Talk to a guest agent from the host: phoenix-ga, the Phoenix agent, or qemu-ga.
///
/// Connects to the host end of the guest's agent port (the QEMU chardev UNIX socket,
/// e.g. `-chardev socket,id=ga0,path=/run/vm1-ga.sock,server=on,wait=off`), or to an
/// agent's own unix-listen socket, and speaks the protocol the agent answers in (the
/// Phoenix protocol, or QEMU's guest agent protocol, where the commands it has no
/// command for are refused). Exit status: 0 on success, 1 when the agent (or
/// the local side) reports an error, 2 on a usage error, 3 when the agent cannot be
/// reached or does not answer in time.
#[derive(Debug, Parser)]
#[command(name = "phoenix-ctl", version, propagate_version = true)]
pub struct Cli {
    /// The agent's socket (QEMU chardev socket or unix-listen socket), a serial
    /// device path, `vsock:CID:PORT` or `hvsock:PATH:PORT` (a VMM's hybrid vsock
    /// socket). Repeat it, or give a glob (`'/run/vms/*/agent.sock'`), to run the
    /// command on many guests at once.
    #[arg(
        short = 's',
        long,
        env = "PHOENIX_SOCKET",
        default_value = "/run/phoenix-ga.sock",
        global = true,
        value_name = "TARGET"
    )]
    pub socket: Vec<PathBuf>,
    /// With many guests: how many to run the command on at once.
    #[arg(long, default_value_t = 16, value_name = "N", global = true)]
    pub parallel: usize,
    /// Seconds to wait for each reply (0 waits for ever; 30 when not given). For
    /// `exec`: the remote command's timeout instead (its process group is killed
    /// after S seconds).
    #[arg(long, value_name = "S", global = true)]
    pub timeout: Option<f64>,
    /// Print replies as JSON, one line per command (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// The protocol the agent speaks on this socket; by default found out on connect
    /// (a `guest-sync-delimited` that qemu-ga's protocol answers and Phoenix's
    /// refuses).
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub dialect: DialectArg,
    #[command(subcommand)]
    pub command: Cmd,
}

/// `--dialect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DialectArg {
    /// Find out on connect.
    Auto,
    /// The Phoenix guest agent's protocol.
    Phoenix,
    /// QEMU's guest agent protocol (qemu-ga, or phoenix-ga on qemu-ga's port).
    Qga,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Check that the agent answers; prints its version.
    Ping,
    /// The agent's version and the commands it supports.
    Info,
    /// A summary of the guest: kernel, uptime, load, memory, users, disks.
    Sysinfo,
    /// Network interfaces, addresses and routes, as `ip` shows them.
    Ip {
        #[command(subcommand)]
        cmd: IpCmd,
    },
    /// List a directory (or show one file), as `ls`.
    Ls {
        /// Long listing: mode, links, owner, size, time, name.
        #[arg(short = 'l')]
        long: bool,
        /// The guest path.
        path: String,
    },
    /// Show a file's status, as `stat` (a final symlink is not followed).
    Stat {
        /// The guest path.
        path: String,
    },
    /// Print a guest file to stdout.
    Cat {
        /// The guest path.
        path: String,
    },
    /// Print the MD5 of a guest file, as `md5sum`.
    Md5sum {
        /// The guest path.
        path: String,
    },
    /// Create a directory and its missing parents (`mkdir -p`).
    Mkdir {
        /// Permissions in octal (default 755).
        #[arg(short = 'm', long = "mode", value_parser = parse_mode, value_name = "MODE")]
        mode: Option<u32>,
        /// The guest path.
        path: String,
    },
    /// Change a file's permissions, as `chmod` (octal modes only).
    Chmod {
        /// The new permissions in octal, e.g. 644 or 4755.
        #[arg(value_parser = parse_mode)]
        mode: u32,
        /// The guest path.
        path: String,
    },
    /// Change a file's owner and group, as `chown` (numeric ids only).
    Chown {
        /// `UID:GID`, `UID` (group unchanged) or `:GID` (owner unchanged).
        #[arg(value_parser = parse_owner, value_name = "UID:GID")]
        owner: (i64, i64),
        /// The guest path.
        path: String,
    },
    /// Copy a file between host and guest: `cp guest:SRC DST` or `cp SRC guest:DST`.
    ///
    /// SRC may be `-` (stdin) when copying to the guest, DST may be `-` (stdout)
    /// when copying from it. The MD5 of both ends is compared at the end. An upload
    /// goes to a temporary name beside DST and is renamed only when complete, when
    /// the agent has `file-rename`; without it, `--in-place` is needed.
    Cp {
        /// The source: `guest:PATH`, a local path, or `-`.
        src: String,
        /// The destination: `guest:PATH`, a local path, or `-`.
        dst: String,
        /// Permissions of a file created in the guest, in octal (default 644).
        #[arg(short = 'm', long = "mode", value_parser = parse_mode, value_name = "MODE")]
        mode: Option<u32>,
        /// Upload straight to DST when the agent cannot rename: a broken transfer
        /// then leaves DST incomplete.
        #[arg(long)]
        in_place: bool,
        /// No progress bar, even on a terminal.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Freeze the guest's filesystems (all freezable ones, or the mountpoints given).
    Freeze {
        /// Mountpoints to freeze (default: every freezable filesystem).
        mountpoints: Vec<String>,
    },
    /// Thaw the frozen filesystems.
    Thaw,
    /// Whether the guest's filesystems are frozen.
    FreezeStatus,
    /// Set a guest user's password. It is read from the terminal without echo
    /// (twice), or as the first line of stdin when stdin is not a terminal; never
    /// from the command line.
    Passwd {
        /// Read a crypt(3) hash (`$6$SALT$HASH`, as `mkpasswd -m sha-512` prints it)
        /// from stdin and store it as it is.
        #[arg(long)]
        crypted: bool,
        /// The guest user.
        user: String,
    },
    /// A guest user's authorized ssh keys (`~/.ssh/authorized_keys`).
    SshKeys {
        #[command(subcommand)]
        cmd: SshKeysCmd,
    },
    /// Show the guest's clock; `--set TIME` sets it (then the guest's RTC), `--sync`
    /// sets it from the guest's RTC (as `virsh domtime --sync` after a migration).
    Time {
        /// `now` (this host's clock), seconds since the epoch (`1796530886`,
        /// `@1796530886.25`) or RFC 3339 (`2026-12-06T06:43:13Z`).
        #[arg(long, value_parser = crate::control::parse_time, value_name = "TIME", conflicts_with = "sync")]
        set: Option<i64>,
        /// Set the clock from the guest's RTC.
        #[arg(long)]
        sync: bool,
    },
    /// Power the guest off through its own init (thawing a freeze first).
    Shutdown,
    /// Reboot the guest through its own init.
    Reboot,
    /// Halt the guest (stop without powering off) through its own init.
    Halt,
    /// The guest's logical processors; `--online N` leaves the N lowest-numbered
    /// online and takes the others offline first.
    Vcpus {
        /// How many CPUs should be online.
        #[arg(long, value_name = "N")]
        online: Option<usize>,
    },
    /// Discard the unused blocks of the guest's filesystems (thin-provisioned disks
    /// shrink on the host).
    Fstrim {
        /// Skip free extents shorter than this many bytes.
        #[arg(long, value_name = "BYTES")]
        minimum: Option<u64>,
    },
    /// Run a command in the guest, its output streamed and its exit status
    /// phoenix-ctl's (`exec -- ls -l /`, `exec -it -- sh`); Ctrl-C is forwarded.
    Exec {
        /// Stream the local standard input to the command.
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Run it on a terminal in the guest, the local terminal in raw mode.
        #[arg(short = 't', long)]
        tty: bool,
        /// The command's environment, K=V (repeatable): it replaces the agent's, and a
        /// default PATH is added when it has none.
        #[arg(short = 'e', long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Send one raw request and print the reply's value, e.g.
    /// `raw '{"execute":"file-stat","arguments":{"path":"/etc"}}'`.
    Raw {
        /// The request object.
        request: String,
    },
    /// Print a shell completion script, e.g. `phoenix-ctl completions bash >
    /// /etc/bash_completion.d/phoenix-ctl`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `ssh-keys` actions. FILE holds one key per line (an `authorized_keys` or a `.pub`
/// file: blank lines and `#` comments are skipped); without FILE, or with `-`, the
/// keys are read from stdin.
#[derive(Debug, Subcommand)]
pub enum SshKeysCmd {
    /// The user's keys, one per line.
    #[command(visible_alias = "ls")]
    List {
        /// The guest user.
        user: String,
    },
    /// Add keys (those already there are not added twice).
    Add {
        /// Replace every key with those given (none: remove them all).
        #[arg(long)]
        reset: bool,
        /// The guest user.
        user: String,
        /// The file of keys (default: stdin).
        file: Option<PathBuf>,
    },
    /// Remove keys (a key that is not there is no error).
    #[command(visible_alias = "rm")]
    Remove {
        /// The guest user.
        user: String,
        /// The file of keys (default: stdin).
        file: Option<PathBuf>,
    },
}

/// `ip` objects.
#[derive(Debug, Subcommand)]
pub enum IpCmd {
    /// Interface addresses.
    #[command(visible_alias = "a")]
    Addr {
        #[command(subcommand)]
        cmd: Option<AddrCmd>,
    },
    /// Interfaces.
    #[command(visible_alias = "l")]
    Link {
        #[command(subcommand)]
        cmd: Option<LinkCmd>,
    },
    /// The main routing table.
    #[command(visible_alias = "r")]
    Route {
        #[command(subcommand)]
        cmd: Option<RouteCmd>,
    },
}

/// `ip addr` actions.
#[derive(Debug, Subcommand)]
pub enum AddrCmd {
    /// Every interface with its addresses.
    #[command(visible_alias = "list")]
    Show,
    /// Add an address: `ip addr add 10.0.0.2/24 dev eth0`.
    Add(AddrArgs),
    /// Remove an address: `ip addr del 10.0.0.2/24 dev eth0`.
    Del(AddrArgs),
}

/// `ADDR/PREFIX dev IFNAME`.
#[derive(Debug, clap::Args)]
pub struct AddrArgs {
    /// The address with its prefix length, e.g. 10.0.0.2/24 or fd00::2/64.
    pub addr: String,
    /// The word `dev`.
    #[arg(value_parser = ["dev"], hide_possible_values = true)]
    pub dev_word: String,
    /// The interface.
    pub ifname: String,
}

/// `ip link` actions.
#[derive(Debug, Subcommand)]
pub enum LinkCmd {
    /// Every interface (as `ip addr show`).
    #[command(visible_alias = "list")]
    Show,
    /// Bring an interface up or down: `ip link set eth0 up`.
    Set {
        /// The interface.
        ifname: String,
        /// The new state.
        state: LinkState,
    },
}

/// An interface state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LinkState {
    /// Up.
    Up,
    /// Down.
    Down,
}

/// `ip route` actions.
#[derive(Debug, Subcommand)]
pub enum RouteCmd {
    /// The routes of the main table.
    #[command(visible_alias = "list")]
    Show {
        /// IPv4 routes only.
        #[arg(short = '4', conflicts_with = "v6")]
        v4: bool,
        /// IPv6 routes only.
        #[arg(short = '6')]
        v6: bool,
    },
    /// Add a route: `ip route add PREFIX [via GW] [src SRC] dev IFNAME [scope S]`.
    Add(RouteWords),
    /// Remove a route: `ip route del PREFIX [via GW] [src SRC] dev IFNAME [scope S]`.
    Del(RouteWords),
}

/// The words of `ip route add|del`, as iproute2 takes them.
#[derive(Debug, clap::Args)]
pub struct RouteWords {
    /// The destination, `ADDR/PREFIX` or `default`.
    pub prefix: String,
    /// `via GW`, `src SRC`, `dev IFNAME`, `scope universe|site|link|host|N`.
    #[arg(num_args = 0.., allow_hyphen_values = true, value_name = "KEYWORD VALUE")]
    pub words: Vec<String>,
}

/// A route parsed from [`RouteWords`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination prefix.
    pub dst: String,
    /// Gateway.
    pub via: Option<String>,
    /// Preferred source.
    pub src: Option<String>,
    /// Output interface.
    pub dev: String,
    /// Scope number.
    pub scope: Option<u8>,
}

impl RouteWords {
    /// Reads `via`, `src`, `dev` and `scope` pairs; `dev` is required.
    pub fn parse(&self) -> Result<RouteSpec, String> {
        let (mut via, mut src, mut dev, mut scope) = (None, None, None, None);
        let mut it = self.words.iter();
        while let Some(word) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| format!("`{word}` needs a value"))?
                .clone();
            match word.as_str() {
                "via" => via = Some(value),
                "src" => src = Some(value),
                "dev" | "oif" => dev = Some(value),
                "scope" => scope = Some(parse_scope(&value)?),
                other => {
                    return Err(format!(
                        "unknown route keyword `{other}` (expected via, src, dev or scope)"
                    ))
                }
            }
        }
        Ok(RouteSpec {
            dst: self.prefix.clone(),
            via,
            src,
            dev: dev.ok_or("a route needs `dev IFNAME`")?,
            scope,
        })
    }
}

/// A scope name of `ip route` or its number.
pub fn parse_scope(s: &str) -> Result<u8, String> {
    Ok(match s {
        "universe" | "global" => 0,
        "site" => 200,
        "link" => 253,
        "host" => 254,
        "nowhere" => 255,
        n => n
            .parse::<u8>()
            .map_err(|_| format!("invalid scope `{s}` (universe, site, link, host or 0-255)"))?,
    })
}

/// The name `ip route` gives a scope number.
pub fn scope_name(scope: u8) -> String {
    match scope {
        0 => "global".into(),
        200 => "site".into(),
        253 => "link".into(),
        254 => "host".into(),
        255 => "nowhere".into(),
        n => n.to_string(),
    }
}

/// An octal mode as `chmod` takes it: 1 to 4 octal digits.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "invalid mode `{s}`: octal digits, e.g. 644 or 4755"
        ));
    }
    u32::from_str_radix(s, 8).map_err(|e| e.to_string())
}

/// `UID:GID`, `UID` or `:GID` (numeric); a missing part is -1, "leave unchanged".
pub fn parse_owner(s: &str) -> Result<(i64, i64), String> {
    let id = |part: &str, what: &str| -> Result<i64, String> {
        if part.is_empty() {
            return Ok(-1);
        }
        part.parse::<u32>()
            .map(i64::from)
            .map_err(|_| format!("invalid {what} `{part}`: numeric ids only"))
    };
    let (uid, gid) = match s.split_once(':') {
        Some((u, g)) => (id(u, "uid")?, id(g, "gid")?),
        None => (id(s, "uid")?, -1),
    };
    if uid == -1 && gid == -1 {
        return Err("give UID:GID, UID or :GID".into());
    }
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn modes_and_owners() {
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        parse_mode("8").unwrap_err();
        parse_mode("u+x").unwrap_err();
        parse_mode("17777").unwrap_err();
        assert_eq!(parse_owner("1000:100"), Ok((1000, 100)));
        assert_eq!(parse_owner("1000"), Ok((1000, -1)));
        assert_eq!(parse_owner(":100"), Ok((-1, 100)));
        parse_owner("root:root").unwrap_err();
        parse_owner(":").unwrap_err();
    }

    #[test]
    fn route_words() {
        let w = RouteWords {
            prefix: "10.1.0.0/16".into(),
            words: ["via", "10.0.0.1", "dev", "eth0", "scope", "link"]
                .map(String::from)
                .to_vec(),
        };
        assert_eq!(
            w.parse(),
            Ok(RouteSpec {
                dst: "10.1.0.0/16".into(),
                via: Some("10.0.0.1".into()),
                src: None,
                dev: "eth0".into(),
                scope: Some(253),
            })
        );
        let w = RouteWords {
            prefix: "default".into(),
            words: vec!["via".into(), "10.0.0.1".into()],
        };
        assert!(w.parse().unwrap_err().contains("dev"));
        let w = RouteWords {
            prefix: "default".into(),
            words: vec!["dev".into()],
        };
        assert!(w.parse().unwrap_err().contains("needs a value"));
        let w = RouteWords {
            prefix: "default".into(),
            words: vec!["metric".into(), "5".into()],
        };
        assert!(w.parse().unwrap_err().contains("unknown route keyword"));
    }
}
