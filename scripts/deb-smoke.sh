#!/usr/bin/env bash
# Manual check of the Debian package in a real systemd guest (not run by CI: it needs
# debootstrap and a few minutes). Boots a Debian bookworm rootfs with systemd and udev,
# with target/debian/phoenix-ga_*.deb installed, and checks through the port that:
#   * udev + systemd start the agent when the port appears (no manual start),
#   * it answers ping, and comes back after agent-shutdown (Restart=always),
#   * the hardening options and the man page are what the package says,
#   * a separate /home stays freezable under the unit's ProtectHome=read-only (and would
#     not be under ProtectHome=yes, which is why the unit does not use it).
# Usage: scripts/deb-smoke.sh [WORKDIR]   (after `cargo deb -p phoenix-ga` and one e2e run,
# which caches the kernel). Needs: debootstrap, qemu-system-x86, busybox-static, cpio, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/var/tmp/phoenix-deb-smoke}
cache=${PHOENIX_E2E_CACHE:-/var/cache/phoenix-rs-e2e}
deb=$(ls -t target/debian/phoenix-ga_*.deb | head -n1)
release=$(cat "$cache/kernel.ready")
kdir="$cache/kernel/$release"
mdir="$kdir/lib/modules/$release"
mkdir -p "$work"

if [ ! -x "$work/rootfs/sbin/init" ]; then
    debootstrap --variant=minbase --include=systemd,systemd-sysv,udev,iproute2,kmod,man-db \
        bookworm "$work/rootfs" http://deb.debian.org/debian
fi
root="$work/rootfs"
cp "$deb" "$root/tmp/phoenix-ga.deb"
chroot "$root" dpkg -i /tmp/phoenix-ga.deb
chroot "$root" sh -c 'echo phoenix-smoke > /etc/hostname; passwd -d root >/dev/null'
# A separate /home filesystem: shows whether fs-freeze can reach it under the unit's
# ProtectHome= setting.
grep -q vdb "$root/etc/fstab" || echo "/dev/vdb /home ext4 defaults,nofail 0 0" >> "$root/etc/fstab"
rm -f "$work/home.img"; truncate -s 64M "$work/home.img"; mkfs.ext4 -q -F "$work/home.img"
# A one-shot reporter: prints the unit's state to the serial console once it runs.
cat > "$root/usr/local/bin/smoke-report" <<'SCRIPT'
#!/bin/sh
for i in $(seq 60); do systemctl -q is-active phoenix-ga && break; sleep 1; done
echo "SMOKE active=$(systemctl is-active phoenix-ga) enabled=$(systemctl is-enabled phoenix-ga)"
systemctl show phoenix-ga -p ProtectHome -p ProtectSystem -p NoNewPrivileges -p Restart -p BindsTo \
    | sed "s/^/SMOKE /"
echo "SMOKE caps $(grep CapBnd /proc/$(systemctl show -p MainPID --value phoenix-ga)/status)"
echo "SMOKE link $(readlink /dev/virtio-ports/org.guest-agent.0)"
# Can a service with the unit's mount options still freeze a separate /home?
for h in read-only yes; do
    systemctl start "freeze-home-$h.service"
    echo "SMOKE freeze-home ProtectHome=$h $(tr '\n' ' ' <"/run/freeze-home-$h")"
done
echo "SMOKE man $(ls /usr/share/man/man8/phoenix-ga.8.gz)"
SCRIPT
chmod 755 "$root/usr/local/bin/smoke-report"
for h in read-only yes; do
    cat > "$root/etc/systemd/system/freeze-home-$h.service" <<UNIT
