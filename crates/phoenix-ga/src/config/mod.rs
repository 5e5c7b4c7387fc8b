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
        let vsock = |spec: VsockSpec| {
            let dialect = spec.dialect.map_or(stream_dialect, dialect_of);
            let transport = Transport::Vsock {
                cid: spec.cid,
                port: spec.port,
            };
            listener(transport, dialect)
        };
        let mut listeners = match (self.method, &self.path) {
            (Method::VirtioSerial, Some(path)) => vec![port(path)],
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
                // With --vsock, a guest without ports (Firecracker) is served on vsock.
                if found.is_empty() && self.vsock.is_empty() {
                    let names: Vec<_> = wanted.map(|p| p.display().to_string()).collect();
                    return Err(format!(
                        "no agent port: {} missing (is the virtio-serial port configured? \
                         --retry-path waits for it)",
                        names.join(" and ")
                    ));
                }
                found
            }
            (Method::IsaSerial, _) => {
                vec![listener(Transport::Port(self.path()), stream_dialect)]
            }
            (Method::UnixListen, _) => {
                vec![listener(Transport::Unix(self.path()), stream_dialect)]
            }
            (Method::VsockListen, _) => {
                let path = self.path();
                let spec = path
                    .to_str()
                    .ok_or_else(|| "-p: not a vsock CID:PORT".to_string())
                    .and_then(VsockSpec::parse)
                    .map_err(|e| format!("-p {}: {e}", path.display()))?;
                vec![vsock(spec)]
            }
        };
        listeners.extend(self.vsock.iter().copied().map(vsock));
        Ok(listeners)
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
        if !self.vsock.is_empty() {
            let specs: Vec<String> = self.vsock.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "vsock={}", list(&specs));
        }
        let _ = writeln!(out, "send-timeout={}", self.send_timeout);
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
    fn vsock_listeners() {
        let vsock = |cid, port| Transport::Vsock { cid, port };
        // qemu-ga's spelling, with -1 or 4294967295 for any CID, in either dialect.
        assert_eq!(
            dialects(&cli(&["phoenix-ga", "-m", "vsock-listen", "-p", "-1:1024"])),
            [(vsock(u32::MAX, 1024), Dialect::Phoenix)]
        );
        assert_eq!(
            dialects(&cli(&[
                "qemu-ga",
                "-m",
                "vsock-listen",
                "-p",
                "4294967295:1024"
            ])),
            [(vsock(u32::MAX, 1024), Dialect::Qga)]
        );
        assert_eq!(
            dialects(&cli(&[
                "phoenix-ga",
                "-m",
                "vsock-listen",
                "-p",
                "3:5000",
                "--dialect",
                "qga"
            ])),
            [(vsock(3, 5000), Dialect::Qga)]
        );
        // Without -p: any CID, port 1023.
        assert_eq!(
            dialects(&cli(&["phoenix-ga", "-m", "vsock-listen"])),
            [(vsock(u32::MAX, 1023), Dialect::Phoenix)]
        );
        // Beside the ports, each --vsock in its own dialect.
        assert_eq!(
            dialects(&cli(&[
                "phoenix-ga",
                "-r",
                "--vsock",
                "1023",
                "--vsock=-1:1022:qga"
            ])),
            [
                (Transport::Port(PHOENIX_PORT.into()), Dialect::Phoenix),
                (Transport::Port(QGA_PORT.into()), Dialect::Qga),
                (vsock(u32::MAX, 1023), Dialect::Phoenix),
                (vsock(u32::MAX, 1022), Dialect::Qga)
            ]
        );
        // A guest with no port at all (Firecracker) is served on vsock alone.
        let c = cli(&["phoenix-ga", "-p", "/nonexistent/port", "--vsock", "9"]);
        assert_eq!(c.listeners().unwrap().len(), 2);
        let c = cli(&["phoenix-ga", "--dialect", "qga", "--vsock", "9"]);
        if !Path::new(QGA_PORT).exists() {
            assert_eq!(dialects(&c), [(vsock(u32::MAX, 9), Dialect::Qga)]);
        }
        // Bad addresses are errors naming the value.
        let e = cli(&["phoenix-ga", "-m", "vsock-listen", "-p", "/dev/x"])
            .listeners()
            .unwrap_err();
        assert!(e.starts_with("-p /dev/x: "), "{e}");
        // -D writes what --config reads back.
        let dump = cli(&[
            "phoenix-ga",
            "--vsock",
            "-1:7:qga,3:8",
            "--send-timeout",
            "5",
        ])
        .dump();
        assert!(
            dump.contains("\nvsock=4294967295:7:qga;3:8\nsend-timeout=5\n"),
            "{dump}"
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
