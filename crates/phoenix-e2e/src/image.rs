//! The guest's boot files: a Debian cloud kernel (downloaded once, cached outside the
//! repo) and an initramfs built per guest from busybox-static, the few virtio modules,
//! the agent under test and the shared libraries `ldd` names for it.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};

use crate::{Error, Result};

/// The metapackage naming the current cloud kernel; its first dependency is the
/// versioned image package whose .deb we download.
const KERNEL_META: &str = "linux-image-cloud-amd64";

/// Modules the guest loads (with their dependencies): PCI transport, the ports, the
/// scratch disk and the NIC. ext4 is built into the cloud kernel. The vsock modules are
/// there too, for the tests to load when they choose (a guest with a vsock device).
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_console",
    "virtio_blk",
    "virtio_net",
    "vmw_vsock_virtio_transport",
    "vsock_loopback",
];

/// The guest's /init script (see the file for the shell-channel protocol).
const INIT: &str = include_str!("init.sh");

/// Where kernels are cached: `$PHOENIX_E2E_CACHE`, else /var/cache/phoenix-rs-e2e.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("PHOENIX_E2E_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/phoenix-rs-e2e"))
}

/// An unpacked kernel: its image and its module tree.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// `uname -r` of the kernel.
    pub release: String,
    /// The bootable image (bzImage).
    pub vmlinuz: PathBuf,
    /// `lib/modules/RELEASE` with a `modules.dep`.
    pub modules: PathBuf,
}

/// The cached kernel, downloading and unpacking it on first use. Several test binaries
/// may ask at once: a lock file serialises them.
pub fn kernel() -> Result<Kernel> {
    let cache = cache_dir();
    fs::create_dir_all(&cache).map_err(|e| {
        Error::io(
            format!(
                "create the kernel cache {} (set PHOENIX_E2E_CACHE to move it)",
                cache.display()
            ),
            e,
        )
    })?;
    let lock_path = cache.join(".lock");
    let lock_file = File::create(&lock_path)
        .map_err(|e| Error::io(format!("create {}", lock_path.display()), e))?;
    let _lock =
        Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, source)| Error::Sys {
            what: format!("lock {}", lock_path.display()),
            source,
        })?;

    let ready = cache.join("kernel.ready");
    if let Ok(release) = fs::read_to_string(&ready) {
        let k = unpacked(&cache, release.trim());
        if k.vmlinuz.is_file() && k.modules.join("modules.dep").is_file() {
            return Ok(k);
        }
    }
    let deb = match std::env::var_os("PHOENIX_E2E_KERNEL_DEB") {
        Some(deb) => PathBuf::from(deb),
        None => download(&cache)?,
    };
    let tmp = tempfile::tempdir_in(&cache).map_err(|e| Error::io("tempdir in cache", e))?;
    let root = tmp.path().join("root");
    run(
        Command::new("dpkg").arg("-x").arg(&deb).arg(&root),
        "dpkg -x the kernel",
    )?;
    let release = fs::read_dir(root.join("lib/modules"))
        .map_err(|e| Error::io(format!("{}: no lib/modules", deb.display()), e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| Error::msg(format!("{}: no module tree", deb.display())))?;
    run(
        Command::new("busybox")
            .args(["depmod", "-b"])
            .arg(&root)
            .arg(&release),
        "busybox depmod",
    )?;
    let dest = cache.join("kernel").join(&release);
    if dest.exists() {
        fs::remove_dir_all(&dest)
            .map_err(|e| Error::io(format!("remove {}", dest.display()), e))?;
    }
    fs::create_dir_all(dest.parent().unwrap_or(&cache)).map_err(|e| Error::io("mkdir", e))?;
    fs::rename(&root, &dest).map_err(|e| Error::io(format!("rename to {}", dest.display()), e))?;
    if std::env::var_os("PHOENIX_E2E_KERNEL_DEB").is_none() {
        let _ = fs::remove_file(&deb);
    }
    fs::write(&ready, &release).map_err(|e| Error::io(format!("write {}", ready.display()), e))?;
    Ok(unpacked(&cache, &release))
}

fn unpacked(cache: &Path, release: &str) -> Kernel {
    let root = cache.join("kernel").join(release);
    Kernel {
        release: release.to_string(),
        vmlinuz: root.join("boot").join(format!("vmlinuz-{release}")),
        modules: root.join("lib/modules").join(release),
    }
}

