//! End-to-end test support: boots a real QEMU guest with `phoenix-ga` on a real
//! virtio-serial port, so tests drive the agent where it lives.
//!
//! The guest: a Debian cloud kernel (downloaded once and cached, see [`cache_dir`]), an
//! initramfs with busybox-static, the virtio modules, the agent under test and its
//! libraries. Its /init loads the modules, creates `/dev/virtio-ports/NAME`, mounts an
//! ext4 scratch disk at [`SCRATCH`], configures `eth0` (10.0.2.15/24, QEMU user
//! networking, restricted), starts the agent (restarting it when it exits) and serves a
//! shell channel on a second port, so tests can check the guest OS with [`Guest::sh`].
//!
//! ```no_run
//! let guest = phoenix_e2e::Guest::boot(phoenix_e2e::GuestOpts::new("target/release/phoenix-ga"))?;
//! let client = guest.client();
//! assert_eq!(guest.sh_ok("uname -s").trim(), "Linux");
//! # Ok::<(), phoenix_e2e::Error>(())
//! ```
//!
//! The same guest runs under libvirt with [`Guest::boot_libvirt`]: a transient domain
//! with libvirt's own agent channel (`org.qemu.guest_agent.0`), driven with [`virsh`].
//!
//! Environment: `PHOENIX_E2E=skip` makes [`skip`] true (tests return early; without it
//! a missing QEMU or kernel fails the tests); `PHOENIX_E2E_CACHE` moves the cache;
//! `PHOENIX_E2E_KERNEL_DEB` uses a local kernel .deb instead of `apt-get download`;
//! `PHOENIX_E2E_KVM=1` or `0` forces KVM or TCG (default: see [`Guest::boot`]);
//! `PHOENIX_E2E_QEMU` names the QEMU binary;
//! `PHOENIX_E2E_AGENT` replaces the agent binary the tests name (e.g. a static build);
//! `PHOENIX_E2E_LIBVIRT=skip` makes [`skip_libvirt`] true.

mod image;
mod libvirt;
pub mod loopfs;
mod qemu;
mod shell;
mod vsock;

use std::fmt;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub use image::{cache_dir, kernel, Kernel};
pub use libvirt::{channel_state, virsh, QGA_PORT, URI as LIBVIRT_URI};
use phoenix_client::Report;
pub use shell::ShOutput;

/// Where the scratch disk (ext4 on virtio-blk, `/dev/vda`) is mounted in the guest.
pub const SCRATCH: &str = "/mnt/scratch";
/// The guest's NIC (virtio-net, QEMU user networking).
pub const NIC: &str = "eth0";
/// The agent's port name, as QEMU and libvirt name it.
pub const AGENT_PORT: &str = "org.guest-agent.0";
/// The shell channel's port name.
const SHELL_PORT: &str = "org.phoenix-e2e.shell";

/// A harness failure (not a test assertion). Its message says what was being done; the
/// error that made it fail is chained as the source, never repeated in the message, so
/// print the whole chain once with [`phoenix_client::Report`]:
/// `start qemu-system-x86_64 (...): No such file or directory (os error 2)`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host-side step failed on an I/O error.
    #[error("{what}")]
    Io {
        /// What was being done: `create /var/cache/phoenix-rs-e2e`.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{what}")]
    Sys {
        /// What was being done.
        what: String,
        /// The errno.
        #[source]
        source: nix::errno::Errno,
    },
    /// The agent did not answer through its port.
    #[error("{what}")]
    Agent {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: phoenix_client::ClientError,
    },
    /// A step failed because an earlier one did (the guest did not come up because the
    /// shell channel timed out).
    #[error("{what}")]
    Step {
        /// What was being done.
        what: String,
        /// The earlier failure.
        #[source]
        source: Box<Error>,
    },
    /// QEMU itself crashed while the guest booted (TCG's `iotlb_to_section` assertion
    /// is one such QEMU bug, seen about once in a few hundred boots); the boot is retried.
    #[error("QEMU crashed while the guest booted: {0}")]
    QemuCrashed(String),
    /// A failure with no error below it: a command's exit status, a missing file.
    #[error("{0}")]
    Failed(String),
}

/// Results of the harness.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    fn msg(m: impl Into<String>) -> Self {
        Error::Failed(m.into())
    }

    fn io(what: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            what: what.to_string(),
            source,
        }
    }

    fn step(what: impl fmt::Display, source: Error) -> Self {
        Error::Step {
            what: what.to_string(),
            source: Box::new(source),
        }
    }
}

