//! The guest under libvirt: a transient domain (`virsh create`) booting the harness's
//! kernel and initramfs, so that libvirt itself is the agent's host, as on a real
//! machine. The libvirt daemon is the machine's (`qemu:///system`): `scripts/test` starts
//! virtlogd and libvirtd when they are not running (docs/e2e.md says how and why).
//!
//! libvirt runs QEMU as the `libvirt-qemu` user and hands it the kernel, initrd and disk
//! for the run (chown, undone at the end): every parent folder must be searchable by that
//! user. QEMU is libvirtd's child, not ours, so `PR_SET_PDEATHSIG` cannot tie it to the
//! test process: a watchdog process (a shell in its own process group, blocked on a pipe
//! from us) destroys the domain and removes its files when the pipe closes, that is when
//! the domain is dropped or the test process dies, however it dies.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::{Error, Result, ShOutput};

/// The libvirt connection the tests use: the machine's system daemon.
pub const URI: &str = "qemu:///system";

/// The qemu-ga dialect's port, declared as libvirt declares its agent channel.
pub const QGA_PORT: &str = "org.qemu.guest_agent.0";

/// Runs `virsh -c qemu:///system ARGS` and returns what it printed and its status.
pub fn virsh(args: &[&str]) -> Result<ShOutput> {
    let out = Command::new("virsh")
        .args(["-c", URI])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::io(
                "run virsh (package libvirt-clients; scripts/test --deps-only installs it)",
                e,
            )
        })?;
    Ok(ShOutput {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code().unwrap_or(-1),
    })
}

/// Runs virsh and returns its stdout; an error with its stderr unless it exits 0.
pub(crate) fn virsh_ok(args: &[&str], what: &str) -> Result<String> {
    let out = virsh(args)?;
    if out.status != 0 {
        return Err(Error::msg(format!(
            "{what}: virsh {} failed ({}): {}",
            args.join(" "),
            out.status,
            out.stderr.trim()
        )));
    }
    Ok(out.stdout)
}

/// What goes into the domain's XML.
#[derive(Debug)]
pub(crate) struct Spec<'a> {
    pub name: &'a str,
    /// `<domain type='kvm'>` rather than `'qemu'` (TCG).
    pub kvm: bool,
    pub memory_mib: u32,
    pub cpus: u32,
    /// A CPU model (`max`: QEMU's maximum), or the hypervisor's default.
    pub cpu: Option<&'a str>,
    /// The QEMU binary, when not libvirt's default for the architecture.
    pub emulator: Option<&'a str>,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub cmdline: &'a str,
    pub disk: &'a Path,
    /// The serial console's log (written by virtlogd).
    pub console: &'a Path,
    /// virtio-serial channels: the port name and the host socket (`None`: libvirt
    /// chooses it, as for its own agent channel).
    pub channels: &'a [(String, Option<PathBuf>)],
    /// `<on_reboot>restart</on_reboot>` rather than `destroy`.
    pub reboot: bool,
}

/// The domain XML of `spec`: direct kernel boot, the scratch disk on virtio-blk, QEMU's
/// user network on virtio-net, the serial console into a file, the channels; no
/// balloon, no USB, nothing else; gone on power-off, reboot (unless `spec.reboot`) or
/// crash (the guest's kernel panics into a reboot).
pub(crate) fn domain_xml(spec: &Spec<'_>) -> String {
    let p = |path: &Path| escape(&path.display().to_string());
    let mut x = String::new();
    let kind = if spec.kvm { "kvm" } else { "qemu" };
    let _ = writeln!(x, "<domain type='{kind}'>");
    let _ = writeln!(x, "  <name>{}</name>", escape(spec.name));
    let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", spec.memory_mib);
    let _ = writeln!(x, "  <vcpu>{}</vcpu>", spec.cpus);
    x.push_str("  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n");
    let _ = writeln!(x, "    <kernel>{}</kernel>", p(spec.kernel));
    let _ = writeln!(x, "    <initrd>{}</initrd>", p(spec.initrd));
    let _ = writeln!(x, "    <cmdline>{}</cmdline>", escape(spec.cmdline));
    x.push_str("  </os>\n  <features><acpi/></features>\n");
    match spec.cpu {
        Some("max") => x.push_str("  <cpu mode='maximum'/>\n"),
        Some(model) => {
            let _ = writeln!(
                x,
                "  <cpu mode='custom' match='exact'><model fallback='forbid'>{}</model></cpu>",
                escape(model)
            );
        }
        None => {}
    }
    let on_reboot = if spec.reboot { "restart" } else { "destroy" };
    let _ = write!(
        x,
        "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>{on_reboot}</on_reboot>\n  \
         <on_crash>destroy</on_crash>\n  <devices>\n",
    );
    if let Some(emulator) = spec.emulator {
        let _ = writeln!(x, "    <emulator>{}</emulator>", escape(emulator));
    }
    let _ = writeln!(
        x,
        "    <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/></disk>",
        p(spec.disk)
    );
    x.push_str("    <interface type='user'><model type='virtio'/></interface>\n");
    let _ = writeln!(
        x,
        "    <serial type='file'><source path='{}'/><target port='0'/></serial>",
        p(spec.console)
    );
    for (name, socket) in spec.channels {
        let source = match socket {
            Some(path) => format!("<source mode='bind' path='{}'/>", p(path)),
            None => "<source mode='bind'/>".to_string(),
        };
        let _ = writeln!(
            x,
            "    <channel type='unix'>{source}<target type='virtio' name='{}'/></channel>",
            escape(name)
        );
    }
    x.push_str(
        "    <controller type='usb' model='none'/>\n    <memballoon model='none'/>\n  \
         </devices>\n</domain>\n",
    );
    x
}

