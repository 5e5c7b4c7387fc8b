//! The storage commands of the qemu-ga dialect (`guest-get-fsinfo`, `guest-get-disks`,
//! `guest-get-diskstats`, `guest-fstrim`) against the real binary, on ext4 images the
//! tests loop-mount themselves, checked against what the OS shows (findmnt, df,
//! /proc/diskstats, sysfs) and against Debian's qemu-ga given the same requests.
//! Root only.
//!
//! qemu-ga's `guest-fstrim` trims every filesystem of its mount table, so both agents
//! run in a jail ([`Jail`]): a private mount namespace whose root is a tmpfs holding
//! the two binaries and their libraries, /proc, /sys, /dev, and the test's own
//! mounts, nothing else (the host's mounts are detached from it). There, each agent's
//! mount table is the test's, FITRIM reaches only the test's loop devices, and no
//! other session's mounts come and go under the comparison. A jail that holds a bind
//! of the machine's own disk (to see a real virtio address) refuses `guest-fstrim`,
//! and every trim first checks the jail's mount table.
//!
//! Deliberate differences from qemu-ga, allowed below and documented in
//! docs/commands/storage.md: a `serial` read from sysfs where udev's database is
//! missing (this machine runs no udev); `guest-fstrim` refuses a negative `minimum`;
//! the listings answer while frozen.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use phoenix_testkit::{
    must, must_json, qga_call, qga_err, qga_ok, quiet, shape, wait_listening, QemuGa, RawConn,
    QEMU_GA,
};
use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");

/// Builds the jail: `sh -c JAIL_SH sh ROOT BINARY... -- KIND:ARG:AT...`, run by
/// `unshare -m --propagation private`. Mount kinds: `dev` (a block device), `devro`
/// (read-only), `tmpfs`, `bind` (a path of the jail), `hostbind` (a path of the host,
/// read-only). `FAKE_SYS` and `FAKE_UDEV` in the environment name directories copied
/// to the jail's /sys and /run/udev instead of the real ones. It prints `ready PID`
/// and sleeps; killing it ends the namespace and every mount in it.
const JAIL_SH: &str = r#"
set -eu
J=$1; shift
mount -t tmpfs -o size=512m,mode=755 phoenix-jail "$J"
mkdir -p "$J/proc" "$J/sys" "$J/dev" "$J/old" "$J/s" "$J/mnt"
copy() {
  for f in "$1" $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true); do
    mkdir -p "$J$(dirname "$f")"
    cp -L "$f" "$J$f"
  done
}
while [ "$1" != -- ]; do copy "$1"; shift; done
shift
copy "$(command -v umount)"
mount -t proc proc "$J/proc"
if [ -n "${FAKE_SYS:-}" ]; then cp -a "$FAKE_SYS/." "$J/sys/"; else mount -t sysfs sysfs "$J/sys"; fi
mount -t devtmpfs devtmpfs "$J/dev"
if [ -n "${FAKE_UDEV:-}" ]; then
  mkdir -p "$J/run/udev"; cp -a "$FAKE_UDEV/." "$J/run/udev/"
elif [ -d /run/udev ]; then
  mkdir -p "$J/run/udev"; mount --bind /run/udev "$J/run/udev"
fi
for spec in "$@"; do
  kind=${spec%%:*}; rest=${spec#*:}; arg=${rest%%:*}; at=$J${rest#*:}
  mkdir -p "$at"
  case $kind in
    dev) mount "$arg" "$at";;
    devro) mount -o ro "$arg" "$at";;
    tmpfs) mount -t tmpfs -o size=1m phoenix-jail-tmpfs "$at";;
    bind) mount --bind "$J$arg" "$at";;
    hostbind) mount --bind "$arg" "$at"; mount -o remount,ro,bind "$at";;
  esac
done
cd "$J"
pivot_root . old
umount -l /old
echo "ready $$"
exec /bin/sleep infinity
"#;

