#!/usr/bin/env bash
# Builds the test initramfs (a gzip'd newc cpio, no root needed): busybox
# and an /init that mounts /proc, /sys and /dev, loads the pvpanic modules
# (so that a kernel panic reaches ttvm through the ACPI QEMU0001 device at
# port 0x505), says "ttvm-init: ready" and then runs each line it reads from
# the serial console, echoing "ttvm-cmd: LINE" before and "ttvm-rc: N" after.
#
# usage: make_initramfs.sh BUSYBOX MODULES_DIR OUT
set -euo pipefail
busybox=${1:?usage: make_initramfs.sh BUSYBOX MODULES_DIR OUT}
modules=${2:?}
out=${3:?}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
for m in pvpanic pvpanic-mmio; do
  [ -f "$modules/$m.ko" ] && cp "$modules/$m.ko" "$root/lib/modules/"
done
cat >"$root/init" <<'INIT'
#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in pvpanic pvpanic-mmio; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
echo "ttvm-init: ready ($(cat /proc/sys/kernel/osrelease))"
while read -r line; do
  echo "ttvm-cmd: $line"
  eval "$line"
  echo "ttvm-rc: $?"
done
echo "ttvm-init: end of input"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --owner 0:0 --quiet | gzip -9n) >"$out.tmp"
mv "$out.tmp" "$out"