/// True when `PHOENIX_E2E=skip`: tests should return early (a note goes to stderr).
/// Otherwise e2e tests run, and fail when QEMU or the kernel is missing.
pub fn skip() -> bool {
    let skip = std::env::var("PHOENIX_E2E").is_ok_and(|v| v == "skip");
    if skip {
        eprintln!("PHOENIX_E2E=skip: end-to-end test skipped");
    }
    skip
}

/// True when the libvirt tests should return early: [`skip`], or
/// `PHOENIX_E2E_LIBVIRT=skip` (for a machine without libvirtd). Otherwise they run,
/// and fail when libvirtd is not running.
pub fn skip_libvirt() -> bool {
    if skip() {
        return true;
    }
    let skip = std::env::var("PHOENIX_E2E_LIBVIRT").is_ok_and(|v| v == "skip");
    if skip {
        eprintln!("PHOENIX_E2E_LIBVIRT=skip: libvirt end-to-end test skipped");
    }
    skip
}

/// How to boot a guest.
#[derive(Debug, Clone)]
pub struct GuestOpts {
    /// The agent binary to run in the guest.
    pub agent: PathBuf,
    /// Extra agent arguments (after `-m virtio-serial`).
    pub agent_args: Vec<String>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// Size of the scratch disk in MiB.
    pub scratch_mib: u64,
    /// How long the guest may take until its shell and agent answer.
    pub boot_timeout: Duration,
    /// Default time limit of [`Guest::sh`] scripts.
    pub sh_timeout: Duration,
    /// More virtio-serial ports, by name; the host end of each is
    /// [`Guest::port_socket`], the guest end `/dev/virtio-ports/NAME` (e.g. a peer
    /// agent's port, or a raw port for throughput baselines).
    pub extra_ports: Vec<String>,
    /// More programs for the guest, installed as /usr/bin/BASENAME with their libraries
    /// (e.g. qemu-ga as a peer); not started.
    pub extra_binaries: Vec<PathBuf>,
    /// A shell script the guest's /init runs (as root, busybox sh) just before it starts
    /// the agent: e.g. a peer agent started on a port ours leaves alone.
    pub setup: Option<String>,
    /// QEMU's `-cpu` model; `None`: QEMU's default (qemu64 under TCG: no SSSE3 or
    /// AVX2), unless `PHOENIX_E2E_CPU` names one (e.g. `max`).
    pub cpu: Option<String>,
    /// A vsock device with this guest CID (3 or more), whose host end is the hybrid
    /// vsock socket [`Guest::vsock_socket`] of rust-vmm's `vhost-device-vsock` (QEMU
    /// only, not libvirt). The guest loads no vsock module by itself: load
    /// `vmw_vsock_virtio_transport` in `setup` or later with [`Guest::sh`].
    pub vsock: Option<u32>,
    /// Whether the guest comes back after a reboot (QEMU without `-no-reboot`, libvirt's
    /// `<on_reboot>restart</on_reboot>`). By default a reboot ends QEMU, as a kernel
    /// panic does (the kernel reboots on panic).
    pub reboot: bool,
}

impl GuestOpts {
    /// Defaults: 512 MiB, 2 CPUs, a 256 MiB scratch disk, 120 s to boot. The agent is
    /// `agent` unless `PHOENIX_E2E_AGENT` names another binary (a release or static build).
    pub fn new(agent: impl Into<PathBuf>) -> Self {
        Self {
            agent: std::env::var_os("PHOENIX_E2E_AGENT")
                .map_or_else(|| agent.into(), PathBuf::from),
            agent_args: Vec::new(),
            memory_mib: 512,
            cpus: 2,
            scratch_mib: 256,
            boot_timeout: Duration::from_secs(120),
            sh_timeout: Duration::from_secs(120),
            extra_ports: Vec::new(),
            extra_binaries: Vec::new(),
            setup: None,
            cpu: std::env::var("PHOENIX_E2E_CPU")
                .ok()
                .filter(|c| !c.is_empty()),
            vsock: None,
            reboot: false,
        }
    }
}

/// What runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// QEMU, a child of the test process.
    Qemu,
    /// A transient libvirt domain.
    Libvirt,
}

/// The running virtual machine.
enum Vm {
    Qemu(qemu::Qemu),
    Libvirt(libvirt::Domain),
}

impl Vm {
    fn alive(&self) -> bool {
        match self {
            Vm::Qemu(q) => q.alive(),
            Vm::Libvirt(d) => d.alive(),
        }
    }

    /// Kills QEMU (destroys the domain and removes its files) and waits until it is gone.
    fn kill(&self) {
        match self {
            Vm::Qemu(q) => q.kill(),
            Vm::Libvirt(d) => d.kill(),
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Vm::Qemu(q) => q.pid(),
            Vm::Libvirt(d) => d.pid(),
        }
    }

