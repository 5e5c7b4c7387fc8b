//! The storage operations on fixture trees laid out as the kernel lays out sysfs:
//! virtio-blk, virtio-scsi, SATA, IDE, NVMe, USB, a PCI bridge, device-mapper on
//! partitions, md RAID, loop devices, s390x channel I/O and virtio-mmio.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use phoenix_proto::types::storage::qga::{
    GuestCcwAddress, GuestDiskAddress, GuestDiskBusType as Bus, GuestDiskInfo, GuestDiskSmart,
    GuestFilesystemInfo, GuestNvmeSmart, GuestPciAddress,
};

use super::sysfs::Sysfs;
use super::{inventory, statfs, statvfs, Sources, Storage};

/// A sysfs tree (and udev database) in a temporary directory.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        let fake = Fake {
            dir: tempfile::tempdir().unwrap(),
        };
        for d in ["sys/block", "sys/dev/block", "sys/bus/pci/drivers", "run/udev/data"] {
            std::fs::create_dir_all(fake.dir.path().join(d)).unwrap();
        }
        fake
    }

    fn sys(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    fn sources(&self, mountinfo: &str) -> Sources {
        let path = self.dir.path().join("mountinfo");
        std::fs::write(&path, mountinfo).unwrap();
        Sources {
            sys: self.sys(),
            udev_data: self.dir.path().join("run/udev/data"),
            mountinfo: path,
            diskstats: "/proc/diskstats".into(),
            statfs_timeout: Duration::from_secs(30),
        }
    }

    fn write(&self, devpath: &str, name: &str, content: &str) {
        let file = self.sys().join(devpath).join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }

    fn link(&self, at: &str, to: &str) {
        let at = self.sys().join(at);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(self.sys().join(to), at).unwrap();
    }

    /// A block device (disk or partition) at `devpath`, with its uevent, numbers,
    /// size and /sys/dev/block link.
    fn device(&self, devpath: &str, numbers: &str, devtype: &str, size: u64) {
        let name = devpath.rsplit('/').next().unwrap();
        let (major, minor) = numbers.split_once(':').unwrap();
        self.write(devpath, "dev", &format!("{numbers}\n"));
        self.write(devpath, "size", &format!("{size}\n"));
        self.write(
            devpath,
            "uevent",
            &format!("MAJOR={major}\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE={devtype}\n"),
        );
        std::fs::create_dir_all(self.sys().join(devpath).join("slaves")).unwrap();
        std::fs::create_dir_all(self.sys().join(devpath).join("holders")).unwrap();
        self.link(&format!("dev/block/{numbers}"), devpath);
    }

    /// A disk: a device with a /sys/block link.
    fn disk(&self, devpath: &str, numbers: &str, size: u64) {
        self.device(devpath, numbers, "disk", size);
        let name = devpath.rsplit('/').next().unwrap();
        self.link(&format!("block/{name}"), devpath);
    }

    /// A partition `name` of the disk at `disk`.
    fn part(&self, disk: &str, name: &str, numbers: &str) {
        let devpath = format!("{disk}/{name}");
        self.device(&devpath, numbers, "partition", 2048);
        self.write(&devpath, "partition", "1\n");
    }

    /// The PCI device at `devpath` is bound to `driver`.
    fn driver(&self, devpath: &str, driver: &str) {
        std::fs::create_dir_all(self.sys().join(devpath)).unwrap();
        let drv = format!("bus/pci/drivers/{driver}");
        std::fs::create_dir_all(self.sys().join(&drv)).unwrap();
        self.link(&format!("{devpath}/driver"), &drv);
    }

    /// The device at `holder` stands on the one at `slave`.
    fn slave(&self, holder: &str, slave: &str) {
        let name = slave.rsplit('/').next().unwrap();
        self.link(&format!("{holder}/slaves/{name}"), slave);
    }

    fn sysfs(&self) -> Sysfs {
        Sysfs::new(&self.sys(), &self.dir.path().join("run/udev/data"))
    }
}

const VIRTIO: &str = "devices/pci0000:00/0000:00:02.0/virtio1/block/vda";
const SCSI: &str = "devices/pci0000:00/0000:00:05.0/virtio2/host2/target2:0:3/2:0:3:1/block/sda";
const SATA: &str =
    "devices/pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/sdb";
