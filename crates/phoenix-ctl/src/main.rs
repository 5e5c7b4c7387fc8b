//! `phoenix-ctl`: talk to a Phoenix guest agent from the host.
//!
//! Each command family has its module (`system`, `net`, `files`, `freeze`, `accounts`,
//! `control`); `fanout` runs one command on many guests; `cli` is the command line,
//! `output` the tables, sizes and JSON printing they share.

mod accounts;
mod cli;
mod control;
mod exec;
mod fanout;
mod files;
mod freeze;
mod net;
mod output;
mod qga;
mod system;

use std::error::Error as StdError;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use phoenix_client::api::control::PowerMode;
use phoenix_client::{Client, ClientError, Dialect, Options, Report};

use cli::{Cli, Cmd, DialectArg, IpCmd, SshKeysCmd};

/// What a command returns: its errors are printed on stderr by `main`, each source in
/// the chain once (`phoenix-ctl: connect /run/vm1-ga.sock: Connection refused (os error
/// 111)`).
pub type Result<T = ()> = std::result::Result<T, Box<dyn StdError + Send + Sync>>;

/// A mistake in the command line that clap cannot see (exit status 2).
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Usage {}

/// Exit status 1: the agent, or the local side, reported an error.
const EXIT_ERROR: u8 = 1;
/// Exit status 2: usage error (as clap uses).
const EXIT_USAGE: u8 = 2;
/// Exit status 3: the agent could not be reached or did not answer in time.
const EXIT_UNREACHABLE: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Completions { shell } = cli.command {
        let mut cmd = Cli::command();
        clap_complete::generate(shell, &mut cmd, "phoenix-ctl", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if fanout::wanted(&cli) {
        return match fanout::run(&cli) {
            Ok(status) => ExitCode::from(status),
            Err(e) => {
                eprintln!("phoenix-ctl: {}", Report(&*e));
                ExitCode::from(exit_status(&*e))
            }
        };
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_broken_pipe(&*e) {
                // `phoenix-ctl cat big | head`: the reader left, nothing to report.
                return ExitCode::SUCCESS;
            }
            eprintln!("phoenix-ctl: {}", Report(&*e));
            ExitCode::from(exit_status(&*e))
        }
    }
}