    /// Waits up to `timeout` for QEMU to exit; whether it did.
    fn wait(&self, timeout: Duration) -> bool {
        match self {
            Vm::Qemu(q) => q.wait(timeout).is_some(),
            Vm::Libvirt(d) => d.wait(timeout),
        }
    }
}

/// A running guest; QEMU is killed (the libvirt domain destroyed) when it is dropped,
/// and when the test process dies.
pub struct Guest {
    vm: Vm,
    /// The vsock device's backend (vhost-device-vsock), stopped after QEMU.
    vsock: Option<qemu::Qemu>,
    /// QEMU's log: its stderr, or libvirt's log of the domain.
    log: PathBuf,
    shell: Mutex<shell::Shell>,
    dir: tempfile::TempDir,
    opts: GuestOpts,
    kernel: Kernel,
    boot_time: Duration,
    kvm: bool,
    next_job: AtomicU64,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("dir", &self.dir.path())
            .field("domain", &self.domain())
            .field("boot_time", &self.boot_time)
            .field("kvm", &self.kvm)
            .finish_non_exhaustive()
    }
}

/// A script running in the background in the guest, started by [`Guest::spawn`].
#[derive(Debug)]
pub struct Job {
    id: u64,
}

impl Guest {
    /// Builds the initramfs, boots QEMU and waits until the guest's shell answers and
    /// the agent replies to `ping` through the port.
    ///
    /// Acceleration: TCG, unless KVM looks real (/dev/kvm usable and the CPU shows vmx
    /// or svm; a nested paravirtual KVM such as kvm_pvm does not and cannot boot a stock
    /// kernel). A KVM boot that fails falls back to TCG once. `PHOENIX_E2E_KVM=1` forces
    /// KVM (no fallback), `PHOENIX_E2E_KVM=0` forces TCG.
    pub fn boot(opts: GuestOpts) -> Result<Guest> {
        Self::boot_on(opts, Backend::Qemu)
    }

    /// Boots the same guest as a transient libvirt domain (`virsh create` on
    /// `qemu:///system`, `<domain type='qemu'>`, or `'kvm'` as [`Guest::boot`] decides)
    /// with direct kernel boot, the scratch disk, user networking (not restricted:
    /// libvirt cannot say `restrict=on`), the ports of [`Guest::boot`] on sockets in the
    /// guest's folder, and libvirt's own agent channel [`QGA_PORT`], whose socket libvirt
    /// chooses and holds. Returns when the shell and the agent answer, libvirt shows the
    /// agent channel `connected` and relays a `guest-ping`. Drive it with
    /// [`Guest::virsh`]; dropping it destroys the domain and removes its files (a
    /// watchdog does when the test process dies).
    ///
    /// Needs libvirtd and virtlogd running (`scripts/test` starts them, docs/e2e.md).
    pub fn boot_libvirt(opts: GuestOpts) -> Result<Guest> {
        Self::boot_on(opts, Backend::Libvirt)
    }

    fn boot_on(opts: GuestOpts, backend: Backend) -> Result<Guest> {
        match std::env::var("PHOENIX_E2E_KVM").as_deref() {
            Ok("1") => Self::boot_retrying(opts, true, backend),
            Ok("0") => Self::boot_retrying(opts, false, backend),
            _ if kvm_looks_real() => {
                let mut quick = opts.clone();
                quick.boot_timeout = opts.boot_timeout.min(Duration::from_secs(30));
                Self::boot_with(quick, true, backend).or_else(|e| {
                    eprintln!(
                        "phoenix-e2e: booting under KVM failed, using TCG: {}",
                        Report(&e)
                    );
                    Self::boot_retrying(opts, false, backend)
                })
            }
            _ => Self::boot_retrying(opts, false, backend),
        }
    }