/// A mount of the jail.
#[derive(Debug, Clone)]
enum Mnt {
    /// A block device at a path.
    Dev(String, String),
    /// A block device, read-only.
    DevRo(String, &'static str),
    /// A tmpfs.
    Tmpfs(&'static str),
    /// A bind of a path of the jail.
    Bind(&'static str, &'static str),
    /// A read-only bind of a path of the host (its filesystem is the machine's).
    HostBind(String, &'static str),
}

impl Mnt {
    fn spec(&self) -> String {
        match self {
            Mnt::Dev(dev, at) => format!("dev:{dev}:{at}"),
            Mnt::DevRo(dev, at) => format!("devro:{dev}:{at}"),
            Mnt::Tmpfs(at) => format!("tmpfs:-:{at}"),
            Mnt::Bind(from, at) => format!("bind:{from}:{at}"),
            Mnt::HostBind(from, at) => format!("hostbind:{from}:{at}"),
        }
    }
}

/// A private mount namespace holding only the test's mounts (see the module docs).
/// Dropped, it thaws what a test froze, stops the agents and then the namespace.
struct Jail {
    holder: Child,
    pid: u32,
    /// The host directory the jail's tmpfs covers (in the namespace only).
    _dir: tempfile::TempDir,
    agents: Vec<Child>,
    /// The block devices (`/dev/loopN`) the test mounted: the only ones a trim may
    /// reach.
    own: Vec<String>,
    /// A bind of the machine's own filesystem: never trim.
    foreign: bool,
    /// Mount points a test froze, thawed first when dropped.
    thaw: Vec<&'static str>,
}

impl Jail {
    fn new(mounts: &[Mnt]) -> Self {
        Self::with_env(mounts, &[])
    }

    /// A jail built with `env` (`FAKE_SYS`, `FAKE_UDEV`).
    fn with_env(mounts: &[Mnt], env: &[(&str, &Path)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", JAIL_SH, "sh"])
            .arg(dir.path())
            .args([QEMU_GA, AGENT, "/bin/sleep", "--"])
            .args(mounts.iter().map(Mnt::spec))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid: u32 = match line.trim().strip_prefix("ready ") {
            Some(pid) => pid.parse().unwrap(),
            None => {
                let _ = holder.kill();
                let _ = holder.wait();
                panic!("the jail did not start: {line:?}");
            }
        };
        assert_eq!(pid, holder.id());
        let own = mounts
            .iter()
            .filter_map(|m| match m {
                Mnt::Dev(d, _) | Mnt::DevRo(d, _) => Some(d.clone()),
                _ => None,
            })
            .collect();
        let foreign = mounts.iter().any(|m| matches!(m, Mnt::HostBind(..)));
        Jail {
            holder,
            pid,
            _dir: dir,
            agents: Vec::new(),
            own,
            foreign,
            thaw: Vec::new(),
        }
    }

    /// A path of the jail, as the host reaches it.
    fn path(&self, p: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{p}", self.pid))
    }

    /// Starts `program ARGS` in the jail; a connection to its socket `sock` (a path
    /// of the jail).
    fn start(&mut self, program: &str, args: &[&str], sock: &str) -> RawConn {
        let pid = self.pid.to_string();
        let child = Command::new("nsenter")
            .args(["-t", &pid, "-m", "-r", "-w", "--", program])
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("nsenter");
        self.agents.push(child);
        let sock = self.path(sock);
        wait_listening(&sock);
        RawConn::connect(&sock)
    }

    /// Debian's qemu-ga in the jail.
    fn qemu_ga(&mut self) -> RawConn {
        self.start(
            QEMU_GA,
            &[
                "-m",
                "unix-listen",
                "-p",
                "/s/qga.sock",
                "-t",
                "/s",
                "-f",
                "/s/qga.pid",
            ],
            "/s/qga.sock",
        )
    }

    /// Our agent in the jail, in the qemu-ga dialect.
    fn ours(&mut self, state_dir: &str) -> RawConn {
        let sock = format!("{state_dir}.sock");
        self.start(
            AGENT,
            &[
                "-m",
                "unix-listen",
                "-p",
                &sock,
                "--dialect",
                "qga",
                "--state-dir",
                state_dir,
            ],
            &sock,
        )
    }

    /// The jail's mount table, as findmnt reads it: (target, source, fstype, maj:min).
    fn findmnt(&self) -> Vec<(String, String, String, String)> {
        let v = must_json(
            "findmnt",
            &[
                "-J",
                "-l",
                "-N",
                &self.pid.to_string(),
                "-o",
                "TARGET,SOURCE,FSTYPE,MAJ:MIN",
            ],
        );
        v["filesystems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                (s("target"), s("source"), s("fstype"), s("maj:min"))
            })
            .collect()
    }

    /// Whether a trim may be sent: every block device mounted in the jail is one of
    /// the test's own loop devices.
    fn check_trim(&self) -> Result<(), String> {
        if self.foreign {
            return Err("no trim in a jail holding the machine's disk".into());
        }
        for (target, source, _, majmin) in self.findmnt() {
            if !majmin.starts_with("0:") && !self.own.contains(&source) {
                return Err(format!(
                    "{target} ({source}, {majmin}) is not the test's own: refusing to trim"
                ));
            }
        }
        Ok(())
    }

    /// `guest-fstrim` on `c`, only after [`Jail::check_trim`].
    fn fstrim(&self, c: &mut RawConn, args: Value) -> Value {
        self.check_trim().unwrap();
        qga_call(c, "guest-fstrim", args)
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        for m in &self.thaw {
            // Inside the jail: at worst FITHAW on its tmpfs, which refuses it.
            quiet("fsfreeze", &["-u", self.path(m).to_str().unwrap()]);
        }
        for a in &mut self.agents {
            let _ = a.kill();
            let _ = a.wait();
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A loop device on an image in a temporary directory; detached when dropped.
struct Loop {
    dev: String,
    dir: tempfile::TempDir,
}

/// mkfs.ext4 without lazy initialisation (no writes after mount) and without the
/// discard of mkfs itself.
fn mkfs(target: &str) {
    must(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0,nodiscard",
            target,
        ],
    );
}

impl Loop {
    fn image(mib: u64) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img").to_str().unwrap().to_string();
        must("truncate", &["-s", &format!("{mib}M"), &img]);
        (dir, img)
    }

    /// A 32 MiB ext4 image.
    fn ext4() -> Self {
        let (dir, img) = Self::image(32);
        mkfs(&img);
        let dev = must("losetup", &["-f", "--show", &img]);
        Loop { dev, dir }
    }

    /// A 32 MiB ext4 image on a read-only loop device.
    fn ext4_read_only() -> Self {
        let (dir, img) = Self::image(32);
        mkfs(&img);
        let dev = must("losetup", &["-r", "-f", "--show", &img]);
        Loop { dev, dir }
    }

    /// A 64 MiB disk with an MBR of two partitions (1-33 MiB, ext4; 33-63 MiB,
    /// empty). The kernel is told of them with BLKPG (addpart), as a kernel built
    /// without partition table parsers (this machine's) would not find them.
    fn partitioned() -> Self {
        let (dir, img) = Self::image(64);
        let mut mbr = [0u8; 512];
        for (i, (start_mib, mib)) in [(1u32, 32u32), (33, 30)].into_iter().enumerate() {
            let e = 446 + 16 * i;
            mbr[e + 4] = 0x83;
            mbr[e + 8..e + 12].copy_from_slice(&(start_mib * 2048).to_le_bytes());
            mbr[e + 12..e + 16].copy_from_slice(&(mib * 2048).to_le_bytes());
        }
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        f.write_all_at(&mbr, 0).unwrap();
        drop(f);
        let dev = must("losetup", &["-P", "-f", "--show", &img]);
        let l = Loop { dev, dir };
        for (n, start, sectors) in [("1", "2048", "65536"), ("2", "67584", "61440")] {
            if !Path::new(&l.part(n.parse().unwrap())).exists() {
                must("addpart", &[&l.dev, n, start, sectors]);
            }
        }
        let p1 = l.part(1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&p1).exists() {
            assert!(Instant::now() < deadline, "{p1} did not appear");
            std::thread::sleep(Duration::from_millis(10));
        }
        mkfs(&p1);
        l
    }

    /// The kernel's name (`loop3`).
    fn name(&self) -> &str {
        self.dev.strip_prefix("/dev/").unwrap()
    }

    /// The node of partition `n`.
    fn part(&self, n: u32) -> String {
        format!("{}p{n}", self.dev)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // The jail's mounts go with its namespace, a moment after its last process:
        // a busy device is detached by the kernel once free (autoclear).
        let deadline = Instant::now() + Duration::from_secs(5);
        while !quiet("losetup", &["-d", &self.dev]) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = &self.dir;
    }
}

/// The return value of a call that must succeed, as an array.
fn list(c: &mut RawConn, execute: &str) -> Vec<Value> {
    qga_ok(c, execute, Value::Null).as_array().unwrap().clone()
}

/// The discarded sectors of block device `name` in /proc/diskstats.
fn discarded_sectors(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/diskstats").unwrap();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&name)).then(|| f[16].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{name} not in /proc/diskstats"))
}

/// The size, used and available bytes of the filesystem at `path`, as `stat -f`
/// shows them (df's figures; df itself looks for the path in its own mount table,
/// which does not have the jail's).
fn df(path: &Path) -> (u64, u64, u64) {
    let out = must("stat", &["-f", "-c", "%S %b %f %a", path.to_str().unwrap()]);
    let n: Vec<u64> = out.split_whitespace().map(|s| s.parse().unwrap()).collect();
    let (frsize, blocks, free, avail) = (n[0], n[1], n[2], n[3]);
    (blocks * frsize, (blocks - free) * frsize, avail * frsize)
}

/// Deliberate difference: without udev's database (this machine), our disk entries
/// have the serial number sysfs gives where qemu-ga's have none. Removes those from
/// `ours` (an array of addresses, parallel to `theirs`); the first one removed.
fn without_sysfs_serials(ours: &mut Value, theirs: &Value) -> Option<String> {
    let mut removed = None;
    let theirs = theirs.as_array().unwrap();
    for (o, t) in ours.as_array_mut().unwrap().iter_mut().zip(theirs) {
        if t.get("serial").is_none() {
            if let Some(s) = o.as_object_mut().unwrap().remove("serial") {
                removed.get_or_insert(s.as_str().unwrap().to_string());
            }
        }
    }
    removed
}

/// The sysfs name of the device `MAJ:MIN`.
fn sysfs_name(majmin: &str) -> String {
    let real = std::fs::canonicalize(format!("/sys/dev/block/{majmin}")).unwrap();
    real.file_name().unwrap().to_str().unwrap().to_string()
}

#[test]
fn fsinfo_lists_the_block_device_mounts_as_findmnt_and_df_show_them() {
    let a = Loop::ext4();
    let disk = Loop::partitioned();
    let ro = Loop::ext4_read_only();
    let mut jail = Jail::new(&[
        Mnt::Dev(a.dev.clone(), "/mnt/a".into()),
        Mnt::Bind("/mnt/a", "/mnt/a-again"),
        Mnt::Tmpfs("/mnt/t"),
        Mnt::Dev(disk.part(1), "/mnt/p1".into()),
        Mnt::DevRo(ro.dev.clone(), "/mnt/ro"),
    ]);
    let mut c = jail.ours("/s/ours");
    let got = list(&mut c, "guest-get-fsinfo");

    // What the OS shows: every mount on a block device, the first of each device, in
    // reverse mount order.
    let mut seen = BTreeSet::new();
    let mut want: Vec<(String, String, String)> = jail
        .findmnt()
        .into_iter()
        .filter(|(_, _, _, majmin)| !majmin.starts_with("0:"))
        .filter(|(_, _, _, majmin)| seen.insert(majmin.clone()))
        .map(|(target, _, fstype, majmin)| (sysfs_name(&majmin), target, fstype))
        .collect();
    want.reverse();
    let summary: Vec<(String, String, String)> = got
        .iter()
        .map(|fs| {
            let s = |k: &str| fs[k].as_str().unwrap().to_string();
            (s("name"), s("mountpoint"), s("type"))
        })
        .collect();
    assert_eq!(summary, want);
    let p1 = format!("{}p1", disk.name());
    assert_eq!(
        summary,
        [
            (
                ro.name().to_string(),
                "/mnt/ro".to_string(),
                "ext4".to_string()
            ),
            (p1, "/mnt/p1".into(), "ext4".into()),
            (a.name().to_string(), "/mnt/a".into(), "ext4".into()),
        ]
    );
    for fs in &got {
        // Loop devices stand on no disk.
        assert_eq!(fs["disk"], json!([]));
        let (size, used, avail) = df(&jail.path(fs["mountpoint"].as_str().unwrap()));
        assert_eq!(fs["total-bytes-privileged"], size, "{fs}");
        assert_eq!(fs["used-bytes"], used, "{fs}");
        assert_eq!(fs["total-bytes"], used + avail, "{fs}");
    }
}

#[test]
fn fsinfo_matches_qemu_ga_in_the_same_jail() {
    let a = Loop::ext4();
    let disk = Loop::partitioned();
    let mut jail = Jail::new(&[
        Mnt::Dev(a.dev.clone(), "/mnt/a".into()),
        Mnt::Bind("/mnt/a", "/mnt/a-again"),
        Mnt::Tmpfs("/mnt/t"),
        Mnt::Dev(disk.part(1), "/mnt/with space".into()),
    ]);
    let mut theirs = jail.qemu_ga();
    let mut ours = jail.ours("/s/ours");
    let want = qga_ok(&mut theirs, "guest-get-fsinfo", Value::Null);
    let got = qga_ok(&mut ours, "guest-get-fsinfo", Value::Null);
    assert_eq!(got, want);
    assert_eq!(got.as_array().unwrap().len(), 2);
    assert_eq!(got[0]["mountpoint"], "/mnt/with space");
}

/// A round of trims in a fresh jail of identical filesystems.
struct Round {
    /// The replies to `guest-fstrim` without a minimum, with 1 MiB, and with a
    /// minimum larger than the filesystems.
    replies: Vec<Value>,
    /// Bytes the loop device under /mnt/a discarded during the first.
    discarded: u64,
}

/// `who` starts the agent of a round.
fn trim_round(who: fn(&mut Jail) -> RawConn) -> Round {
    let a = Loop::ext4();
    let ro = Loop::ext4_read_only();
    let mut jail = Jail::new(&[
        Mnt::Dev(a.dev.clone(), "/mnt/a".into()),
        Mnt::Bind("/mnt/a", "/mnt/a-again"),
        Mnt::Tmpfs("/mnt/t"),
        Mnt::Dev(ro.dev.clone(), "/mnt/ro".into()),
    ]);
    let mut c = who(&mut jail);
    let before = discarded_sectors(a.name());
    let first = jail.fstrim(&mut c, Value::Null);
    let after = discarded_sectors(a.name());
    let second = jail.fstrim(&mut c, json!({"minimum": 1 << 20}));
    let third = jail.fstrim(&mut c, json!({"minimum": 1_u64 << 50}));
    Round {
        replies: vec![first, second, third],
        discarded: (after - before) * 512,
    }
}

#[test]
fn fstrim_trims_own_mounts_as_qemu_ga_does() {
    let ours = trim_round(|j| j.ours("/s/ours"));
    // Results in reverse mount order; the bind mount and the tmpfs are not listed.
    let first = &ours.replies[0]["return"]["paths"];
    assert_eq!(first.as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first[1]["path"], "/mnt/a");
    // What the OS shows: the loop device discarded exactly what the reply says.
    let trimmed = first[1]["trimmed"].as_u64().unwrap();
    assert!(trimmed > 16 << 20, "{first}");
    assert_eq!(ours.discarded, trimmed);
    assert_eq!(first[1]["minimum"], 0);
    // A read-only device: nothing discarded, and no error.
    assert_eq!(
        first[0],
        json!({"path": "/mnt/ro", "trimmed": 0, "minimum": 0})
    );
    // Blocks trimmed once are not trimmed again; an impossible minimum is the
    // kernel's EINVAL, per filesystem.
    let second = &ours.replies[1]["return"]["paths"][1];
    assert_eq!(
        second,
        &json!({"path": "/mnt/a", "trimmed": 0, "minimum": 1 << 20})
    );
    assert_eq!(
        ours.replies[2]["return"]["paths"][1],
        json!({"path": "/mnt/a", "error": "failed to trim: Invalid argument"})
    );

    let theirs = trim_round(|j| j.qemu_ga());
    assert_eq!(theirs.discarded, trimmed);
    assert_eq!(ours.replies, theirs.replies);
}

#[test]
fn disks_match_sysfs_lsblk_and_qemu_ga() {
    let a = Loop::ext4();
    let disk = Loop::partitioned();
    let mut jail = Jail::new(&[Mnt::Dev(disk.part(1), "/mnt/p1".into())]);
    let mut theirs = jail.qemu_ga();
    let mut ours = jail.ours("/s/ours");
    let want = list(&mut theirs, "guest-get-disks");
    let got = list(&mut ours, "guest-get-disks");

    // Other sessions' loop devices come and go: compare this machine's disk and the
    // test's own.
    let mine = |d: &&Value| {
        let name = d["name"].as_str().unwrap();
        !name.starts_with("/dev/loop")
            || name.starts_with(&format!("{}p", disk.dev))
            || name == disk.dev
            || name == a.dev
    };
    let got: Vec<Value> = got.iter().filter(mine).cloned().collect();
    let mut want: Vec<Value> = want.iter().filter(mine).cloned().collect();
    // Deliberate: without udev's database, the serial number sysfs has.
    for (g, w) in got.iter().zip(want.iter_mut()) {
        if let (Some(serial), None) = (g["address"]["serial"].as_str(), w["address"].get("serial"))
        {
            let name = g["name"].as_str().unwrap().trim_start_matches("/dev/");
            let attr = std::fs::read_to_string(format!("/sys/block/{name}/serial")).unwrap();
            assert_eq!(serial, attr.trim());
            w["address"]["serial"] = json!(serial);
        }
    }
    assert_eq!(got, want);

    // What lsblk shows of the test's disks.
    let lsblk = must_json(
        "lsblk",
        &["-J", "-b", "-o", "NAME,SIZE,TYPE", &disk.dev, &a.dev],
    );
    let devices = lsblk["blockdevices"].as_array().unwrap();
    let by_name = |n: &str| got.iter().find(|d| d["name"] == n).cloned();
    for dev in devices {
        let name = format!("/dev/{}", dev["name"].as_str().unwrap());
        let d = by_name(&name).unwrap_or_else(|| panic!("{name} not listed"));
        assert_eq!(d["partition"], false);
        assert_eq!(d["dependencies"], json!([]));
        assert_eq!(d.get("address"), None, "a loop device has no address");
        let children = dev["children"].as_array().cloned().unwrap_or_default();
        for p in &children {
            let pname = format!("/dev/{}", p["name"].as_str().unwrap());
            let pd = by_name(&pname).unwrap_or_else(|| panic!("{pname} not listed"));
            assert_eq!(pd["partition"], true);
            assert_eq!(pd["dependencies"], json!([name]));
        }
        let expected = if name == disk.dev { 2 } else { 0 };
        assert_eq!(children.len(), expected, "{dev}");
    }
    // The machine's own disks are on a bus: each has an address and its node.
    for d in got.iter().filter(|d| d["partition"] == false) {
        let name = d["name"].as_str().unwrap();
        let real = std::fs::canonicalize(format!("/sys/block/{}", &name[5..])).unwrap();
        let virtual_ = real.to_str().unwrap().contains("/devices/virtual/");
        assert_eq!(d.get("address").is_none(), virtual_, "{d}");
        if !virtual_ {
            assert_eq!(d["address"]["dev"], name);
        }
    }
}

#[test]
fn the_machines_disk_has_the_address_sysfs_gives_as_qemu_ga_says() {
    // A read-only bind of a directory of the machine's own filesystem: its disk
    // (virtio here) with its PCI address. Only listings in this jail, never a trim.
    let host_dir = tempfile::tempdir().unwrap();
    let mut jail = Jail::new(&[Mnt::HostBind(
        host_dir.path().to_str().unwrap().to_string(),
        "/mnt/host",
    )]);
    let mut theirs = jail.qemu_ga();
    let mut ours = jail.ours("/s/ours");
    let want = list(&mut theirs, "guest-get-fsinfo");
    let mut got = list(&mut ours, "guest-get-fsinfo");
    assert_eq!(got.len(), 1);
    let serial = without_sysfs_serials(&mut got[0]["disk"], &want[0]["disk"]);
    assert_eq!(shape(&json!(got)), shape(&json!(want)));
    let (g, w) = (&got[0], &want[0]);
    // The filesystem is the machine's, in use: its use changes between the calls.
    for k in [
        "name",
        "mountpoint",
        "type",
        "total-bytes-privileged",
        "disk",
    ] {
        assert_eq!(g[k], w[k], "{k}");
    }
    if let Some(serial) = serial {
        let attr =
            std::fs::read_to_string(format!("/sys/block/{}/serial", g["name"].as_str().unwrap()));
        assert_eq!(Some(serial), attr.ok().map(|s| s.trim().to_string()));
    }

    // What sysfs shows: the device of the mount, and its controller's PCI address.
    let majmin = jail
        .findmnt()
        .into_iter()
        .find(|m| m.0 == "/mnt/host")
        .unwrap()
        .3;
    let real = std::fs::canonicalize(format!("/sys/dev/block/{majmin}")).unwrap();
    let real = real.to_str().unwrap();
    assert_eq!(g["name"], real.rsplit('/').next().unwrap());
    if let Some(pci) = real
        .split('/')
        .find(|c| c.len() == 12 && c.as_bytes()[4] == b':' && c.as_bytes()[10] == b'.')
    {
        let hex = |s: &str| i64::from_str_radix(s, 16).unwrap();
        let d = &g["disk"][0]["pci-controller"];
        assert_eq!(
            (d["domain"].as_i64(), d["bus"].as_i64(), d["slot"].as_i64()),
            (
                Some(hex(&pci[0..4])),
                Some(hex(&pci[5..7])),
                Some(hex(&pci[8..10]))
            )
        );
        assert_eq!(d["function"].as_i64(), Some(hex(&pci[11..12])));
    }
    // The tests send no trim in such a jail.
    jail.check_trim().unwrap_err();
}

#[test]
fn diskstats_match_proc_and_qemu_ga() {
    let a = Loop::ext4();
    let theirs_agent = QemuGa::start(&[], &[]);
    let mut theirs = theirs_agent.raw();
    let ours_agent = phoenix_testkit::Launch::new(AGENT).start(&["--dialect", "qga"]);
    let mut ours = ours_agent.raw();
    let text = std::fs::read_to_string("/proc/diskstats").unwrap();
    let got = list(&mut ours, "guest-get-diskstats");
    let want = list(&mut theirs, "guest-get-diskstats");
    assert_eq!(shape(&json!(got)), shape(&json!(want)));
    // The test's idle loop device: the same counters in /proc, ours and qemu-ga's.
    let find = |all: &[Value]| {
        all.iter()
            .find(|d| d["name"] == a.name())
            .cloned()
            .unwrap_or_else(|| panic!("{} not listed", a.name()))
    };
    let line: Vec<u64> = text
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[2] == a.name()).then(|| {
                f.iter()
                    .enumerate()
                    .filter(|&(i, _)| i != 2)
                    .map(|(_, s)| s.parse().unwrap())
                    .collect()
            })
        })
        .unwrap();
    let mine = find(&got);
    assert_eq!(find(&want), mine);
    assert_eq!(
        (mine["major"].as_u64(), mine["minor"].as_u64()),
        (Some(line[0]), Some(line[1]))
    );
    let s = &mine["stats"];
    let keys = [
        "read-ios",
        "read-merges",
        "read-sectors",
        "read-ticks",
        "write-ios",
        "write-merges",
        "write-sectors",
        "write-ticks",
        "ios-pgr",
        "total-ticks",
        "weight-ticks",
        "discard-ios",
        "discard-merges",
        "discard-sectors",
        "discard-ticks",
        "flush-ios",
        "flush-ticks",
    ];
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(s[k].as_u64(), line.get(i + 2).copied(), "{k}");
    }
    // Every device of /proc/diskstats is listed (those present in both readings).
    let names = |all: &[Value]| -> BTreeSet<String> {
        all.iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect()
    };
    let proc_names: BTreeSet<String> = text
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
        .collect();
    let again: BTreeSet<String> = std::fs::read_to_string("/proc/diskstats")
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
        .collect();
    let stable: BTreeSet<String> = proc_names.intersection(&again).cloned().collect();
    assert!(stable.is_subset(&names(&got)), "{stable:?}");
    assert!(stable.is_subset(&names(&want)));
}