fn exit_status(e: &(dyn StdError + 'static)) -> u8 {
    if e.is::<Usage>() || matches!(e.downcast_ref(), Some(ClientError::Unsupported { .. })) {
        return EXIT_USAGE;
    }
    match e.downcast_ref::<ClientError>() {
        Some(
            ClientError::Connect { .. }
            | ClientError::Io(_)
            | ClientError::Timeout { .. }
            | ClientError::Closed
            | ClientError::Protocol(_),
        ) => EXIT_UNREACHABLE,
        _ => EXIT_ERROR,
    }
}

fn is_broken_pipe(e: &(dyn StdError + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

fn run(cli: &Cli) -> Result {
    if let Some(t) = cli.timeout.filter(|t| !(*t >= 0.0 && t.is_finite())) {
        return Err(Usage(format!("invalid --timeout {t}")).into());
    }
    // `exec` takes --timeout for the remote command; its replies wait the default.
    let reply_timeout = match (&cli.command, cli.timeout) {
        (Cmd::Exec { .. }, _) | (_, None) => 30.0,
        (_, Some(t)) => t,
    };
    let reply_timeout = Duration::try_from_secs_f64(reply_timeout)
        .map_err(|_| Usage(format!("invalid --timeout {reply_timeout:?}")))?;
    let opts = Options {
        timeout: (!reply_timeout.is_zero()).then_some(reply_timeout),
        dialect: match cli.dialect {
            DialectArg::Auto => None,
            DialectArg::Phoenix => Some(Dialect::Phoenix),
            DialectArg::Qga => Some(Dialect::Qga),
        },
        ..Options::default()
    };
    let client = Client::connect_with(&cli.socket[0], opts)?;
    let json = cli.json;
    if client.dialect() == Dialect::Qga {
        if let Some(done) = run_qga(&client, &cli.command, json) {
            return done;
        }
    }
    match &cli.command {
        Cmd::Ping => system::ping(&client, json),
        Cmd::Info => system::info(&client, json),
        Cmd::Raw { request } => system::raw(&client, request),
        Cmd::Sysinfo => system::sysinfo(&client, json),
        Cmd::Ip { cmd } => net::ip(&client, cmd, json),
        Cmd::Ls { long, path } => files::ls(&client, path, *long, json),
        Cmd::Stat { path } => files::stat(&client, path, json),
        Cmd::Cat { path } => files::cat(&client, path, json),
        Cmd::Md5sum { path } => files::md5sum(&client, path, json),
        Cmd::Mkdir { mode, path } => files::mkdir(&client, path, *mode, json),
        Cmd::Chmod { mode, path } => files::chmod(&client, path, *mode, json),
        Cmd::Chown { owner, path } => files::chown(&client, path, *owner, json),
        Cmd::Cp {
            src,
            dst,
            mode,
            in_place,
            quiet,
        } => {
            let opts = files::CpOptions {
                mode: *mode,
                in_place: *in_place,
                quiet: *quiet,
            };
            files::cp(&client, src, dst, &opts, json)
        }
        Cmd::Freeze { mountpoints } => freeze::freeze(&client, mountpoints, json),
        Cmd::Thaw => freeze::thaw(&client, json),
        Cmd::FreezeStatus => freeze::status(&client, json),
        Cmd::Passwd { crypted, user } => accounts::passwd(&client, user, *crypted, json),
        Cmd::SshKeys { cmd } => match cmd {
            SshKeysCmd::List { user } => accounts::list(&client, user, json),
            SshKeysCmd::Add { reset, user, file } => {
                accounts::add(&client, user, file.as_deref(), *reset, json)
            }
            SshKeysCmd::Remove { user, file } => {
                accounts::remove(&client, user, file.as_deref(), json)
            }
        },
        Cmd::Time { set, sync } => {
            let set = match (set, sync) {
                (Some(ns), _) => control::SetTime::At(*ns),
                (None, true) => control::SetTime::Sync,
                (None, false) => control::SetTime::Show,
            };
            control::time(&client, set, json)
        }
        Cmd::Shutdown => control::power(&client, PowerMode::Powerdown, json),
        Cmd::Reboot => control::power(&client, PowerMode::Reboot, json),
        Cmd::Halt => control::power(&client, PowerMode::Halt, json),
        Cmd::Vcpus { online } => control::vcpus(&client, *online, json),
        Cmd::Fstrim { minimum } => control::fstrim(&client, *minimum, json),
        Cmd::Exec {
            interactive,
            tty,
            env,
            cmd,
        } => exec::exec(
            &client,
            &exec::ExecOptions {
                interactive: *interactive,
                tty: *tty,
                timeout: cli.timeout,
                env,
                cmd,
            },
        ),
        Cmd::Completions { .. } => unreachable!("handled before connecting"),
    }
}

/// The commands that differ in the qemu-ga dialect; `None` for those the client runs
/// the same way in both (ping, info, raw, cat, cp, the freeze commands).
fn run_qga(client: &Client, cmd: &Cmd, json: bool) -> Option<Result> {
    use cli::{AddrCmd, LinkCmd, RouteCmd};
    let refuse = |what: &str| Some(Err(qga::unsupported(what).into()));
    match cmd {
        Cmd::Sysinfo => Some(qga::sysinfo(client, json)),
        Cmd::Ip { cmd } => match cmd {
            IpCmd::Addr {
                cmd: None | Some(AddrCmd::Show),
            }
            | IpCmd::Link {
                cmd: None | Some(LinkCmd::Show),
            } => Some(qga::show_ifaces(client, json)),
            IpCmd::Route {
                cmd: None | Some(RouteCmd::Show { .. }),
            } => Some(qga::show_routes(client, json)),
            _ => refuse("changing addresses, links or routes"),
        },
        Cmd::Md5sum { path } => Some(files::md5sum_by_reading(client, path, json)),
        Cmd::Ls { .. } => refuse("listing a directory"),
        Cmd::Stat { .. } => refuse("stat"),
        Cmd::Mkdir { .. } => refuse("creating a directory"),
        Cmd::Chmod { .. } => refuse("chmod"),
        Cmd::Chown { .. } => refuse("chown"),
        _ => None,
    }
}
