//! `phoenix-ctl`: talk to a Phoenix guest agent from the host.
//!
//! Connects to the host end of the guest's port (the QEMU chardev UNIX socket) or to
//! an agent's `unix-listen` socket.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use phoenix_client::{Client, Options};
use serde_json::value::RawValue;

/// Talk to a Phoenix guest agent.
#[derive(Debug, Parser)]
#[command(name = "phoenix-ctl", version)]
struct Cli {
    /// The agent's socket (QEMU chardev socket or unix-listen socket).
    #[arg(
        short = 's',
        long,
        env = "PHOENIX_SOCKET",
        default_value = "/run/phoenix-ga.sock"
    )]
    socket: String,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Print replies as JSON (for scripts).
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check that the agent answers; prints its version.
    Ping,
    /// The agent's version and the commands it supports.
    Info,
    /// Send one raw request, e.g. '{"execute":"ping"}', and print the reply's value.
    Raw {
        /// The request object.
        request: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("phoenix-ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    let opts = Options {
        timeout: Some(Duration::from_secs_f64(cli.timeout)),
        ..Options::default()
    };
    let client = Client::connect_with(&cli.socket, opts)?;
    match &cli.command {
        Cmd::Ping => {
            let v = client.ping()?;
            if cli.json {
                println!("{}", serde_json::json!(v));
            } else {
                println!("{v}");
            }
        }
        Cmd::Info => {
            let version = client.ping()?;
            let commands = client.commands()?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"version": version, "commands": commands})
                );
            } else {
                println!("version  {version}");
                println!("commands {}", commands.join(" "));
            }
        }
        Cmd::Raw { request } => {
            let req: serde_json::Value = serde_json::from_str(request)?;
            let execute = req
                .get("execute")
                .and_then(|e| e.as_str())
                .ok_or("the request needs an \"execute\" string")?;
            let args: Option<Box<RawValue>> = match req.get("arguments") {
                Some(a) => Some(serde_json::value::to_raw_value(a)?),
                None => None,
            };
            let v = client.call_raw(execute, args.as_deref(), client.options().timeout)?;
            println!("{}", v.get());
        }
    }
    Ok(())
}