#[test]
fn listings_answer_while_frozen_and_the_trim_does_not() {
    let a = Loop::ext4();
    let mut jail = Jail::new(&[Mnt::Dev(a.dev.clone(), "/mnt/a".into())]);
    // Our agent finds the marker of a freeze (of a path that is not there, so that
    // nothing is frozen in fact): it starts frozen.
    std::fs::create_dir_all(jail.path("/s/ours")).unwrap();
    std::fs::write(jail.path("/s/ours/frozen"), "/s/not-there\0").unwrap();
    let mut ours = jail.ours("/s/ours");
    let (class, desc) = qga_err(&qga_call(&mut ours, "guest-fstrim", Value::Null));
    assert_eq!(class, "CommandNotFound");
    assert!(
        desc.starts_with("Command guest-fstrim has been disabled: "),
        "{desc}"
    );
    let fs = list(&mut ours, "guest-get-fsinfo");
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0]["mountpoint"], "/mnt/a");
    assert!(list(&mut ours, "guest-get-disks")
        .iter()
        .any(|d| d["name"] == a.dev));
    assert!(!list(&mut ours, "guest-get-diskstats").is_empty());

    // qemu-ga, frozen for real (the test's own filesystem, named), refuses them.
    let mut theirs = jail.qemu_ga();
    jail.thaw.push("/mnt/a");
    let n = qga_ok(
        &mut theirs,
        "guest-fsfreeze-freeze-list",
        json!({"mountpoints": ["/mnt/a"]}),
    );
    assert_eq!(n, 1);
    // (qemu-ga 10 words it "... has been disabled: the command is not allowed";
    // older ones "...: the agent is in frozen state".)
    for cmd in [
        "guest-get-fsinfo",
        "guest-get-disks",
        "guest-get-diskstats",
        "guest-fstrim",
    ] {
        let (class, desc) = qga_err(&qga_call(&mut theirs, cmd, Value::Null));
        assert_eq!(class, "CommandNotFound");
        assert!(
            desc.starts_with(&format!("Command {cmd} has been disabled: ")),
            "{desc}"
        );
    }
    assert_eq!(qga_ok(&mut theirs, "guest-fsfreeze-thaw", Value::Null), 1);
}