/// `s` with the five XML special characters escaped (for text and quoted attributes).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The `state` libvirt shows on the channel named `port` in `virsh dumpxml` output
/// (`connected` once the guest opened the port, `disconnected` before and after), or
/// `None` when there is no such channel or no state.
pub fn channel_state<'x>(xml: &'x str, port: &str) -> Option<&'x str> {
    let needle = format!("name='{port}'");
    xml.split("<target ")
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap_or(rest.len())])
        .find(|attrs| attrs.contains(&needle))
        .and_then(|attrs| attr(attrs, "state"))
}

/// The value of attribute `name` among `attrs` (`a='1' b="2"`).
fn attr<'x>(attrs: &'x str, name: &str) -> Option<&'x str> {
    let mut rest = attrs;
    loop {
        let at = rest.find(&format!("{name}="))?;
        let preceded = at == 0 || rest[..at].ends_with(char::is_whitespace);
        let value = &rest[at + name.len() + 1..];
        let quote = value.chars().next()?;
        if preceded && (quote == '\'' || quote == '"') {
            let value = &value[1..];
            return value.find(quote).map(|end| &value[..end]);
        }
        rest = value;
    }
}

/// A running transient domain.
pub(crate) struct Domain {
    name: String,
    /// QEMU's pid, from libvirt's pid file.
    pid: Pid,
    /// The watchdog: destroys the domain when its stdin closes.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// A domain name unique on this machine: `phoenix-e2e-PID-N`.
pub(crate) fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "phoenix-e2e-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// libvirt's log of a domain (QEMU's command line and stderr).
pub(crate) fn log_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/var/log/libvirt/qemu/{name}.log"))
}

