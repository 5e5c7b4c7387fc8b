//! `phoenix-bench`: runs our agent and QEMU's guest agent (qemu-ga) side by side in
//! one run, through the same Rust client, and prints each figure with the ratio.
//!
//! Build and run: `cargo build --release -p phoenix-ga -p phoenix-bench &&
//! target/release/phoenix-bench` (see `--help`). qemu-ga comes from Debian's
//! qemu-guest-agent package.

mod core;
mod echo;
mod exec;
mod files;
mod freeze;
mod guest;
mod harness;
mod network;
mod qga;
mod soak;
mod system;
mod transfers;
mod vsock;

use std::path::PathBuf;

use clap::Parser;

use harness::Report;

/// Benchmark phoenix-ga against qemu-ga.
#[derive(Debug, Parser)]
#[command(name = "phoenix-bench")]
pub struct Opts {
    /// Our agent binary (default: phoenix-ga next to this program).
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// QEMU's guest agent binary.
    #[arg(long, default_value = "/usr/sbin/qemu-ga")]
    pub qemu_ga: PathBuf,
    /// Sections to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub sections: Vec<String>,
    /// Sequential pings for the round-trip figures.
    #[arg(long, default_value_t = 5000)]
    pub pings: usize,
    /// Seconds of each idle measurement (client connected, then none).
    #[arg(long, default_value_t = 60)]
    pub idle_secs: u64,
    /// MiB moved per direction in the guest section (raw port and 4 MiB-chunk files;
    /// 4 KiB-chunk files move at most 8 MiB).
    #[arg(long, default_value_t = 64)]
    pub guest_mib: usize,
    /// Requests of the soak section.
    #[arg(long, default_value_t = 1_000_000)]
    pub soak_requests: usize,
    /// Inside a guest section's guest: serve the bare echo that gives the transport's
    /// floor (`vsock:PORT` or a port's path), instead of benchmarking.
    #[arg(long, hide = true)]
    pub guest_echo: Option<String>,
}

/// A benchmark section: its name and what it runs.
type Section = (&'static str, fn(&harness::Env, &mut Report));

const SECTIONS: &[Section] = &[
    ("core", core::run),
    ("soak", soak::run),
    ("files", files::run),
    ("system", system::run),
    ("network", network::run),
    ("qga", qga::run),
    ("exec", exec::run),
    ("freeze", freeze::run),
    ("guest", guest::run),
    ("vsock", vsock::run),
];

fn main() {
    let opts = Opts::parse();
    if let Some(spec) = &opts.guest_echo {
        if let Err(e) = echo::serve(spec) {
            eprintln!("echo on {spec}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let env = harness::Env::new(&opts);
    let mut report = Report::default();
    for (name, run) in SECTIONS {
        if opts.sections.is_empty() || opts.sections.iter().any(|s| s == name) {
            println!("== {name}");
            run(&env, &mut report);
        }
    }
    println!();
    report.print();
}