#[test]
fn bad_arguments_are_refused_as_qemu_ga_refuses_them() {
    // In a jail, so that a request qemu-ga took after all could trim nothing but the
    // test's own filesystem.
    let a = Loop::ext4();
    let mut jail = Jail::new(&[Mnt::Dev(a.dev.clone(), "/mnt/a".into())]);
    jail.check_trim().unwrap();
    let mut theirs = jail.qemu_ga();
    let mut ours = jail.ours("/s/ours");
    for (cmd, args) in [
        ("guest-fstrim", json!({"minimum": "x"})),
        ("guest-fstrim", json!({"minimum": 1.5})),
        ("guest-fstrim", json!({"minimum": 1, "extra": 2})),
        ("guest-get-fsinfo", json!({"a": 1})),
        ("guest-get-disks", json!({"a": 1})),
        ("guest-get-diskstats", json!({"a": 1})),
    ] {
        let want = qga_err(&qga_call(&mut theirs, cmd, args.clone()));
        let got = qga_err(&qga_call(&mut ours, cmd, args.clone()));
        assert_eq!(got, want, "{cmd} {args}");
    }
    // Deliberate: a negative minimum is refused (qemu-ga passes it to FITRIM as a
    // huge number, and every filesystem reports EINVAL).
    let (class, desc) = qga_err(&qga_call(&mut ours, "guest-fstrim", json!({"minimum": -1})));
    assert_eq!(class, "GenericError");
    assert!(desc.contains("'minimum'"), "{desc}");
    let theirs_reply = jail.fstrim(&mut theirs, json!({"minimum": -1}));
    assert_eq!(
        theirs_reply["return"]["paths"],
        json!([{"path": "/mnt/a", "error": "failed to trim: Invalid argument"}])
    );
}