const IDE: &str = "devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:1/1:0:1:0/block/sdc";
const NVME: &str = "devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1";
const USB: &str =
    "devices/pci0000:00/0000:00:0d.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdd";
const BRIDGED: &str = "devices/pci0000:00/0000:00:1c.0/0000:01:00.0/virtio3/block/vdb";
const RAID_CARD: &str =
    "devices/pci0000:00/0000:00:07.0/host0/target0:2:0/0:2:0:0/block/sde";
const CCW: &str = "devices/css0/0.0.0000/0.0.0002/virtio0/block/vde";
const MMIO: &str = "devices/platform/a003e00.virtio_mmio/virtio5/block/vdf";
const DM0: &str = "devices/virtual/block/dm-0";
const DM1: &str = "devices/virtual/block/dm-1";
const MD0: &str = "devices/virtual/block/md0";
const LOOP0: &str = "devices/virtual/block/loop0";
const LOOP1: &str = "devices/virtual/block/loop1";

/// A guest with one disk of every kind.
fn guest() -> Fake {
    let f = Fake::new();
    f.driver("devices/pci0000:00/0000:00:02.0", "virtio-pci");
    f.disk(VIRTIO, "254:0", 20_971_520);
    f.write(VIRTIO, "serial", "disk-serial-1\n");
    f.part(VIRTIO, "vda1", "254:1");
    f.part(VIRTIO, "vda2", "254:2");
    std::fs::create_dir_all(f.sys().join(VIRTIO).join("mq/0")).unwrap();

    f.driver("devices/pci0000:00/0000:00:05.0", "virtio-pci");
    f.disk(SCSI, "8:0", 2048);
    std::fs::write(
        f.dir.path().join("run/udev/data/b8:0"),
        "S:disk/by-id/scsi-0QEMU\nE:ID_BUS=scsi\nE:ID_SERIAL=0QEMU_QEMU_HARDDISK_drive-scsi0-0-3-1\n",
    )
    .unwrap();

    f.driver("devices/pci0000:00/0000:00:1f.2", "ahci");
    for n in 1..=6 {
        std::fs::create_dir_all(f.sys().join(format!("devices/pci0000:00/0000:00:1f.2/ata{n}")))
            .unwrap();
    }
    f.disk(SATA, "8:16", 2048);
    f.part(SATA, "sdb1", "8:17");

    f.driver("devices/pci0000:00/0000:00:01.1", "ata_piix");
    std::fs::create_dir_all(f.sys().join("devices/pci0000:00/0000:00:01.1/ata1")).unwrap();
    f.disk(IDE, "8:32", 2048);

    f.driver("devices/pci0000:00/0000:00:04.0", "nvme");
    f.write("devices/pci0000:00/0000:00:04.0/nvme/nvme0", "serial", "nvme-serial   \n");
    f.disk(NVME, "259:0", 2048);
    f.part(NVME, "nvme0n1p1", "259:1");

    f.driver("devices/pci0000:00/0000:00:0d.0", "xhci_hcd");
    f.disk(USB, "8:48", 2048);

    f.driver("devices/pci0000:00/0000:00:1c.0", "pcieport");
    f.driver("devices/pci0000:00/0000:00:1c.0/0000:01:00.0", "virtio-pci");
    f.disk(BRIDGED, "254:16", 2048);

    f.driver("devices/pci0000:00/0000:00:07.0", "megaraid_sas");
    f.disk(RAID_CARD, "8:64", 2048);

    f.disk(CCW, "254:32", 2048);
    f.disk(MMIO, "254:48", 2048);

    // LVM on vda2 and sdb1, and dm-crypt on that.
    f.disk(DM0, "253:0", 4096);
    f.write(DM0, "dm/name", "vg-root\n");
    f.slave(DM0, &format!("{VIRTIO}/vda2"));
    f.slave(DM0, &format!("{SATA}/sdb1"));
    f.disk(DM1, "253:1", 4096);
    f.write(DM1, "dm/name", "crypt\n");
    f.slave(DM1, DM0);
    // RAID 1 over vdb and the NVMe partition.
    f.disk(MD0, "9:0", 4096);
    f.slave(MD0, BRIDGED);
    f.slave(MD0, &format!("{NVME}/nvme0n1p1"));
    f.disk(LOOP0, "7:0", 65536);
    f.disk(LOOP1, "7:1", 0);
    f
}

fn pci(domain: i64, bus: i64, slot: i64, function: i64) -> GuestPciAddress {
    GuestPciAddress {
        domain,
        bus,
        slot,
        function,
    }
}