    /// Boots, and boots again (at most twice more) when QEMU itself crashed: a QEMU bug
    /// must not fail the tests of the agent. Any other failure is returned at once.
    fn boot_retrying(opts: GuestOpts, kvm: bool, backend: Backend) -> Result<Guest> {
        let mut attempt = 1;
        loop {
            match Self::boot_with(opts.clone(), kvm, backend) {
                Err(Error::QemuCrashed(why)) if attempt < 3 => {
                    eprintln!("phoenix-e2e: QEMU crashed while booting ({why}); booting again");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn boot_with(opts: GuestOpts, kvm: bool, backend: Backend) -> Result<Guest> {
        let started = Instant::now();
        if !opts.agent.is_file() {
            return Err(Error::msg(format!(
                "agent binary {} not found",
                opts.agent.display()
            )));
        }
        let kernel = image::kernel()?;
        let dir = tempfile::Builder::new()
            .prefix("phoenix-e2e-")
            .tempdir()
            .map_err(|e| Error::io("create the guest's temporary directory", e))?;
        let initrd = dir.path().join("initrd.cpio");
        // Under libvirt /init also waits for libvirt's agent port, so that the agent
        // finds it when it starts.
        let mut ports = opts.extra_ports.clone();
        if backend == Backend::Libvirt && !ports.iter().any(|p| p == QGA_PORT) {
            ports.push(QGA_PORT.to_string());
        }
        image::initramfs(
            &kernel,
            &image::Payload {
                agent: &opts.agent,
                agent_args: &opts.agent_args,
                ports: &ports,
                binaries: &opts.extra_binaries,
                setup: opts.setup.as_deref(),
            },
            &dir.path().join("stage"),
            &initrd,
        )?;
        let _ = std::fs::remove_dir_all(dir.path().join("stage"));
        let disk = dir.path().join("scratch.img");
        image::scratch_disk(&disk, opts.scratch_mib)?;

        let vsock = match (opts.vsock, backend) {
            (None, _) => None,
            (Some(cid), Backend::Qemu) => Some(vsock::start_backend(dir.path(), cid)?),
            (Some(_), Backend::Libvirt) => {
                return Err(Error::msg("a vsock device is for QEMU guests only"))
            }
        };
        let (vm, log_path) = match backend {
            Backend::Qemu => spawn_qemu(&opts, kvm, &kernel, dir.path())?,
            Backend::Libvirt => create_domain(&opts, kvm, &kernel, dir.path(), &ports)?,
        };

        // The chardev sockets exist once QEMU has parsed its options.
        let shell_sock = dir.path().join("shell.sock");
        let deadline = started + opts.boot_timeout;
        let shell = loop {
            match shell::Shell::connect(&shell_sock) {
                Ok(s) => break s,
                Err(e) if !vm.alive() || Instant::now() >= deadline => {
                    eprintln!("phoenix-e2e: QEMU's log:\n{}", tail(&log_path));
                    if let Some(crash) = qemu_crash(&log_path) {
                        return Err(crash);
                    }
                    return Err(Error::step(
                        "QEMU did not open the shell channel's socket",
                        e,
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let mut guest = Guest {
            vm,
            vsock,
            log: log_path,
            shell: Mutex::new(shell),
            dir,
            opts,
            kernel,
            boot_time: Duration::ZERO,
            kvm,
            next_job: AtomicU64::new(1),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = guest.try_run("echo up", left) {
            eprintln!(
                "phoenix-e2e: the guest did not come up\n{}",
                guest.diagnostics()
            );
            if let Some(crash) = qemu_crash(&guest.log) {
                return Err(crash);
            }
            return Err(Error::step("guest did not come up", e));
        }
        // Wait for the agent: the client's connect resynchronises with a ping.
        let opts = phoenix_client::Options {
            timeout: Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1)),
            ),
            ..Default::default()
        };
        if let Err(source) = phoenix_client::Client::connect_with(guest.host_socket(), opts) {
            eprintln!(
                "phoenix-e2e: the agent did not answer\n{}",
                guest.diagnostics()
            );
            return Err(Error::Agent {
                what: "agent did not answer".into(),
                source,
            });
        }
        if let Vm::Libvirt(domain) = &guest.vm {
            if let Err(e) = wait_agent(domain, deadline) {
                eprintln!(
                    "phoenix-e2e: libvirt did not see the agent\n{}",
                    guest.diagnostics()
                );
                return Err(e);
            }
        }
        guest.boot_time = started.elapsed();
        Ok(guest)
    }

    /// The host end of the agent's port (QEMU's chardev socket): connect clients here.
    /// One host connection at a time; the next waits until the previous one closes.
    pub fn host_socket(&self) -> PathBuf {
        self.dir.path().join("ga.sock")
    }

    /// The host end of the guest's vsock device ([`GuestOpts::vsock`]): a hybrid vsock
    /// socket (write `CONNECT PORT`, read `OK`, then the stream).
    pub fn vsock_socket(&self) -> PathBuf {
        vsock::host_socket(self.dir.path())
    }

    /// The client target of the guest's vsock `port`: `hvsock:SOCKET:PORT`.
    pub fn vsock_target(&self, port: u32) -> String {
        format!("hvsock:{}:{port}", self.vsock_socket().display())
    }

    /// The host end of an extra port named in [`GuestOpts::extra_ports`].
    pub fn port_socket(&self, name: &str) -> PathBuf {
        self.dir.path().join(port_file(name))
    }

    /// A fresh client connection (resynchronised with a ping).
    pub fn client(&self) -> phoenix_client::Client {
        phoenix_client::Client::connect(self.host_socket()).unwrap_or_else(|e| {
            panic!(
                "connect to the agent: {}\n{}",
                Report(&e),
                self.diagnostics()
            )
        })
    }

    /// Runs a shell script in the guest (busybox sh, as root); its stdout and status.
    /// Panics if the guest does not answer within the options' `sh_timeout`.
    pub fn sh(&self, script: &str) -> (String, i32) {
        let out = self.run(script);
        (out.stdout, out.status)
    }

    /// Runs a shell script in the guest; stdout, stderr and status.
    pub fn run(&self, script: &str) -> ShOutput {
        self.try_run(script, self.opts.sh_timeout)
            .unwrap_or_else(|e| {
                panic!(
                    "guest script {script:?}: {}\n{}",
                    Report(&e),
                    self.diagnostics()
                )
            })
    }

    /// Runs a shell script in the guest and returns its stdout; panics (with its
    /// stderr) unless it exits 0.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.run(script);
        assert_eq!(
            out.status, 0,
            "guest script {script:?} failed: {}",
            out.stderr
        );
        out.stdout
    }

    /// Runs a script, waiting at most `timeout`.
    pub fn try_run(&self, script: &str, timeout: Duration) -> Result<ShOutput> {
        let mut shell = self.shell.lock().unwrap_or_else(|p| p.into_inner());
        shell.run(script, timeout, &|| self.vm.alive())
    }

    /// Starts a script in the background and returns at once, so a test can watch
    /// something that blocks (a write into a frozen filesystem) while the shell stays
    /// free. Its stdout and stderr go to one file, read by [`Guest::job_wait`].
    pub fn spawn(&self, script: &str) -> Job {
        use base64::Engine as _;
        let id = self.next_job.fetch_add(1, Ordering::Relaxed);
        let b64 = base64::engine::general_purpose::STANDARD.encode(script);
        let f = format!("/tmp/.e2e-job.{id}");
        self.sh_ok(&format!(
            "echo {b64} | base64 -d > {f}.sh && \
             (sh {f}.sh > {f}.out 2>&1; echo $? > {f}.tmp; mv {f}.tmp {f}.status) \
             </dev/null >/dev/null 2>&1 &"
        ));
        Job { id }
    }

    /// The job's exit status if it has finished.
    pub fn job_status(&self, job: &Job) -> Option<i32> {
        let (out, status) = self.sh(&format!("cat /tmp/.e2e-job.{}.status", job.id));
        (status == 0).then(|| out.trim().parse().expect("job status"))
    }

    /// Waits up to `timeout` for the job; its output (stdout and stderr) and status.
    /// Panics on timeout.
    pub fn job_wait(&self, job: &Job, timeout: Duration) -> (String, i32) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.job_status(job) {
                return (
                    self.sh_ok(&format!("cat /tmp/.e2e-job.{}.out", job.id)),
                    status,
                );
            }
            assert!(
                Instant::now() < deadline,
                "guest job {} did not finish",
                job.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id of the agent in the guest.
    pub fn agent_pid(&self) -> u32 {
        let out = self.sh_ok("pidof phoenix-ga");
        out.split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no phoenix-ga in the guest: {out:?}"))
    }

    /// The agent's CPU time in the guest (utime + stime, clock ticks).
    pub fn cpu_ticks(&self, pid: u32) -> u64 {
        let stat = self.sh_ok(&format!("cat /proc/{pid}/stat"));
        let after_comm = &stat[stat.rfind(')').expect("comm in stat") + 2..];
        let f: Vec<&str> = after_comm.split_whitespace().collect();
        // after_comm starts at field 3 (state); utime is field 14, stime 15.
        f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
    }

    /// Exit statuses of earlier agent runs in the guest, oldest first (the guest's
    /// /init restarts the agent whenever it exits).
    pub fn agent_exits(&self) -> Vec<i32> {
        self.sh_ok("cat /run/ga.exits 2>/dev/null || true")
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// The agent's stderr log in the guest.
    pub fn agent_log(&self) -> String {
        self.sh_ok("cat /run/ga.log")
    }

    /// The guest's serial console (kernel messages, /init notes).
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }

    /// The kernel the guest runs.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// How long booting took (initramfs build, QEMU start, until the agent answered).
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// The accelerator the guest runs under: "kvm" or "tcg".
    pub fn accel(&self) -> &'static str {
        if self.kvm {
            "kvm"
        } else {
            "tcg"
        }
    }

    /// QEMU's process id on the host.
    pub fn qemu_pid(&self) -> u32 {
        self.vm.pid()
    }

    /// The libvirt domain's name, for a guest of [`Guest::boot_libvirt`].
    pub fn domain(&self) -> Option<&str> {
        match &self.vm {
            Vm::Libvirt(d) => Some(d.name()),
            Vm::Qemu(_) => None,
        }
    }

    /// Runs `virsh -c qemu:///system ARGS`; what it printed and its status. Panics
    /// (with the guest's diagnostics) when virsh cannot be run.
    pub fn virsh(&self, args: &[&str]) -> ShOutput {
        virsh(args)
            .unwrap_or_else(|e| panic!("virsh {args:?}: {}\n{}", Report(&e), self.diagnostics()))
    }

    /// Waits up to `timeout` until libvirt shows its agent channel connected and relays
    /// a `guest-ping` to the agent (after the agent restarted, say). Fails at once for a
    /// QEMU guest.
    pub fn wait_libvirt_agent(&self, timeout: Duration) -> Result<()> {
        match &self.vm {
            Vm::Libvirt(d) => wait_agent(d, Instant::now() + timeout),
            Vm::Qemu(_) => Err(Error::msg("not a libvirt guest")),
        }
    }

    /// The state libvirt shows on the channel of `port` (`connected`, `disconnected`)
    /// in `virsh dumpxml`; `None` when the channel shows none, or for a QEMU guest.
    pub fn channel_state(&self, port: &str) -> Option<String> {
        match &self.vm {
            Vm::Libvirt(d) => d
                .channel_state(port)
                .unwrap_or_else(|e| panic!("{}\n{}", Report(&e), self.diagnostics())),
            Vm::Qemu(_) => None,
        }
    }

    /// Waits up to `timeout` for QEMU to exit (the guest powered itself off, or rebooted
    /// without [`GuestOpts::reboot`]); whether it did. The guest stays as it is.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        self.vm.wait(timeout)
    }

    /// Powers the guest off cleanly (thaws and unmounts the scratch disk first) and
    /// waits for QEMU to exit.
    pub fn shutdown(self) -> Result<()> {
        let script = format!(
            "fsfreeze --unfreeze {SCRATCH} 2>/dev/null; sync; umount {SCRATCH}; poweroff -f"
        );
        self.shell
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(&script)?;
        match self.vm.wait(Duration::from_secs(30)) {
            true => Ok(()),
            false => {
                eprintln!(
                    "phoenix-e2e: the guest did not power off\n{}",
                    self.diagnostics()
                );
                Err(Error::msg("guest did not power off"))
            }
        }
    }

    /// The last lines of QEMU's log and the guest console, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut out = format!(
            "--- qemu log ({}) ---\n{}--- guest console ---\n{}",
            self.log.display(),
            tail(&self.log),
            tail(&self.dir.path().join("console.log"))
        );
        if self.vsock.is_some() {
            let log = self.dir.path().join("vhost-vsock.log");
            out.push_str(&format!("--- vhost-device-vsock ---\n{}", tail(&log)));
        }
        out
    }
}

/// The guest's kernel command line.
const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";

/// Starts QEMU for the files in `dir`; the process and its log.
fn spawn_qemu(opts: &GuestOpts, kvm: bool, kernel: &Kernel, dir: &Path) -> Result<(Vm, PathBuf)> {
    let qemu_bin =
        std::env::var("PHOENIX_E2E_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
    let initrd = dir.join("initrd.cpio");
    let disk = dir.join("scratch.img");
    let p = |name: &str| dir.join(name).display().to_string();
    let mut cmd = Command::new(&qemu_bin);
    cmd.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        // Thread names ("CPU 0/TCG", ...) in /proc, for CPU accounting.
        "-name",
        "phoenix-e2e,debug-threads=on",
    ])
    .args((!opts.reboot).then_some("-no-reboot"))
    .args(["-accel", if kvm { "kvm" } else { "tcg" }])
    .args(opts.cpu.iter().flat_map(|c| ["-cpu", c.as_str()]))
    .args([
        "-m",
        &opts.memory_mib.to_string(),
        "-smp",
        &opts.cpus.to_string(),
    ])
    .arg("-kernel")
    .arg(&kernel.vmlinuz)
    .arg("-initrd")
    .arg(&initrd)
    .args(["-append", CMDLINE])
    .args(["-serial", &format!("file:{}", p("console.log"))])
    .args(["-device", "virtio-serial-pci"])
    .args([
        "-chardev",
        &format!("socket,id=ga0,path={},server=on,wait=off", p("ga.sock")),
    ])
    .args([
        "-device",
        &format!("virtserialport,chardev=ga0,name={AGENT_PORT}"),
    ])
    .args([
        "-chardev",
        &format!("socket,id=sh0,path={},server=on,wait=off", p("shell.sock")),
    ])
    .args([
        "-device",
        &format!("virtserialport,chardev=sh0,name={SHELL_PORT}"),
    ])
    .args(opts.extra_ports.iter().enumerate().flat_map(|(i, name)| {
        let sock = dir.join(port_file(name));
        [
            "-chardev".to_string(),
            format!("socket,id=xp{i},path={},server=on,wait=off", sock.display()),
            "-device".to_string(),
            format!("virtserialport,chardev=xp{i},name={name}"),
        ]
    }))
    .args([
        "-drive",
        &format!("file={},format=raw,if=virtio", disk.display()),
    ])
    .args(["-nic", "user,model=virtio-net-pci,restrict=on"]);
    if opts.vsock.is_some() {
        cmd.args(vsock::qemu_args(dir, opts.memory_mib));
    }
    let log_path = dir.join("qemu.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(format!("create {}", log_path.display()), e))?;
    let qemu = qemu::Qemu::spawn(cmd, log).map_err(|e| {
        Error::io(
            format!("start {qemu_bin} (scripts/test --deps-only installs it)"),
            e,
        )
    })?;

    Ok((Vm::Qemu(qemu), log_path))
}

/// Creates the libvirt domain for the files in `dir` (made readable to libvirt's QEMU
/// user); the domain and libvirt's log of it.
fn create_domain(
    opts: &GuestOpts,
    kvm: bool,
    kernel: &Kernel,
    dir: &Path,
    ports: &[String],
) -> Result<(Vm, PathBuf)> {
    use std::os::unix::fs::PermissionsExt as _;
    // libvirt runs QEMU as libvirt-qemu and hands it these files: the folder (0700 from
    // mktemp) must be searchable. The kernel is copied so that libvirt's chown for the
    // run never touches the shared cache.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(format!("chmod {}", dir.display()), e))?;
    let vmlinuz = dir.join("vmlinuz");
    std::fs::copy(&kernel.vmlinuz, &vmlinuz)
        .map_err(|e| Error::io(format!("copy {}", kernel.vmlinuz.display()), e))?;
    let mut channels = vec![
        (AGENT_PORT.to_string(), Some(dir.join("ga.sock"))),
        (SHELL_PORT.to_string(), Some(dir.join("shell.sock"))),
    ];
    for name in ports {
        let socket = (name != QGA_PORT).then(|| dir.join(port_file(name)));
        channels.push((name.clone(), socket));
    }
    let name = libvirt::unique_name();
    let emulator = std::env::var("PHOENIX_E2E_QEMU").ok();
    let xml = libvirt::domain_xml(&libvirt::Spec {
        name: &name,
        kvm,
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        cpu: opts.cpu.as_deref(),
        emulator: emulator.as_deref(),
        kernel: &vmlinuz,
        initrd: &dir.join("initrd.cpio"),
        cmdline: CMDLINE,
        disk: &dir.join("scratch.img"),
        console: &dir.join("console.log"),
        channels: &channels,
        reboot: opts.reboot,
    });
    let domain = libvirt::Domain::create(&name, &xml, dir)?;
    Ok((Vm::Libvirt(domain), libvirt::log_path(&name)))
}

/// Waits until libvirt shows the agent channel connected and relays a `guest-ping`
/// (libvirt refuses agent commands before the guest opened the port, and connects to
/// the agent just after it shows the channel connected).
fn wait_agent(domain: &libvirt::Domain, deadline: Instant) -> Result<()> {
    let ping = r#"{"execute":"guest-ping"}"#;
    loop {
        let state = domain.channel_state(QGA_PORT)?;
        let last = if state.as_deref() == Some("connected") {
            let out = virsh(&["qemu-agent-command", domain.name(), ping])?;
            if out.status == 0 {
                return Ok(());
            }
            out.stderr.trim().to_string()
        } else {
            format!(
                "the channel is {}",
                state.as_deref().unwrap_or("without a state")
            )
        };
        if Instant::now() >= deadline {
            return Err(Error::msg(format!(
                "libvirt does not reach the agent on {QGA_PORT}: {last}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether /dev/kvm is usable and backed by hardware virtualisation.
fn kvm_looks_real() -> bool {
    let usable = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = flags
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    usable && hw
}

/// The host socket's file name for an extra port.
fn port_file(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("port-{safe}.sock")
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(40)..].join("\n");
    out.push('\n');
    out
}

/// [`Error::QemuCrashed`] when QEMU's log shows it failed one of its own assertions
/// (its C `assert` or glib's `g_assert`): QEMU is then dead, through no fault of the guest.
fn qemu_crash(log: &Path) -> Option<Error> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| l.contains("Assertion `") || l.contains("assertion failed"))
        .map(|l| Error::QemuCrashed(l.trim().to_string()))
}

type SharedCell = OnceLock<std::result::Result<Mutex<Guest>, String>>;

/// The shared guests: QEMU's ([`shared`]), libvirt's ([`shared_libvirt`]) and the one
/// with a vsock device ([`shared_vsock`]).
static SHARED: [SharedCell; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];

/// One guest per test binary, shared by its tests: booted on first use with `opts`,
/// then handed out one test at a time (the guard serialises tests). It is killed and
/// its files removed when the test process exits.
pub fn shared(opts: impl FnOnce() -> GuestOpts) -> MutexGuard<'static, Guest> {
    shared_in(&SHARED[0], || Guest::boot(opts()))
}

/// One libvirt guest ([`Guest::boot_libvirt`]) per test binary, shared by its tests as
/// [`shared`] shares its QEMU guest (the two are distinct guests). Its domain is
/// destroyed and its files removed when the test process exits.
pub fn shared_libvirt(opts: impl FnOnce() -> GuestOpts) -> MutexGuard<'static, Guest> {
    shared_in(&SHARED[1], || Guest::boot_libvirt(opts()))
}

/// One guest with a vsock device per test binary ([`GuestOpts::vsock`] must be set),
/// shared by its tests as [`shared`] shares its guest (a third guest, so that the tests
/// without vsock need no vsock backend).
pub fn shared_vsock(opts: impl FnOnce() -> GuestOpts) -> MutexGuard<'static, Guest> {
    shared_in(&SHARED[2], || Guest::boot(opts()))
}

fn shared_in(
    cell: &'static SharedCell,
    boot: impl FnOnce() -> Result<Guest>,
) -> MutexGuard<'static, Guest> {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    let guest = cell.get_or_init(|| {
        let booted = boot().map(Mutex::new).map_err(|e| Report(&e).to_string());
        if booted.is_ok() {
            AT_EXIT.call_once(|| {
                // SAFETY: registers a plain extern "C" function with no arguments.
                unsafe { libc::atexit(kill_shared) };
            });
        }
        booted
    });
    match guest {
        Ok(m) => m.lock().unwrap_or_else(|p| p.into_inner()),
        Err(e) => panic!("booting the shared guest failed: {e}"),
    }
}