/// A sysfs tree laid out as the kernel lays it out, with relative links (it is copied
/// into a jail), and udev's database beside it.
struct FakeSys {
    dir: tempfile::TempDir,
}

impl FakeSys {
    fn new() -> Self {
        let f = FakeSys {
            dir: tempfile::tempdir().unwrap(),
        };
        for d in ["sys/block", "sys/dev/block", "sys/class/block", "udev/data"] {
            std::fs::create_dir_all(f.dir.path().join(d)).unwrap();
        }
        f
    }

    fn sys(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    fn udev(&self) -> PathBuf {
        self.dir.path().join("udev")
    }

    fn write(&self, rel: &str, content: &str) {
        let path = self.sys().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// A symlink at `at` to `to` (both under the root), relative as sysfs's are.
    fn link(&self, at: &str, to: &str) {
        let depth = at.matches('/').count();
        let target = format!("{}{to}", "../".repeat(depth));
        let at = self.sys().join(at);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, at).unwrap();
    }

    /// A block device at `devpath` with numbers `numbers`; `/sys/dev/block/ALIAS`
    /// links to it (the numbers of the loop device mounted in its stead, if any).
    fn device(&self, devpath: &str, numbers: &str, devtype: &str, alias: Option<&str>) {
        let name = devpath.rsplit('/').next().unwrap();
        let (major, minor) = numbers.split_once(':').unwrap();
        self.write(&format!("{devpath}/dev"), &format!("{numbers}\n"));
        self.write(&format!("{devpath}/size"), "2048\n");
        self.write(
            &format!("{devpath}/uevent"),
            &format!("MAJOR={major}\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE={devtype}\n"),
        );
        std::fs::create_dir_all(self.sys().join(devpath).join("slaves")).unwrap();
        std::fs::create_dir_all(self.sys().join(devpath).join("holders")).unwrap();
        self.link(&format!("{devpath}/subsystem"), "class/block");
        self.link(&format!("dev/block/{}", alias.unwrap_or(numbers)), devpath);
    }

    fn disk(&self, devpath: &str, numbers: &str, alias: Option<&str>) {
        self.device(devpath, numbers, "disk", alias);
        let name = devpath.rsplit('/').next().unwrap();
        self.link(&format!("block/{name}"), devpath);
    }

    fn part(&self, disk: &str, name: &str, numbers: &str, alias: Option<&str>) {
        let devpath = format!("{disk}/{name}");
        self.device(&devpath, numbers, "partition", alias);
        self.write(&format!("{devpath}/partition"), "1\n");
    }

    fn driver(&self, pci: &str, driver: &str) {
        self.write(&format!("bus/pci/drivers/{driver}/bind"), "");
        self.link(
            &format!("{pci}/driver"),
            &format!("bus/pci/drivers/{driver}"),
        );
    }

    fn slave(&self, holder: &str, slave: &str) {
        let name = slave.rsplit('/').next().unwrap();
        self.link(&format!("{holder}/slaves/{name}"), slave);
    }

    /// udev's entry for device `numbers`: `ID_SERIAL` if given.
    fn udev_entry(&self, numbers: &str, serial: Option<&str>) {
        let mut text = String::from("E:ID_BUS=test\n");
        if let Some(s) = serial {
            text.push_str(&format!("E:ID_SERIAL={s}\n"));
        }
        std::fs::write(self.udev().join(format!("data/b{numbers}")), text).unwrap();
    }
}

#[test]
fn addresses_on_every_bus_as_qemu_ga_reads_the_same_sysfs() {
    // One small filesystem per device of interest; in the jail, sysfs is a fake one in
    // which each loop device's numbers lead to a disk on another bus, so that both
    // agents' fsinfo walk the same paths qemu-ga's code was written for.
    const PCI: &str = "devices/pci0000:00";
    let vda = format!("{PCI}/0000:00:02.0/virtio1/block/vda");
    let scsi_lun1 = format!("{PCI}/0000:00:05.0/virtio2/host2/target2:0:0/2:0:0:1/block/sda");
    let scsi_t3 = format!("{PCI}/0000:00:05.0/virtio2/host2/target2:0:3/2:0:3:0/block/sdf");
    let sata = format!("{PCI}/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/sdb");
    let ide = format!("{PCI}/0000:00:01.1/ata2/host1/target1:0:1/1:0:1:0/block/sdc");
    let nvme = format!("{PCI}/0000:00:04.0/nvme/nvme0/nvme0n1");
    let usb = format!("{PCI}/0000:00:0d.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdd");
    let bridged = format!("{PCI}/0000:00:1c.0/0000:01:00.0/virtio3/block/vdb");
    let lsi = format!("{PCI}/0000:00:07.0/host0/target0:0:2/0:0:2:0/block/sde");
    let raid_card = format!("{PCI}/0000:00:08.0/host1/target1:0:0/1:0:0:0/block/sdg");
    let ccw = "devices/css0/0.0.0000/0.0.0002/virtio0/block/vde".to_string();
    let mmio = "devices/platform/a003e00.virtio_mmio/virtio5/block/vdf".to_string();
    let dm0 = "devices/virtual/block/dm-0".to_string();
    let dm1 = "devices/virtual/block/dm-1".to_string();
    let md0 = "devices/virtual/block/md0".to_string();

    // What each mount stands for: (the device, its own numbers, a partition of it).
    let targets: Vec<(&str, String)> = vec![
        ("vda1", format!("{vda}/vda1")),
        ("sda", scsi_lun1.clone()),
        ("sdf", scsi_t3.clone()),
        ("sdb1", format!("{sata}/sdb1")),
        ("sdc", ide.clone()),
        ("nvme0n1p1", format!("{nvme}/nvme0n1p1")),
        ("sdd", usb.clone()),
        ("vdb", bridged.clone()),
        ("sde", lsi.clone()),
        ("sdg", raid_card.clone()),
        ("dm-1", dm1.clone()),
        ("md0", md0.clone()),
        ("vde", ccw.clone()),
        ("vdf", mmio.clone()),
    ];
    let loops: Vec<Loop> = targets
        .iter()
        .map(|_| {
            let (dir, img) = Loop::image(2);
            mkfs(&img);
            let dev = must("losetup", &["-f", "--show", &img]);
            Loop { dev, dir }
        })
        .collect();
    let numbers = |l: &Loop| must("cat", &[&format!("/sys/block/{}/dev", l.name())]);
    let alias_of = |name: &str| -> Option<String> {
        targets
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| numbers(&loops[i]))
    };

