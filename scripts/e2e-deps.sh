#!/usr/bin/env bash
# Installs what the end-to-end tests (crates/phoenix-ga/tests/e2e.rs) need on a Debian
# bookworm host: QEMU from bookworm-backports, busybox-static and cpio for the guest's
# initramfs, e2fsprogs for the scratch disk. The guest kernel is not installed here: the
# harness downloads its .deb with `apt-get download` and caches it (see docs/e2e.md).
#
# Why backports: the machine ships qemu-utils 10 from bookworm-backports, and a plain
# `apt-get install qemu-system-x86` (7.2) would silently remove it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
backports="${codename}-backports"

# Add backports with the mirror the machine already uses, unless some source has it.
if ! grep -rqs -- "$backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror=$(grep -rhs -E '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
                 /etc/apt/sources.list.d/*.list 2>/dev/null \
             | grep -o -E 'https?://[^ ]+/debian/?' | grep -v security | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "e2e-deps: adding $backports from $mirror"
    cat > /etc/apt/sources.list.d/phoenix-e2e-backports.sources <<SRC
Types: deb
URIs: ${mirror%/}
Suites: $backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
    updated=1
fi

need_qemu=0
if ! have qemu-system-x86 || ! dpkg-query -W -f='${Version}' qemu-system-x86 | grep -q bpo; then
    need_qemu=1
fi
missing=()
for p in busybox-static cpio e2fsprogs; do have "$p" || missing+=("$p"); done

# The harness resolves and downloads the kernel with apt: the package lists must know it.
if ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
    need_lists=1
fi

if [ "$need_qemu" = 1 ] || [ ${#missing[@]} -gt 0 ] || [ "${need_lists:-0}" = 1 ]; then
    [ "${updated:-0}" = 1 ] || apt-get update -qq
fi
if [ "$need_qemu" = 1 ]; then
    apt-get install -y -qq -t "$backports" --no-remove --no-install-recommends qemu-system-x86
fi
if [ ${#missing[@]} -gt 0 ]; then
    apt-get install -y -qq --no-remove "${missing[@]}"
fi