/// `apt-get download`s the versioned kernel package into the cache; its path.
fn download(cache: &Path) -> Result<PathBuf> {
    let out = output(
        Command::new("apt-cache").args(["depends", KERNEL_META]),
        "apt-cache depends",
    )?;
    let pkg = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| {
            Error::msg(format!(
                "apt-cache depends {KERNEL_META} names no kernel package (run apt-get update?)"
            ))
        })?
        .to_string();
    run(
        Command::new("apt-get")
            .args(["download", "-q", &pkg])
            .current_dir(cache),
        &format!("apt-get download {pkg}"),
    )?;
    fs::read_dir(cache)
        .map_err(|e| Error::io("read cache dir", e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
        })
        .ok_or_else(|| Error::msg(format!("apt-get download {pkg} left no .deb")))
}

/// What goes into the initramfs besides busybox and the modules.
pub struct Payload<'a> {
    /// The agent binary, installed as /usr/bin/phoenix-ga.
    pub agent: &'a Path,
    /// Its arguments after `-m virtio-serial`.
    pub agent_args: &'a [String],
    /// Extra port names /init waits for (besides the agent's and the shell's).
    pub ports: &'a [String],
    /// Extra programs, installed as /usr/bin/BASENAME.
    pub binaries: &'a [PathBuf],
    /// A script /init runs before it starts the agent (/etc/phoenix-e2e.setup).
    pub setup: Option<&'a str>,
}

/// Builds the initramfs (an uncompressed newc cpio) at `out`, staging files in `stage`.
pub fn initramfs(kernel: &Kernel, payload: &Payload<'_>, stage: &Path, out: &Path) -> Result<()> {
    let busybox = which("busybox")?;
    if !libraries(&busybox)?.is_empty() {
        return Err(Error::msg(format!(
            "{} is dynamically linked: install busybox-static (scripts/test --deps-only does)",
            busybox.display()
        )));
    }
    install(&busybox, &stage.join("bin/busybox"), 0o755)?;
    write(&stage.join("init"), INIT.as_bytes(), 0o755)?;
    install(payload.agent, &stage.join("usr/bin/phoenix-ga"), 0o755)?;
    for lib in libraries(payload.agent)? {
        install(
            &lib,
            &stage.join(lib.strip_prefix("/").unwrap_or(&lib)),
            0o755,
        )?;
    }
    for bin in payload.binaries {
        let name = bin
            .file_name()
            .ok_or_else(|| Error::msg(format!("{}: not a file name", bin.display())))?;
        install(bin, &stage.join("usr/bin").join(name), 0o755)?;
        for lib in libraries(bin)? {
            install(
                &lib,
                &stage.join(lib.strip_prefix("/").unwrap_or(&lib)),
                0o755,
            )?;
        }
    }
    let mut ports = payload.ports.join("\n");
    ports.push('\n');
    write(
        &stage.join("etc/phoenix-e2e.ports"),
        ports.as_bytes(),
        0o644,
    )?;
    if let Some(script) = payload.setup {
        write(
            &stage.join("etc/phoenix-e2e.setup"),
            script.as_bytes(),
            0o644,
        )?;
    }
    let args = payload.agent_args.join(" ");
    write(
        &stage.join("etc/phoenix-ga.args"),
        format!("{args}\n").as_bytes(),
        0o644,
    )?;
    modules(kernel, &stage.join("lib/modules").join(&kernel.release))?;

    let file = File::create(out).map_err(|e| Error::io(format!("create {}", out.display()), e))?;
    let status = Command::new("sh")
        .args(["-c", "find . -print0 | cpio --null -o -H newc --quiet"])
        .current_dir(stage)
        .stdout(file)
        .status()
        .map_err(|e| Error::io("run find | cpio (is cpio installed?)", e))?;
    if !status.success() {
        return Err(Error::msg(format!("find | cpio failed: {status}")));
    }
    Ok(())
}