    let f = FakeSys::new();
    for (pci, driver) in [
        ("0000:00:02.0", "virtio-pci"),
        ("0000:00:05.0", "virtio-pci"),
        ("0000:00:1f.2", "ahci"),
        ("0000:00:01.1", "ata_piix"),
        ("0000:00:04.0", "nvme"),
        ("0000:00:0d.0", "xhci_hcd"),
        ("0000:00:1c.0", "pcieport"),
        ("0000:00:1c.0/0000:01:00.0", "virtio-pci"),
        ("0000:00:07.0", "sym53c8xx"),
        ("0000:00:08.0", "megaraid_sas"),
    ] {
        f.driver(&format!("{PCI}/{pci}"), driver);
    }
    for n in 1..=6 {
        std::fs::create_dir_all(f.sys().join(format!("{PCI}/0000:00:1f.2/ata{n}"))).unwrap();
    }
    std::fs::create_dir_all(f.sys().join(format!("{PCI}/0000:00:01.1/ata1"))).unwrap();
    let a = |n: &str| alias_of(n);
    f.disk(&vda, "254:0", None);
    f.write(&format!("{vda}/serial"), "not-udevs\n");
    f.part(&vda, "vda1", "254:1", a("vda1").as_deref());
    f.part(&vda, "vda2", "254:2", None);
    f.disk(&scsi_lun1, "8:0", a("sda").as_deref());
    f.disk(&scsi_t3, "8:80", a("sdf").as_deref());
    f.disk(&sata, "8:16", None);
    f.part(&sata, "sdb1", "8:17", a("sdb1").as_deref());
    f.disk(&ide, "8:32", a("sdc").as_deref());
    f.disk(&nvme, "259:0", None);
    f.part(&nvme, "nvme0n1p1", "259:1", a("nvme0n1p1").as_deref());
    f.disk(&usb, "8:48", a("sdd").as_deref());
    f.disk(&bridged, "254:16", a("vdb").as_deref());
    f.disk(&lsi, "8:64", a("sde").as_deref());
    f.disk(&raid_card, "8:96", a("sdg").as_deref());
    f.disk(&ccw, "254:32", a("vde").as_deref());
    f.disk(&mmio, "254:48", a("vdf").as_deref());
    f.disk(&dm0, "253:0", None);
    f.write(&format!("{dm0}/dm/name"), "vg-root\n");
    f.slave(&dm0, &format!("{vda}/vda2"));
    f.slave(&dm0, &format!("{sata}/sdb1"));
    f.disk(&dm1, "253:1", a("dm-1").as_deref());
    f.write(&format!("{dm1}/dm/name"), "crypt\n");
    f.slave(&dm1, &dm0);
    f.disk(&md0, "9:0", a("md0").as_deref());
    f.slave(&md0, &bridged);
    f.slave(&md0, &format!("{nvme}/nvme0n1p1"));
    // udev's database: serial numbers for some, an entry without one for vda (whose
    // sysfs attribute is then not read).
    for (numbers, serial) in [
        ("254:0", None),
        ("254:1", None),
        ("8:0", Some("0QEMU_QEMU_HARDDISK_drive-scsi0-0-0-1")),
        ("8:17", Some("QEMU_HARDDISK_QM00005")),
        ("259:1", Some("QEMU_NVMe_Ctrl_deadbeef")),
        ("8:48", Some("QEMU_QEMU_HARDDISK_1-0000:00:0d.0-1")),
    ] {
        f.udev_entry(numbers, serial);
    }