fn address(pci_controller: GuestPciAddress, bus_type: Bus, btu: [i64; 3], dev: &str) -> GuestDiskAddress {
    GuestDiskAddress {
        pci_controller,
        bus_type,
        bus: btu[0],
        target: btu[1],
        unit: btu[2],
        serial: None,
        dev: Some(dev.into()),
        ccw_address: None,
    }
}

fn storage() -> Storage {
    Storage {
        prober: statfs::Prober::with_probe(statvfs),
        gate: Arc::default(),
    }
}

fn fsinfo(f: &Fake, mountinfo: &str) -> Vec<GuestFilesystemInfo> {
    storage().fsinfo_from(&f.sources(mountinfo)).unwrap()
}

/// The one filesystem of a mount table of one line, on device `numbers`.
fn one(f: &Fake, numbers: &str) -> GuestFilesystemInfo {
    let line = format!("30 1 {numbers} / /mnt/x rw - ext4 /dev/x rw\n");
    let mut all = fsinfo(f, &line);
    assert_eq!(all.len(), 1);
    all.remove(0)
}

#[test]
fn virtio_blk_partition() {
    let f = guest();
    let fs = one(&f, "254:1");
    assert_eq!(fs.name, "vda1");
    let mut want = address(pci(0, 0, 2, 0), Bus::Virtio, [0, 0, 0], "/dev/vda1");
    want.serial = Some("disk-serial-1".into());
    assert_eq!(fs.disk, [want]);
}

#[test]
fn virtio_scsi_has_channel_target_and_lun_and_udevs_serial() {
    let f = guest();
    let fs = one(&f, "8:0");
    assert_eq!(fs.name, "sda");
    let mut want = address(pci(0, 0, 5, 0), Bus::Scsi, [0, 3, 1], "/dev/sda");
    want.serial = Some("0QEMU_QEMU_HARDDISK_drive-scsi0-0-3-1".into());
    assert_eq!(fs.disk, [want]);
}

#[test]
fn sata_ide_nvme_usb_bridges_and_unknown_controllers() {
    let f = guest();
    // ata3 is the third of the AHCI controller's six ports.
    assert_eq!(
        one(&f, "8:16").disk,
        [address(pci(0, 0, 0x1f, 2), Bus::Sata, [0, 0, 2], "/dev/sdb")]
    );
    // ata2 is the second IDE channel; target 1 the slave unit.
    assert_eq!(
        one(&f, "8:32").disk,
        [address(pci(0, 0, 1, 1), Bus::Ide, [1, 0, 1], "/dev/sdc")]
    );
    let mut nvme = address(pci(0, 0, 4, 0), Bus::Nvme, [0, 0, 0], "/dev/nvme0n1p1");
    nvme.serial = Some("nvme-serial".into());
    assert_eq!(one(&f, "259:1").disk, [nvme]);
    assert_eq!(
        one(&f, "8:48").disk,
        [address(pci(0, 0, 0xd, 0), Bus::Usb, [0, 0, 0], "/dev/sdd")]
    );
    // Behind a PCIe root port: the virtio device's own address.
    assert_eq!(
        one(&f, "254:16").disk,
        [address(pci(0, 1, 0, 0), Bus::Virtio, [0, 0, 0], "/dev/vdb")]
    );
    // A controller qemu-ga does not know: listed with its node only.
    assert_eq!(
        one(&f, "8:64").disk,
        [address(GuestPciAddress::INVALID, Bus::Unknown, [0, 0, 0], "/dev/sde")]
    );
}

#[test]
fn channel_io_and_virtio_mmio() {
    let f = guest();
    let mut ccw = address(GuestPciAddress::INVALID, Bus::Virtio, [0, 0, 0], "/dev/vde");
    ccw.ccw_address = Some(GuestCcwAddress {
        cssid: 0,
        ssid: 0,
        subchno: 0,
        devno: 2,
    });
    assert_eq!(one(&f, "254:32").disk, [ccw]);
    assert_eq!(
        one(&f, "254:48").disk,
        [address(GuestPciAddress::INVALID, Bus::Virtio, [0, 0, 0], "/dev/vdf")]
    );
}

fn devs(fs: &GuestFilesystemInfo) -> Vec<String> {
    let mut devs: Vec<String> = fs.disk.iter().map(|d| d.dev.clone().unwrap()).collect();
    devs.sort();
    devs
}