impl Domain {
    /// Starts the watchdog, then `virsh create`s the domain from `xml` (written to
    /// `dir/domain.xml`). The watchdog removes `dir` and libvirt's log of the domain.
    pub(crate) fn create(name: &str, xml: &str, dir: &Path) -> Result<Domain> {
        let file = dir.join("domain.xml");
        std::fs::write(&file, xml)
            .map_err(|e| Error::io(format!("write {}", file.display()), e))?;
        let watchdog = watchdog(name, dir)?;
        let mut domain = Domain {
            name: name.to_string(),
            pid: Pid::from_raw(0),
            watchdog: Mutex::new(Some(watchdog)),
        };
        let file = file.display().to_string();
        virsh_ok(
            &["create", &file],
            "create the domain (is libvirtd running? scripts/test starts it, docs/e2e.md says how)",
        )?;
        let pid_file = format!("/run/libvirt/qemu/{name}.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .map_err(|e| Error::io(format!("read {pid_file}"), e))?;
        domain.pid = pid
            .trim()
            .parse()
            .map(Pid::from_raw)
            .map_err(|_| Error::msg(format!("{pid_file}: not a pid: {pid:?}")))?;
        Ok(domain)
    }

    /// The domain's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// QEMU's pid.
    pub(crate) fn pid(&self) -> u32 {
        u32::try_from(self.pid.as_raw()).unwrap_or(0)
    }

    /// Whether QEMU still runs.
    pub(crate) fn alive(&self) -> bool {
        self.pid.as_raw() > 0 && kill(self.pid, None).is_ok()
    }

    /// Waits up to `timeout` for QEMU to exit; whether it did.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.alive() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Destroys the domain (if it still runs) and removes its files: closes the
    /// watchdog's pipe and waits for the watchdog to finish.
    pub(crate) fn kill(&self) {
        let taken = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// The channel's state, from `virsh dumpxml`.
    pub(crate) fn channel_state(&self, port: &str) -> Result<Option<String>> {
        let xml = virsh_ok(&["dumpxml", &self.name], "read the domain's XML")?;
        Ok(channel_state(&xml, port).map(str::to_string))
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The watchdog: a shell in its own process group (so a Ctrl-C to the tests does not
/// reach it), blocked reading its stdin, a pipe whose other end only this process holds.
/// When the pipe closes, it destroys the domain (virsh returns once QEMU is gone) and
/// removes `dir` and the domain's log. It writes a line first, once it is ready.
fn watchdog(name: &str, dir: &Path) -> Result<(Child, ChildStdin)> {
    use std::os::unix::process::CommandExt as _;
    let mut child = Command::new("sh")
        .args([
            "-c",
            "echo ready; read -r _; \
             virsh -q -c \"$1\" destroy \"$2\" >/dev/null 2>&1; rm -rf \"$3\" \"$4\"",
            "phoenix-e2e-watchdog",
            URI,
            name,
        ])
        .arg(dir)
        .arg(log_path(name))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io("start the domain's watchdog (sh)", e))?;
    let stdin = child.stdin.take();
    let mut ready = [0u8; 6];
    let read = child
        .stdout
        .take()
        .map(|mut out| out.read_exact(&mut ready));
    match (stdin, read) {
        (Some(stdin), Some(Ok(()))) if &ready == b"ready\n" => Ok((child, stdin)),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(Error::msg("the domain's watchdog did not start"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_of_a_guest() {
        let channels = [
            (QGA_PORT.to_string(), None),
            (
                "org.phoenix-e2e.shell".to_string(),
                Some(PathBuf::from("/tmp/g/shell.sock")),
            ),
        ];
        let xml = domain_xml(&Spec {
            name: "phoenix-e2e-1-1",
            kvm: false,
            memory_mib: 512,
            cpus: 2,
            cpu: None,
            emulator: None,
            kernel: Path::new("/tmp/g/vmlinuz"),
            initrd: Path::new("/tmp/g/initrd.cpio"),
            cmdline: "console=ttyS0 panic=-1 quiet",
            disk: Path::new("/tmp/g/scratch.img"),
            console: Path::new("/tmp/g/console.log"),
            channels: &channels,
            reboot: false,
        });
        assert!(xml.starts_with("<domain type='qemu'>\n  <name>phoenix-e2e-1-1</name>\n"));
        for part in [
            "<memory unit='MiB'>512</memory>",
            "<vcpu>2</vcpu>",
            "<kernel>/tmp/g/vmlinuz</kernel>",
            "<initrd>/tmp/g/initrd.cpio</initrd>",
            "<cmdline>console=ttyS0 panic=-1 quiet</cmdline>",
            "<source file='/tmp/g/scratch.img'/><target dev='vda' bus='virtio'/>",
            "<interface type='user'><model type='virtio'/></interface>",
            "<serial type='file'><source path='/tmp/g/console.log'/>",
            "<channel type='unix'><source mode='bind'/>\
             <target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
            "<channel type='unix'><source mode='bind' path='/tmp/g/shell.sock'/>\
             <target type='virtio' name='org.phoenix-e2e.shell'/></channel>",
            "<on_reboot>destroy</on_reboot>",
        ] {
            assert!(xml.contains(part), "{part} not in\n{xml}");
        }
        assert!(!xml.contains("<cpu") && !xml.contains("<emulator"), "{xml}");
    }

    #[test]
    fn xml_escapes_and_options() {
        let xml = domain_xml(&Spec {
            name: "a&b",
            kvm: true,
            memory_mib: 1,
            cpus: 1,
            cpu: Some("max"),
            emulator: Some("/opt/q<1>/qemu"),
            kernel: Path::new("/k'1"),
            initrd: Path::new("/i"),
            cmdline: "x",
            disk: Path::new("/d"),
            console: Path::new("/c"),
            channels: &[],
            reboot: true,
        });
        assert!(xml.starts_with("<domain type='kvm'>"), "{xml}");
        assert!(xml.contains("<name>a&amp;b</name>"), "{xml}");
        assert!(xml.contains("<kernel>/k&apos;1</kernel>"), "{xml}");
        assert!(
            xml.contains("<emulator>/opt/q&lt;1&gt;/qemu</emulator>"),
            "{xml}"
        );
        assert!(xml.contains("<cpu mode='maximum'/>"), "{xml}");
        assert!(xml.contains("<on_reboot>restart</on_reboot>"), "{xml}");
    }

    #[test]
    fn channel_state_from_dumpxml() {
        let xml = "<channel type='unix'>
      <source mode='bind' path='/run/x/org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>
      <alias name='channel0'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='/tmp/g/shell.sock'/>
      <target type='virtio' name='org.phoenix-e2e.shell' state='disconnected'/>
    </channel>
    <serial type='file'><target type='isa-serial' port='0'/></serial>";
        assert_eq!(channel_state(xml, QGA_PORT), Some("connected"));
        assert_eq!(
            channel_state(xml, "org.phoenix-e2e.shell"),
            Some("disconnected")
        );
        assert_eq!(channel_state(xml, "org.nope"), None);
        let stateless = "<target type='virtio' name='org.qemu.guest_agent.0'/>";
        assert_eq!(channel_state(stateless, QGA_PORT), None);
        assert_eq!(attr("xstate='no' state=\"yes\"", "state"), Some("yes"));
    }
}