    let mounts: Vec<Mnt> = loops
        .iter()
        .zip(&targets)
        .map(|(l, (name, _))| Mnt::Dev(l.dev.clone(), format!("/mnt/{name}")))
        .collect();
    let sys = f.sys();
    let udev = f.udev();
    let mut jail = Jail::with_env(&mounts, &[("FAKE_SYS", &sys), ("FAKE_UDEV", &udev)]);
    let mut theirs = jail.qemu_ga();
    let mut ours = jail.ours("/s/ours");

    let want = list(&mut theirs, "guest-get-fsinfo");
    let got = list(&mut ours, "guest-get-fsinfo");
    assert_eq!(want.len(), targets.len());
    // qemu-ga asks libudev for a disk's node and serial number, and libudev knows
    // nothing of a sysfs that is not the kernel's: qemu-ga has neither here, and keeps
    // a disk only when it knows its bus. (Both are compared on the real sysfs above.)
    // Ours, without them, and without the disks of no known bus:
    let mut bare = got.clone();
    for fs in &mut bare {
        let disks = fs["disk"].as_array_mut().unwrap();
        for d in disks.iter_mut() {
            let d = d.as_object_mut().unwrap();
            d.remove("dev");
            d.remove("serial");
        }
        disks.retain(|d| d["bus-type"] != "unknown" || d.get("ccw-address").is_some());
    }
    // Deliberate: virtio-scsi with its channel and target, where qemu-ga reports 0.
    let sdf = bare.iter_mut().find(|fs| fs["name"] == "sdf").unwrap();
    assert_eq!(
        (
            &sdf["disk"][0]["bus-type"],
            &sdf["disk"][0]["target"],
            &sdf["disk"][0]["unit"]
        ),
        (&json!("scsi"), &json!(3), &json!(0))
    );
    sdf["disk"][0]["target"] = json!(0);
    // The same filesystems in the same order, the same disks under each with the same
    // addresses, the same sizes (the loop devices' own).
    assert_eq!(bare, want);