/// At process exit: kill the shared guests' QEMU and remove their files (statics are
/// never dropped).
extern "C" fn kill_shared() {
    for cell in &SHARED {
        if let Some(Ok(m)) = cell.get() {
            let guard = match m.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                // PDEATHSIG still kills QEMU; the watchdog destroys a domain.
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            guard.vm.kill();
            if let Some(backend) = &guard.vsock {
                backend.kill();
            }
            let _ = std::fs::remove_dir_all(guard.dir.path());
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.vm.kill();
        if let Some(backend) = &self.vsock {
            backend.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_failure_prints_each_cause_once() {
        let refused = || std::io::Error::from_raw_os_error(111);
        let agent = Error::Agent {
            what: "agent did not answer".into(),
            source: phoenix_client::ClientError::Connect {
                path: "/tmp/g/ga.sock".into(),
                source: refused(),
            },
        };
        let report = Report(&agent).to_string();
        assert_eq!(
            report,
            "agent did not answer: connect /tmp/g/ga.sock: Connection refused (os error 111)"
        );
        assert_eq!(report.matches("Connection refused").count(), 1);

        let up = Error::step(
            "guest did not come up",
            Error::step(
                "QEMU did not open the shell channel's socket",
                Error::io("connect /tmp/g/shell.sock", refused()),
            ),
        );
        assert_eq!(up.to_string(), "guest did not come up");
        assert_eq!(
            Report(&up).to_string(),
            "guest did not come up: QEMU did not open the shell channel's socket: \
             connect /tmp/g/shell.sock: Connection refused (os error 111)"
        );
    }

    #[test]
    fn only_a_qemu_assertion_counts_as_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("qemu.log");
        std::fs::write(
            &log,
            "-smp 2 \\\n2026-12-06 qemu: terminating on signal 15\n",
        )
        .unwrap();
        assert!(qemu_crash(&log).is_none(), "a kill is not a crash");
        assert!(qemu_crash(&dir.path().join("missing.log")).is_none());
        std::fs::write(
            &log,
            "-msg timestamp=on\nqemu-system-x86_64: system/physmem.c:2678: iotlb_to_section: \
             Assertion `section_index < d->map.sections_nb' failed.\n",
        )
        .unwrap();
        let crash = qemu_crash(&log).expect("an assertion is a crash");
        assert!(matches!(crash, Error::QemuCrashed(ref l) if l.contains("iotlb_to_section")));
    }
}
