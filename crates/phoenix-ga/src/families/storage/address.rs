//! A disk's hardware address, read off its sysfs path as qemu-ga reads it.
//!
//! The path of a block device names the devices it hangs on, from the PCI host bridge
//! down: `/devices/pci0000:00/0000:00:05.0/virtio2/host2/target2:0:3/2:0:3:1/block/sda`
//! is LUN 1 of SCSI target 3 on channel 0 of host 2, which is the virtio-scsi
//! controller at PCI 0000:00:05.0. The controller is the first PCI device on the path
//! whose driver is one qemu-ga knows (a bridge's is not: the walk goes on to the next
//! PCI address on the path); its driver tells the bus:
//!
//! | driver | bus-type | bus | target | unit |
//! |---|---|---|---|---|
//! | `virtio-pci`, no SCSI target | `virtio` | 0 | 0 | 0 |
//! | `virtio-pci` with a SCSI target (virtio-scsi) | `scsi` | channel | id | LUN |
//! | `sym53c8xx` (LSI) | `scsi` | 0 | 0 | id |
//! | `ata_piix` (IDE) | `ide` | index of its ATA port on the controller | 0 | id |
//! | `ahci` (SATA) | `sata` | 0 | 0 | index of its ATA port on the controller |
//! | `nvme` | `nvme` | 0 | 0 | 0 |
//! | `xhci_hcd`, `ehci-pci` (USB) | `usb` | 0 | 0 | 0 |
//!
//! Not on PCI: channel I/O devices of s390x (`/devices/css0/0.0.0000/0.0.0002/virtio0`)
//! get a `ccw-address`, virtio-mmio disks their bus type only. A disk whose address
//! cannot be told is still listed with `unknown` and its node.

use std::path::{Path, PathBuf};

use phoenix_proto::types::storage::qga::{
    GuestCcwAddress, GuestDiskAddress, GuestDiskBusType, GuestPciAddress,
};

use super::sysfs::Sysfs;

/// The drivers of the disk controllers qemu-ga knows.
const CONTROLLERS: &[&str] = &[
    "ata_piix",
    "sym53c8xx",
    "virtio-pci",
    "ahci",
    "nvme",
    "xhci_hcd",
    "ehci-pci",
];

/// The address of the real (not virtual) block device at canonical path `real`, with
/// its serial number and node; `None` when nothing at all is known of it.
pub fn of_real_device(sys: &Sysfs, real: &Path) -> Option<GuestDiskAddress> {
    let mut disk = GuestDiskAddress {
        pci_controller: GuestPciAddress::INVALID,
        bus_type: GuestDiskBusType::Unknown,
        bus: 0,
        target: 0,
        unit: 0,
        serial: sys.serial(real),
        dev: sys.devnode(real),
        ccw_address: None,
    };
    let rel = sys.rel(real);
    let known = if let Some(at) = rel.find("/devices/pci") {
        pci(&rel, at, &root_of(real, &rel), &mut disk)
    } else if let Some(at) = rel.find("/devices/css") {
        ccw(&rel[at..], &mut disk)
    } else if rel.contains("/virtio") {
        non_pci_virtio(&rel, &mut disk)
    } else {
        tracing::debug!(path = %rel, "block device on an unsupported bus");
        false
    };
    (known || disk.dev.is_some() || disk.serial.is_some()).then_some(disk)
}

/// The sysfs root of canonical path `real` whose part below the root is `rel`.
fn root_of(real: &Path, rel: &str) -> PathBuf {
    let full = real.to_string_lossy();
    PathBuf::from(full.strip_suffix(rel).unwrap_or_default())
}

/// A PCI address `DDDD:BB:SS.F` (hexadecimal).
fn pci_address(component: &str) -> Option<[i64; 4]> {
    let (domain, rest) = component.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (slot, function) = rest.split_once('.')?;
    let hex = |s: &str| {
        (!s.is_empty() && s.len() <= 8)
            .then(|| i64::from_str_radix(s, 16).ok())
            .flatten()
    };
    Some([hex(domain)?, hex(bus)?, hex(slot)?, hex(function)?])
}

