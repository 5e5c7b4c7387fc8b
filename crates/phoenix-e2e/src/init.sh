#!/bin/busybox sh
# /init of the e2e guest (PID 1). Sets up the guest like a tiny distribution would
# (no udev), starts phoenix-ga on its virtio-serial port, restarting it when it exits
# (like systemd's Restart=always), and then serves the host's shell channel forever.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mkdir -p /proc /sys /dev /tmp /run /mnt/scratch
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
echo "phoenix-e2e: init $(uname -r)" >/dev/ttyS0

modprobe -a virtio_pci virtio_console virtio_blk virtio_net || echo "phoenix-e2e: modprobe failed" >/dev/ttyS0

# udev's job: /dev/virtio-ports/NAME symlinks. Port names arrive from the host shortly
# after the driver binds, so wait for the two ports we need.
mkdir -p /dev/virtio-ports
i=0
while [ $i -lt 200 ]; do
    for d in /sys/class/virtio-ports/*; do
        [ -r "$d/name" ] || continue
        name=$(cat "$d/name")
        [ -n "$name" ] && ln -sf "../${d##*/}" "/dev/virtio-ports/$name"
    done
    all=1
    for p in org.guest-agent.0 org.phoenix-e2e.shell $(cat /etc/phoenix-e2e.ports); do
        [ -e "/dev/virtio-ports/$p" ] || all=0
    done
    [ $all = 1 ] && break
    i=$((i + 1))
    sleep 0.05
done

# Scratch disk (ext4 made on the host) and network (QEMU user networking's addresses).
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.05; done
mount -t ext4 /dev/vda /mnt/scratch || echo "phoenix-e2e: mount /dev/vda failed" >/dev/ttyS0
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 \
    || echo "phoenix-e2e: eth0 setup failed" >/dev/ttyS0
hostname phoenix-e2e

# The test's own set-up (GuestOpts::setup), if any.
if [ -f /etc/phoenix-e2e.setup ]; then
    sh /etc/phoenix-e2e.setup </dev/null >/dev/ttyS0 2>&1 || echo "phoenix-e2e: set-up failed" >/dev/ttyS0
fi

# The agent, restarted whenever it exits; each exit status is appended to /run/ga.exits.
# Touch /run/ga.norestart to stop restarting, /run/ga.hold to hold the restart while it
# exists (so the host sees the port closed for as long as a test needs).
(
    while :; do
        # shellcheck disable=SC2046
        /usr/bin/phoenix-ga -m virtio-serial $(cat /etc/phoenix-ga.args) </dev/null >>/run/ga.log 2>&1
        echo $? >>/run/ga.exits
        [ -e /run/ga.norestart ] && break
        sleep 0.2
        while [ -e /run/ga.hold ]; do sleep 0.05; done
    done
) &

# Power requests, as busybox init takes them: SIGUSR2 powers off, SIGUSR1 halts, SIGTERM
# reboots (busybox's poweroff, halt and reboot signal PID 1 so; the agent's
# guest-shutdown runs them). Like an init, this one ends every other process, syncs and
# unmounts; it also thaws the scratch disk, and says on the console when it had to.
power() {
    echo "phoenix-e2e: $1" >/dev/ttyS0
    fsfreeze --unfreeze /mnt/scratch 2>/dev/null && echo "phoenix-e2e: the scratch disk was still frozen" >/dev/ttyS0
    touch /run/ga.norestart
    kill -TERM -1
    sleep 1
    sync
    umount /mnt/scratch
    "$1" -f
}
trap 'power poweroff' USR2
trap 'power halt' USR1
trap 'power reboot' TERM

# The shell channel. The host sends "ID BASE64-SCRIPT" lines; for each, the script runs
# with stdin from /dev/null and the reply is "OUT ID NSTDOUT NSTDERR", the raw stdout
# and stderr bytes, then "END ID STATUS". The port is opened once and kept open: closing
# it would drop bytes the host already sent. While no host is connected, read returns
# at once, hence the sleep.
echo "phoenix-e2e: ready" >/dev/ttyS0
exec 3<>/dev/virtio-ports/org.phoenix-e2e.shell
while :; do
    if read -r id script <&3; then
        [ -n "$id" ] || continue
        echo "$script" | base64 -d >/tmp/.e2e-cmd 2>/dev/null
        sh /tmp/.e2e-cmd </dev/null >/tmp/.e2e-out 2>/tmp/.e2e-err 3>&-
        status=$?
        printf 'OUT %s %s %s\n' "$id" "$(wc -c </tmp/.e2e-out)" "$(wc -c </tmp/.e2e-err)" >&3
        cat /tmp/.e2e-out /tmp/.e2e-err >&3
        printf 'END %s %s\n' "$id" "$status" >&3
    else
        sleep 0.1
    fi
done