    // What each bus gives (pci-controller, bus-type, bus, target, unit).
    let by_name = |name: &str| {
        got.iter()
            .find(|fs| fs["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed"))["disk"]
            .clone()
    };
    let addr = |d: &Value| {
        let p = &d["pci-controller"];
        (
            [&p["domain"], &p["bus"], &p["slot"], &p["function"]].map(|v| v.as_i64().unwrap()),
            d["bus-type"].as_str().unwrap().to_string(),
            [&d["bus"], &d["target"], &d["unit"]].map(|v| v.as_i64().unwrap()),
        )
    };
    let one = |name: &str| addr(&by_name(name)[0]);
    let s = |x: &str| x.to_string();
    assert_eq!(one("vda1"), ([0, 0, 2, 0], s("virtio"), [0, 0, 0]));
    assert_eq!(one("sda"), ([0, 0, 5, 0], s("scsi"), [0, 0, 1]));
    assert_eq!(one("sdf"), ([0, 0, 5, 0], s("scsi"), [0, 3, 0]));
    assert_eq!(one("sdb1"), ([0, 0, 0x1f, 2], s("sata"), [0, 0, 2]));
    assert_eq!(one("sdc"), ([0, 0, 1, 1], s("ide"), [1, 0, 1]));
    assert_eq!(one("nvme0n1p1"), ([0, 0, 4, 0], s("nvme"), [0, 0, 0]));
    assert_eq!(one("sdd"), ([0, 0, 0xd, 0], s("usb"), [0, 0, 0]));
    assert_eq!(one("vdb"), ([0, 1, 0, 0], s("virtio"), [0, 0, 0]));
    assert_eq!(one("sde"), ([0, 0, 7, 0], s("scsi"), [0, 0, 2]));
    assert_eq!(one("sdg"), ([-1, -1, -1, -1], s("unknown"), [0, 0, 0]));
    assert_eq!(one("vde"), ([-1, -1, -1, -1], s("virtio"), [0, 0, 0]));
    assert_eq!(
        by_name("vde")[0]["ccw-address"],
        json!({"cssid": 0, "ssid": 0, "subchno": 0, "devno": 2})
    );
    assert_eq!(one("vdf"), ([-1, -1, -1, -1], s("virtio"), [0, 0, 0]));
    let devs = |name: &str| -> Vec<String> {
        by_name(name)
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["dev"].as_str().unwrap().to_string())
            .collect()
    };
    // Stacked devices down to the partitions, in qemu-ga's (reversed) order.
    let mut dm = devs("dm-1");
    let mut md = devs("md0");
    dm.sort();
    md.sort();
    assert_eq!(dm, [s("/dev/sdb1"), s("/dev/vda2")]);
    assert_eq!(md, [s("/dev/nvme0n1p1"), s("/dev/vdb")]);
    assert_eq!(devs("sdg"), [s("/dev/sdg")]);
    // udev's serial numbers where its database has them, none where its entry has
    // none (vda's sysfs attribute is then not read).
    assert_eq!(
        by_name("sda")[0]["serial"],
        "0QEMU_QEMU_HARDDISK_drive-scsi0-0-0-1"
    );
    assert_eq!(by_name("nvme0n1p1")[0]["serial"], "QEMU_NVMe_Ctrl_deadbeef");
    assert_eq!(by_name("vda1")[0].get("serial"), None);
    assert_eq!(by_name("sdc")[0].get("serial"), None);
}