#[test]
fn device_mapper_and_raid_down_to_the_partitions() {
    let f = guest();
    let root = one(&f, "253:1");
    assert_eq!(root.name, "dm-1");
    assert_eq!(devs(&root), ["/dev/sdb1", "/dev/vda2"]);
    let vda2 = root.disk.iter().find(|d| d.dev.as_deref() == Some("/dev/vda2"));
    assert_eq!(vda2.unwrap().pci_controller, pci(0, 0, 2, 0));
    let raid = one(&f, "9:0");
    assert_eq!(raid.name, "md0");
    assert_eq!(devs(&raid), ["/dev/nvme0n1p1", "/dev/vdb"]);
    // A loop device stands on no disk; a device sysfs does not have is named by its
    // numbers.
    let lp = one(&f, "7:0");
    assert_eq!((lp.name.as_str(), lp.disk.len()), ("loop0", 0));
    let gone = one(&f, "259:9");
    assert_eq!((gone.name.as_str(), gone.disk.len()), ("259:9", 0));
}

#[test]
fn filesystems_in_reverse_mount_order_with_sizes() {
    let f = guest();
    let here = f.dir.path().display().to_string();
    let mountinfo = format!(
        "22 1 0:21 / /proc rw - proc proc rw\n\
         27 1 254:1 / {here} rw - ext4 /dev/vda1 rw\n\
         28 27 254:1 /srv /srv rw - ext4 /dev/vda1 rw\n\
         29 27 253:1 / /nonexistent/mnt rw - xfs /dev/mapper/crypt rw\n\
         30 27 0:40 / /mnt/nfs rw - nfs4 server:/export rw\n"
    );
    let all = fsinfo(&f, &mountinfo);
    let summary: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|fs| (fs.name.as_str(), fs.mountpoint.as_str(), fs.fs_type.as_str()))
        .collect();
    assert_eq!(
        summary,
        [("dm-1", "/nonexistent/mnt", "xfs"), ("vda1", here.as_str(), "ext4")]
    );
    // statvfs of a directory that is not there: no sizes, the entry stays.
    assert_eq!(all[0].used_bytes, None);
    let truth = statvfs(&here).unwrap();
    assert_eq!(all[1].total_bytes_privileged, Some(truth.privileged));
    assert!(all[1].total_bytes.unwrap() <= truth.privileged);
    assert!(all[1].used_bytes.unwrap() <= all[1].total_bytes.unwrap());
}

#[test]
fn sizes_as_qemu_ga_computes_them() {
    // 4 KiB fragments; 5 % reserved for root.
    let u = super::Usage::from_blocks(4096, 1000, 400, 350);
    assert_eq!((u.used, u.total, u.privileged), (600 * 4096, 950 * 4096, 1000 * 4096));
    let huge = super::Usage::from_blocks(1 << 20, u64::MAX, 0, u64::MAX);
    assert_eq!((huge.used, huge.total), (u64::MAX, u64::MAX));
}

#[test]
fn a_hung_filesystem_costs_its_sizes_not_the_reply() {
    let f = guest();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    let s = Storage {
        prober: statfs::Prober::with_probe(move |mp: &str| {
            if mp == "/hung" {
                let _ = gate.lock().unwrap().recv();
            }
            Ok(super::Usage::from_blocks(1, 3, 1, 1))
        }),
        gate: Arc::default(),
    };
    let mut src = f.sources(
        "27 1 254:1 / /hung rw - ext4 /dev/vda1 rw\n28 1 7:0 / /fine rw - ext4 /dev/loop0 rw\n",
    );
    src.statfs_timeout = Duration::from_millis(200);
    let started = std::time::Instant::now();
    let all = s.fsinfo_from(&src).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let mountpoints: Vec<&str> = all.iter().map(|fs| fs.mountpoint.as_str()).collect();
    assert_eq!(mountpoints, ["/fine", "/hung"]);
    // The prober is stuck on /hung (first in mount order), so this reply has no
    // sizes; the next one skips /hung and probes the rest afresh.
    assert_eq!(all[1].used_bytes, None);
    let all = s.fsinfo_from(&src).unwrap();
    assert_eq!(all[0].used_bytes, Some(2));
    assert_eq!(all[0].total_bytes_privileged, Some(3));
    assert_eq!(all[1].used_bytes, None);
    release.send(()).unwrap();
}

