#!/usr/bin/env bash
# Fetches a Debian 12 kernel flavour and busybox-static into the cache
# (${TTVM_CACHE:-$HOME/.cache/ttvm}/linux), never installing anything: the
# current kernel is resolved through the flavour's metapackage
# (linux-image-cloud-amd64 or linux-image-amd64), each package is fetched with
# `apt-get download` and unpacked with `dpkg-deb -x`, and only the files the
# tests use are kept: vmlinuz, System.map, the pvpanic modules, the KVM
# modules (irqbypass, kvm, kvm-amd, kvm-intel: the nested-VM harness
# scripts/nested_kvm.sh loads them; .ko.xz ones are decompressed), busybox.
#
# usage: fetch_debian_kernel.sh cloud|generic
# Prints KEY=VALUE lines (KERNEL, SYSTEM_MAP, MODULES_DIR, BUSYBOX, RELEASE).
# Exits 77 (the tests' skip code) with the reason on stderr when the package
# archive cannot be reached.
set -euo pipefail
flavour=${1:?usage: fetch_debian_kernel.sh cloud|generic}
case "$flavour" in
  cloud) meta=linux-image-cloud-amd64 ;;
  generic) meta=linux-image-amd64 ;;
  *) echo "fetch_debian_kernel.sh: flavour '$flavour': use cloud or generic" >&2; exit 2 ;;
esac
cache="${TTVM_CACHE:-$HOME/.cache/ttvm}/linux"
mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

skip() {
  echo "SKIP: $*" >&2
  exit 77
}
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
  skip "apt-get and dpkg-deb are needed to fetch Debian's kernel packages"

# apt-get download writes into the current directory.
download() {
  (cd "$work" && apt-get download -q "$@" >"$work/apt.log" 2>&1) ||
    skip "apt-get download $* failed (package archive unreachable, or the package lists need 'apt-get update'): $(tail -1 "$work/apt.log")"
}

download "$meta"
image=$(dpkg-deb -f "$work"/"$meta"_*.deb Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -1)
[ -n "$image" ] || { echo "fetch_debian_kernel.sh: $meta names no linux-image-<version> package" >&2; exit 1; }
release=${image#linux-image-}
dest="$cache/$release"
# The nested-VM harness boots the cloud kernel and needs its KVM modules
# (caches filled before they were kept lack them).
need_kvm=false
[ "$flavour" = cloud ] && [ ! -f "$dest/modules/kvm.ko" ] && need_kvm=true
if [ ! -f "$dest/vmlinuz" ] || $need_kvm; then
  download "$image"
  dpkg-deb -x "$work/$image"_*.deb "$work/x"
  mkdir -p "$dest.tmp/modules"
  cp "$work/x/boot/vmlinuz-$release" "$dest.tmp/vmlinuz"
  cp "$work/x/boot/System.map-$release" "$dest.tmp/System.map"
  cp "$work/x/boot/config-$release" "$dest.tmp/config"
  find "$work/x/lib/modules" \( -name 'pvpanic*.ko*' -o -name 'irqbypass.ko*' -o -name 'kvm.ko*' \
    -o -name 'kvm-amd.ko*' -o -name 'kvm-intel.ko*' \) -exec cp {} "$dest.tmp/modules/" \;
  for z in "$dest.tmp"/modules/*.ko.xz; do
    [ -e "$z" ] || continue
    command -v xz >/dev/null || { echo "fetch_debian_kernel.sh: xz is needed to decompress $(basename "$z")" >&2; exit 1; }
    xz -d "$z"
  done
  # Replace only these files: $dest also holds what other tests fetched
  # (crash_symbols_test.py's dbg/). vmlinuz last: it marks a complete fetch.
  mkdir -p "$dest" && rm -rf "$dest/modules"
  for f in modules System.map config vmlinuz; do mv -f "$dest.tmp/$f" "$dest/$f"; done
  rm -rf "$dest.tmp"
fi
if [ ! -x "$cache/busybox" ]; then
  download busybox-static
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/bb"
  cp "$work/bb/bin/busybox" "$cache/busybox.tmp" && mv "$cache/busybox.tmp" "$cache/busybox"
fi
echo "KERNEL=$dest/vmlinuz"
echo "SYSTEM_MAP=$dest/System.map"
echo "MODULES_DIR=$dest/modules"
echo "BUSYBOX=$cache/busybox"
echo "RELEASE=$release"
