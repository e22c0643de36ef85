#!/usr/bin/env bash
# Installs every Debian package ttvm needs to build, test and benchmark.
# Idempotent and quiet: packages already present are not touched.
set -euo pipefail

packages=(
  build-essential g++ clang clang-format lld libclang-rt-dev cmake ninja-build pkg-config
  capnproto libcapnp-dev liblz4-dev libzydis-dev libxbyak-dev
  qt6-base-dev libgl-dev xvfb xauth
  libgtest-dev libgmock-dev libbenchmark-dev
  libunicorn-dev
  libdw-dev libelf-dev
  nlohmann-json3-dev
  nasm gdb binutils
  qemu-system-x86
  python3 ccache
  cpio acpica-tools xz-utils
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${#missing[@]} package(s): ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