fn disk<'a>(all: &'a [GuestDiskInfo], name: &str) -> &'a GuestDiskInfo {
    all.iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

#[test]
fn disks_partitions_dependencies_aliases_and_smart() {
    let f = guest();
    let smart = GuestNvmeSmart {
        temperature: 300,
        ..Default::default()
    };
    let all = inventory::collect(&f.sysfs(), |node| (node == "/dev/nvme0n1").then_some(smart))
        .unwrap();
    // qemu-ga's order: every disk followed by its partitions, in directory order, and
    // all of it reversed.
    let mut natural = Vec::new();
    for e in std::fs::read_dir(f.sys().join("block")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name == "loop1" {
            continue; // size 0
        }
        natural.push(format!("/dev/{name}"));
        for p in Sysfs::partitions(&f.sys().join("block").join(&name), &name) {
            natural.push(format!("/dev/{}", p.file_name().unwrap().to_string_lossy()));
        }
    }
    natural.reverse();
    let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, natural);
    assert!(!names.contains(&"/dev/loop1"));

    let vda = disk(&all, "/dev/vda");
    assert!(!vda.partition);
    assert_eq!(vda.dependencies.as_deref(), Some(&[][..]));
    let addr = vda.address.as_ref().unwrap();
    assert_eq!((addr.bus_type, addr.dev.as_deref()), (Bus::Virtio, Some("/dev/vda")));
    assert_eq!((vda.alias.as_deref(), vda.smart), (None, None));
    let vda1 = disk(&all, "/dev/vda1");
    assert!(vda1.partition);
    assert_eq!(vda1.dependencies.as_deref(), Some(&["/dev/vda".to_string()][..]));
    assert_eq!(vda1.address, None);

    let dm0 = disk(&all, "/dev/dm-0");
    assert_eq!(dm0.alias.as_deref(), Some("vg-root"));
    assert_eq!(dm0.address, None);
    let mut deps = dm0.dependencies.clone().unwrap();
    deps.sort();
    assert_eq!(deps, ["/dev/sdb1", "/dev/vda2"]);
    assert_eq!(
        disk(&all, "/dev/dm-1").dependencies.as_deref(),
        Some(&["/dev/dm-0".to_string()][..])
    );
    let nvme = disk(&all, "/dev/nvme0n1");
    assert_eq!(nvme.smart, Some(GuestDiskSmart::Nvme(smart)));
    assert_eq!(nvme.address.as_ref().unwrap().bus_type, Bus::Nvme);
    assert_eq!(
        disk(&all, "/dev/nvme0n1p1").dependencies.as_deref(),
        Some(&["/dev/nvme0n1".to_string()][..])
    );
    assert_eq!(disk(&all, "/dev/sdb").smart, None);
    assert_eq!(disk(&all, "/dev/loop0").address, None);
    assert_eq!(
        disk(&all, "/dev/sda").address.as_ref().unwrap().serial.as_deref(),
        Some("0QEMU_QEMU_HARDDISK_drive-scsi0-0-3-1")
    );
}

#[test]
fn udev_answers_for_the_devices_it_knows() {
    let f = guest();
    // udev knows vda (it runs) but gave it no serial: no serial, as qemu-ga.
    std::fs::write(f.dir.path().join("run/udev/data/b254:0"), "E:ID_BUS=virtio\n").unwrap();
    let sys = f.sysfs();
    let vda = super::sysfs::realpath(&f.sys().join("block/vda")).unwrap();
    assert_eq!(sys.serial(&vda), None);
    // Without udev's entry, the attribute udev copies.
    let vda1 = vda.join("vda1");
    assert_eq!(sys.serial(&vda1).as_deref(), Some("disk-serial-1"));
    // No rule reads a SCSI disk's serial from sysfs.
    let sdb = super::sysfs::realpath(&f.sys().join("block/sdb")).unwrap();
    f.write(SATA, "serial", "not-read\n");
    assert_eq!(sys.serial(&sdb), None);
}

#[test]
fn a_missing_sysfs_is_an_error_naming_it() {
    let sys = Sysfs::new(Path::new("/nonexistent/sys"), Path::new("/nonexistent"));
    let e = inventory::collect(&sys, |_| None).unwrap_err();
    assert_eq!(
        e.message(),
        "read directory /nonexistent/sys/block: No such file or directory"
    );
}