/// A disk under a PCI controller; `at` is where `/devices/pci` starts in `rel`.
fn pci(rel: &str, at: usize, root: &Path, disk: &mut GuestDiskAddress) -> bool {
    // /devices/pciDDDD:BB/DDDD:BB:SS.F[/DDDD:BB:SS.F...]/...
    let mut end = at + "/devices/".len();
    let mut components = rel[end..].split('/');
    let Some(host_bridge) = components.next() else {
        return false;
    };
    end += host_bridge.len();
    let mut address = None;
    let mut driver = None;
    for component in components {
        let Some(a) = pci_address(component) else {
            break;
        };
        end += 1 + component.len();
        address = Some(a);
        let link = root.join(&rel[1..end]).join("driver");
        let name = std::fs::read_link(link)
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
        if let Some(name) = name.filter(|n| CONTROLLERS.contains(&n.as_str())) {
            driver = Some(name);
            break;
        }
    }
    let (Some([domain, bus, slot, function]), Some(driver)) = (address, driver) else {
        tracing::debug!(path = %rel, "no known disk controller on the PCI path");
        return false;
    };
    let target = scsi_target(rel);
    let host = ata_or_scsi_host(rel, root);
    disk.pci_controller = GuestPciAddress {
        domain,
        bus,
        slot,
        function,
    };
    match driver.as_str() {
        "ata_piix" => match (host, target) {
            (Some(index), Some([_, id, _])) => {
                disk.bus_type = GuestDiskBusType::Ide;
                disk.bus = index;
                disk.unit = id;
            }
            _ => return false,
        },
        "sym53c8xx" => match target {
            Some([_, id, _]) => {
                disk.bus_type = GuestDiskBusType::Scsi;
                disk.unit = id;
            }
            None => return false,
        },
        "virtio-pci" => match target {
            Some([channel, id, lun]) => {
                disk.bus_type = GuestDiskBusType::Scsi;
                disk.bus = channel;
                disk.target = id;
                disk.unit = lun;
            }
            None => disk.bus_type = GuestDiskBusType::Virtio,
        },
        "ahci" => match (host, target) {
            (Some(index), Some(_)) => {
                disk.bus_type = GuestDiskBusType::Sata;
                disk.unit = index;
            }
            _ => return false,
        },
        "nvme" => disk.bus_type = GuestDiskBusType::Nvme,
        _ => disk.bus_type = GuestDiskBusType::Usb,
    }
    true
}

/// The SCSI address in `.../targetH:C:T/H:C:T:L/...`: `[channel, id, lun]`.
fn scsi_target(rel: &str) -> Option<[i64; 3]> {
    let at = rel.find("/target")?;
    let mut parts = rel[at + "/target".len()..].split('/');
    let target = parts.next()?;
    if target.split(':').count() != 3 || !target.split(':').all(is_number) {
        return None;
    }
    let mut hctl = parts.next()?.split(':');
    let _host = hctl.next().filter(|s| is_number(s))?;
    let mut next = || hctl.next()?.parse::<i64>().ok();
    Some([next()?, next()?, next()?])
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The index of the disk's ATA port (`/ataN/`), or else SCSI host (`/hostN/`), among
/// those of its controller, in number order: the IDE channel or the SATA port.
fn ata_or_scsi_host(rel: &str, root: &Path) -> Option<i64> {
    let (at, prefix) = match rel.find("/ata") {
        Some(at) => (at, "ata"),
        None => (rel.find("/host")?, "host"),
    };
    let number = |name: &str| -> Option<u32> {
        let digits: String = name
            .strip_prefix(prefix)?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let mine = number(&rel[at + 1..])?;
    let controller = root.join(&rel[1..at]);
    let mut numbers: Vec<u32> = std::fs::read_dir(&controller)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| number(&e.file_name().to_string_lossy()))
        .collect();
    numbers.sort_unstable();
    let index = numbers.iter().position(|&n| n == mine)?;
    i64::try_from(index).ok()
}

/// A channel I/O device: `rel` starts at `/devices/css`:
/// `/devices/cssC/C.S.SUBCH/C.S.DEVNO/...`.
fn ccw(rel: &str, disk: &mut GuestDiskAddress) -> bool {
    let mut parts = rel["/devices/css".len()..].split('/');
    let hex = |s: &str| i64::from_str_radix(s, 16).ok();
    let triple = |s: Option<&str>| -> Option<[i64; 3]> {
        let mut it = s?.split('.');
        let t = [hex(it.next()?)?, hex(it.next()?)?, hex(it.next()?)?];
        it.next().is_none().then_some(t)
    };
    let _css = parts.next();
    let subchannel = triple(parts.next());
    let device = triple(parts.next());
    let (Some([cssid, ssid, subchno]), Some([_, _, devno]), Some(_)) =
        (subchannel, device, parts.next())
    else {
        tracing::debug!(path = %rel, "cannot parse a channel I/O path");
        return false;
    };
    disk.ccw_address = Some(GuestCcwAddress {
        cssid,
        ssid,
        subchno,
        devno,
    });
    if rel.contains("/virtio") {
        non_pci_virtio(rel, disk);
    }
    true
}

/// A virtio disk not on PCI (virtio-mmio, channel I/O): `virtio`, or `scsi` with its
/// address for virtio-scsi.
fn non_pci_virtio(rel: &str, disk: &mut GuestDiskAddress) -> bool {
    if !rel.contains("/virtio") || !rel.contains("/block") {
        tracing::debug!(path = %rel, "unsupported virtio device");
        return false;
    }
    match scsi_target(rel) {
        Some([channel, id, lun]) => {
            disk.bus_type = GuestDiskBusType::Scsi;
            disk.bus = channel;
            disk.target = id;
            disk.unit = lun;
        }
        None => disk.bus_type = GuestDiskBusType::Virtio,
    }
    true
}