/// Copies the closure of [`MODULES`] and writes a `modules.dep` for just those.
fn modules(kernel: &Kernel, dest: &Path) -> Result<()> {
    let dep_path = kernel.modules.join("modules.dep");
    let deps_text = fs::read_to_string(&dep_path)
        .map_err(|e| Error::io(format!("read {}", dep_path.display()), e))?;
    let lines = module_closure(&deps_text, MODULES)
        .map_err(|name| Error::msg(format!("module {name} not in {}", dep_path.display())))?;
    let mut dep_out = String::new();
    for line in lines {
        let rel = line.split_once(':').map_or(line, |(m, _)| m);
        install(&kernel.modules.join(rel), &dest.join(rel), 0o644)?;
        dep_out.push_str(line);
        dep_out.push('\n');
    }
    write(&dest.join("modules.dep"), dep_out.as_bytes(), 0o644)
}

/// The modules.dep lines of `modules` and everything they depend on, sorted by name;
/// the name of a module that is missing from `deps_text` as the error.
fn module_closure<'a>(
    deps_text: &'a str,
    modules: &[&'a str],
) -> std::result::Result<Vec<&'a str>, String> {
    let base = |path: &'a str| {
        path.rsplit('/')
            .next()
            .unwrap_or(path)
            .trim_end_matches(".ko")
    };
    let mut deps: HashMap<&str, (&str, Vec<&str>)> = HashMap::new();
    for line in deps_text.lines() {
        if let Some((module, rest)) = line.split_once(':') {
            deps.insert(
                base(module),
                (line, rest.split_whitespace().map(base).collect()),
            );
        }
    }
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    let mut todo: Vec<&str> = modules.to_vec();
    while let Some(name) = todo.pop() {
        let (_, needs) = deps.get(name).ok_or_else(|| name.to_string())?;
        if wanted.insert(name) {
            todo.extend(needs);
        }
    }
    Ok(wanted.into_iter().map(|name| deps[name].0).collect())
}

/// The shared libraries (and dynamic loader) `ldd` names for `binary`; empty if static.
fn libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| Error::io("run ldd", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("statically linked") {
        return Ok(Vec::new()); // "not a dynamic executable"
    }
    Ok(parse_ldd(&text))
}

/// The absolute paths in `ldd` output (`libc.so.6 => /lib/.../libc.so.6 (0x...)`, and
/// the loader's `/lib64/ld-linux-x86-64.so.2 (0x...)`); the vDSO has none.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, right)) => right.trim(),
                None => l,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::msg(format!(
                "{name} not found in PATH (scripts/test --deps-only installs it)"
            ))
        })
}

/// Copies `src` (following symlinks) to `dest`, creating parent directories.
fn install(src: &Path, dest: &Path, mode: u32) -> Result<()> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("mkdir {}", dir.display()), e))?;
    }
    fs::copy(src, dest).map_err(|e| Error::io(format!("copy {}", src.display()), e))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", dest.display()), e))
}

fn write(dest: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("mkdir {}", dir.display()), e))?;
    }
    let mut f =
        File::create(dest).map_err(|e| Error::io(format!("create {}", dest.display()), e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io(format!("write {}", dest.display()), e))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", dest.display()), e))
}

/// Makes the scratch disk: a sparse raw image of `mib` MiB with an ext4 filesystem.
pub fn scratch_disk(path: &Path, mib: u64) -> Result<()> {
    let f = File::create(path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    f.set_len(mib << 20)
        .map_err(|e| Error::io(format!("size {}", path.display()), e))?;
    drop(f);
    run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "scratch"])
            .arg(path),
        "mkfs.ext4 the scratch disk (e2fsprogs)",
    )
}

/// Runs `cmd`, failing with its stderr.
pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<()> {
    output(cmd, what).map(drop)
}

fn output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("{what}: cannot run {:?}", cmd.get_program()), e))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc8a5f2000)
\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0c)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0b)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0d)
";
        assert_eq!(
            parse_ldd(text),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tstatically linked\n").is_empty());
    }

    #[test]
    fn closure_follows_dependencies_once() {
        let deps = "kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio.ko kernel/net/core/failover.ko
kernel/drivers/virtio/virtio.ko:
kernel/net/core/failover.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko
kernel/fs/unrelated.ko:
";
        let lines = module_closure(deps, &["virtio_net", "virtio_blk"]).unwrap();
        assert_eq!(
            lines,
            [
                "kernel/net/core/failover.ko:",
                "kernel/drivers/virtio/virtio.ko:",
                "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio.ko kernel/net/core/failover.ko",
            ]
        );
        assert_eq!(module_closure(deps, &["nope"]).unwrap_err(), "nope");
    }
}
