//! Configuration: the command line ([`cli`]), the configuration file ([`file`]) that
//! adds to it, and what they mean for the agent: its listeners, its choice of
//! commands, qemu-ga's `-D` dump.

mod cli;
pub mod file;

pub use cli::*;

use std::fmt::Write as _;
use std::path::Path;

use phoenix_proto::Dialect;

use crate::envelope;
use crate::listener::{Listener, Transport};
use crate::registry::Selection;

impl Cli {
    /// What the agent serves. Without `-p`, virtio-serial serves both agent ports
    /// that exist (or, with `--retry-path`, waits for both), each in its dialect; an
    /// error names them when neither exists.
    pub fn listeners(&self) -> Result<Vec<Listener>, String> {
        let listener = |transport, dialect| Listener {
            transport,
            envelope: envelope::of(dialect),
            retry: self.retry_path,
        };
        let port = |path: &Path| {
            let dialect = self
                .dialect
                .map(dialect_of)
                .unwrap_or_else(|| port_dialect(path));
            listener(Transport::Port(path.to_path_buf()), dialect)
        };
        let stream_dialect = self
            .dialect
            .map(dialect_of)
            .unwrap_or(self.default_dialect());
        match (self.method, &self.path) {
            (Method::VirtioSerial, Some(path)) => Ok(vec![port(path)]),
            (Method::VirtioSerial, None) => {
                let wanted = [(PHOENIX_PORT, Dialect::Phoenix), (QGA_PORT, Dialect::Qga)]
                    .into_iter()
                    .filter(|(_, d)| self.dialect.is_none_or(|want| dialect_of(want) == *d))
                    .map(|(p, _)| Path::new(p));
                let found: Vec<_> = wanted
                    .clone()
                    .filter(|p| self.retry_path || p.exists())
                    .map(port)
                    .collect();
                if found.is_empty() {
                    let names: Vec<_> = wanted.map(|p| p.display().to_string()).collect();
                    return Err(format!(
                        "no agent port: {} missing (is the virtio-serial port configured? \
                         --retry-path waits for it)",
                        names.join(" and ")
                    ));
                }
                Ok(found)
            }
            (Method::IsaSerial, _) => {
                Ok(vec![listener(Transport::Port(self.path()), stream_dialect)])
            }
            (Method::UnixListen, _) => {
                Ok(vec![listener(Transport::Unix(self.path()), stream_dialect)])
            }
        }
    }

    /// The dialect of a socket or tty when `--dialect` is not given: qemu-ga's when the
    /// agent was started as qemu-ga, else Phoenix.
    fn default_dialect(&self) -> Dialect {
        match self.as_qemu_ga {
            true => Dialect::Qga,
            false => Dialect::Phoenix,
        }
    }

    /// The operator's choice of commands: ours strict, qemu-ga's lenient.
    pub fn selection(&self) -> Selection<'_> {
        Selection {
            block: &self.block_commands,
            allow: self.allow_commands.as_deref(),
            lenient_block: &self.block_rpcs,
            lenient_allow: self.allow_rpcs.as_deref(),
        }
    }

    /// The configuration in qemu-ga's file format (`-D`), which `--config` reads back;
    /// lists are separated by `;`, as GLib's key files separate them.
    pub fn dump(&self) -> String {
        let list = |v: &[String]| v.join(";");
        let mut out = String::from("[general]\n");
        let _ = writeln!(out, "daemon={}", self.daemonize);
        let _ = writeln!(out, "method={}", self.method.name());
        if let Some(path) = &self.path {
            let _ = writeln!(out, "path={}", path.display());
        }
        if let Some(d) = self.dialect {
            let _ = writeln!(out, "dialect={}", dialect_of(d).name());
        }
        if let Some(p) = &self.pidfile {
            let _ = writeln!(out, "pidfile={}", p.display());
        }
        if let Some(h) = &self.fsfreeze_hook {
            let _ = writeln!(out, "fsfreeze-hook={}", h.display());
        }
        let _ = writeln!(out, "statedir={}", self.state_dir.display());
        if let Some(l) = &self.log_file {
            let _ = writeln!(out, "logfile={}", l.display());
        }
        let _ = writeln!(out, "verbose={}", self.debug);
        let _ = writeln!(out, "retry-path={}", self.retry_path);
        let block: Vec<String> = self
            .block_commands
            .iter()
            .chain(&self.block_rpcs)
            .cloned()
            .collect();
        let _ = writeln!(out, "block-rpcs={}", list(&block));
        let allow: Vec<String> = self
            .allow_commands
            .iter()
            .chain(&self.allow_rpcs)
            .flatten()
            .cloned()
            .collect();
        let _ = writeln!(out, "allow-rpcs={}", list(&allow));
        out
    }
}