[Service]
Type=oneshot
ProtectHome=$h
ProtectSystem=true
ExecStart=/bin/sh -c 'grep " /home " /proc/self/mountinfo; fsfreeze -f /home && fsfreeze -u /home; echo status=\$?' 
StandardOutput=file:/run/freeze-home-$h
StandardError=file:/run/freeze-home-$h
UNIT
done
cat > "$root/etc/systemd/system/smoke-report.service" <<'UNIT'
[Unit]
Description=Report phoenix-ga state on the console
After=multi-user.target
[Service]
Type=oneshot
StandardOutput=tty
TTYPath=/dev/ttyS0
ExecStart=/usr/local/bin/smoke-report
[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable smoke-report.service >/dev/null 2>&1
rm -f "$work/root.img"
truncate -s 2G "$work/root.img"
mkfs.ext4 -q -F -d "$root" "$work/root.img"

# Initramfs: load the virtio modules, mount /dev/vda, hand over to systemd.
stage="$work/initrd"
rm -rf "$stage"; mkdir -p "$stage/bin" "$stage/lib/modules/$release"
cp /bin/busybox "$stage/bin/busybox"
# These modules' dependencies are modules without further dependencies (virtio,
# virtio_ring, failover...): one level of modules.dep is the whole closure.
for m in virtio_pci virtio_console virtio_blk virtio_net; do
    line=$(grep "/$m.ko:" "$mdir/modules.dep")
    for f in $(echo "$line" | tr -d ':'); do
        mkdir -p "$stage/lib/modules/$release/$(dirname "$f")"
        cp "$mdir/$f" "$stage/lib/modules/$release/$f"
        grep -q "^$f:" "$stage/lib/modules/$release/modules.dep" 2>/dev/null \
            || grep "^$f:" "$mdir/modules.dep" >> "$stage/lib/modules/$release/modules.dep"
    done
done
cat > "$stage/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
modprobe -a virtio_pci virtio_console virtio_blk virtio_net
i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.05; done
mount -t ext4 /dev/vda /newroot
umount /proc /sys; mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
INIT
chmod 755 "$stage/init"
( cd "$stage" && find . | cpio -o -H newc --quiet ) > "$work/initrd.cpio"

sock="$work/ga.sock"; log="$work/console.log"; rm -f "$sock" "$log"
qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot -accel tcg \
    -m 1024 -smp 2 -kernel "$kdir/boot/vmlinuz-$release" -initrd "$work/initrd.cpio" \
    -append "console=ttyS0 panic=-1" -serial "file:$log" \
    -device virtio-serial-pci \
    -chardev "socket,id=ga0,path=$sock,server=on,wait=off" \
    -device virtserialport,chardev=ga0,name=org.guest-agent.0 \
    -drive "file=$work/root.img,format=raw,if=virtio" \
    -drive "file=$work/home.img,format=raw,if=virtio" \
    -nic user,model=virtio-net-pci,restrict=on &
qemu=$!
trap 'kill $qemu 2>/dev/null || true' EXIT

req() { # one request on a fresh connection; prints the reply line
    python3 - "$sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(120)
s.sendall(b"\xff" + sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    data = s.recv(65536)
    if not data:
        break
    buf += data
print(buf.decode().strip())
PY
}
for i in $(seq 300); do
    grep -q "SMOKE man" "$log" 2>/dev/null && break
    kill -0 $qemu 2>/dev/null || break
    sleep 1
done
grep SMOKE "$log" || { tail -50 "$log"; echo "FAIL: no report from the guest"; exit 1; }
fail=0
expect() { # expect WHAT GOT WANT
    if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: got $2, want $3"; fail=1; fi
}
expect "started by udev+systemd" "$(grep -c 'SMOKE active=active enabled=enabled' "$log")" 1
expect "bounding set" "$(grep -o 'CapBnd:.*' "$log" | tr -d '[:space:]')" "CapBnd:000000000020101f"
expect "fs-freeze reaches /home under ProtectHome=read-only" \
    "$(grep 'freeze-home ProtectHome=read-only' "$log" | grep -o 'status=[0-9]*')" "status=0"
expect "ProtectHome=yes would hide /home from fs-freeze" \
    "$(grep 'freeze-home ProtectHome=yes' "$log" | grep -o 'status=[0-9]*')" "status=1"
expect "ping" "$(req '{"execute":"ping","tag":"p1"}')" '{"return":"'"$(dpkg-deb -f "$deb" Version | cut -d- -f1)"'","tag":"p1"}'
# Commands that need the unit's capabilities and socket families (when this build has them).
jget() { python3 -c 'import json,sys; v=json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1"; }
if req '{"execute":"get-commands","tag":"c"}' | grep -q '"sysinfo"'; then
    expect "sysinfo under the unit" \
        "$(req '{"execute":"sysinfo","tag":"s"}' | jget 'v["return"]["uname"]["release"]')" "$release"
    expect "sysinfo sees the separate /home under ProtectHome=read-only" \
        "$(req '{"execute":"sysinfo","tag":"s"}' | jget '[(d["is_mounted"], d["mountpoint"]) for d in v["return"]["disks"] if d["name"] == "/dev/vdb"]')" \
        "[(True, '/home')]"
fi
if req '{"execute":"get-commands","tag":"c"}' | grep -q '"ipaddr-add"'; then
    nic=$(req '{"execute":"get-netifaces","tag":"n"}' | jget '[i["name"] for i in v["return"] if i["name"] != "lo"][0]')
    expect "ipaddr-add on $nic (CAP_NET_ADMIN, AF_NETLINK)" \
        "$(req '{"execute":"ipaddr-add","arguments":{"ip":"192.0.2.10/24","ifname":"'"$nic"'"},"tag":"a"}')" \
        '{"return":true,"tag":"a"}'
    expect "the address shows in get-netifaces" \
        "$(req '{"execute":"get-netifaces","tag":"n"}' | jget '"192.0.2.10/24" in [a for i in v["return"] for a in i["ips"]]')" "True"
    expect "ipaddr-del" \
        "$(req '{"execute":"ipaddr-del","arguments":{"ip":"192.0.2.10/24","ifname":"'"$nic"'"},"tag":"d"}')" \
        '{"return":true,"tag":"d"}'
fi
expect "agent-shutdown" "$(req '{"execute":"agent-shutdown","tag":"s1"}')" '{"return":true,"tag":"s1"}'
sleep 3
expect "restarted after agent-shutdown" "$(req '{"execute":"ping","tag":"p2"}')" '{"return":"'"$(dpkg-deb -f "$deb" Version | cut -d- -f1)"'","tag":"p2"}'
exit $fail