fn dialect_of(d: DialectArg) -> Dialect {
    match d {
        DialectArg::Phoenix => Dialect::Phoenix,
        DialectArg::Qga => Dialect::Qga,
    }
}

/// The dialect a port's name says: qemu-ga's port is `org.qemu.guest_agent.N`.
fn port_dialect(path: &Path) -> Dialect {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    match name {
        Some(n) if n.starts_with("org.qemu.guest_agent.") => Dialect::Qga,
        _ => Dialect::Phoenix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        let v = normalize_args(args.iter().map(|s| s.to_string()));
        let mut c = Cli::try_parse_from(v).unwrap();
        c.as_qemu_ga = invoked_as_qemu_ga(args[0]);
        c
    }

    fn dialects(c: &Cli) -> Vec<(Transport, Dialect)> {
        c.listeners()
            .unwrap()
            .into_iter()
            .map(|l| (l.transport, l.envelope.dialect()))
            .collect()
    }

    #[test]
    fn listeners_and_their_dialects() {
        let port = |p: &str| Transport::Port(p.into());
        assert_eq!(
            dialects(&cli(&[
                "phoenix-ga",
                "-p",
                "/dev/virtio-ports/org.qemu.guest_agent.0"
            ])),
            [(port(QGA_PORT), Dialect::Qga)]
        );
        assert_eq!(
            dialects(&cli(&["phoenix-ga", "-p", "/dev/vport0p1"])),
            [(port("/dev/vport0p1"), Dialect::Phoenix)]
        );
        assert_eq!(
            dialects(&cli(&[
                "phoenix-ga",
                "-p",
                "/dev/vport0p1",
                "--dialect",
                "qga"
            ])),
            [(port("/dev/vport0p1"), Dialect::Qga)]
        );
        let sock = |p: &str| Transport::Unix(p.into());
        assert_eq!(
            dialects(&cli(&["phoenix-ga", "-m", "unix-listen", "-p", "/x"])),
            [(sock("/x"), Dialect::Phoenix)]
        );
        assert_eq!(
            dialects(&cli(&[
                "/usr/sbin/qemu-ga",
                "-m",
                "unix-listen",
                "-p",
                "/x"
            ])),
            [(sock("/x"), Dialect::Qga)]
        );
        // Without -p and with --retry-path: both ports, each waited for.
        assert_eq!(
            dialects(&cli(&["phoenix-ga", "-r"])),
            [
                (port(PHOENIX_PORT), Dialect::Phoenix),
                (port(QGA_PORT), Dialect::Qga)
            ]
        );
        assert_eq!(
            dialects(&cli(&["phoenix-ga", "-r", "--dialect", "qga"])),
            [(port(QGA_PORT), Dialect::Qga)]
        );
    }

    #[test]
    fn qemu_ga_command_lines() {
        let c = cli(&[
            "qemu-ga",
            "-m",
            "virtio-serial",
            "-p",
            "/dev/x",
            "-t",
            "/run/st",
            "-b",
            "guest-file-open,guest-exec",
            "-a",
            "guest-ping",
            "-F",
            "-v",
            "-l",
            "/tmp/l",
            "-f",
            "/run/qga.pid",
            "-r",
        ]);
        assert_eq!(c.state_dir, std::path::PathBuf::from("/run/st"));
        assert_eq!(c.block_rpcs, ["guest-file-open", "guest-exec"]);
        assert_eq!(
            c.allow_rpcs.as_deref(),
            Some(&["guest-ping".to_string()][..])
        );
        assert_eq!(
            c.fsfreeze_hook.as_deref(),
            Some(Path::new(DEFAULT_FSFREEZE_HOOK))
        );
        assert!(c.debug && c.retry_path);
        let c = cli(&["qemu-ga", "-F/etc/hook"]);
        assert_eq!(c.fsfreeze_hook.as_deref(), Some(Path::new("/etc/hook")));
        let dump = cli(&["qemu-ga", "-p", "/dev/x", "-b", "guest-ping"]).dump();
        assert!(dump.starts_with("[general]\ndaemon=false\nmethod=virtio-serial\npath=/dev/x\n"));
        assert!(dump.contains("\nblock-rpcs=guest-ping\n"), "{dump}");
        // Under its own name, -v is still the original's version flag.
        let v = normalize_args(["phoenix-ga", "-v"].map(String::from));
        Cli::try_parse_from(v).unwrap_err();
    }
}
