#!/usr/bin/env bash
# Measures the Debian cloud kernel's boot recorded under KVM and replayed in
# the emulator (docs/kvm-recording.md, "Linux under KVM (measured)"): builds
# the linux tests' initramfs, then runs scripts/kvm_linux_vm.sh inside the
# nested VM of scripts/nested_kvm.sh, which records the boot with and without
# stop points (the default; --no-kvm-stop-points) and runs `ttvm verify` on each trace. Not part of CI: a
# run takes 3-6 minutes on the 2-core machine.
#
# usage: kvm_linux.sh TTVM [RECORD_TIMEOUT_S] [VERIFY_TIMEOUT_S] [EXTRA_APPEND] [MAX_EXITS] [RECORD_ARGS]
#   e.g. scripts/kvm_linux.sh build/release/cli/ttvm 60 60
#        scripts/kvm_linux.sh build/release/cli/ttvm 45 100 "nokaslr clearcpuid=rdrand,rdseed" 10000
#        scripts/kvm_linux.sh build/release/cli/ttvm 45 100 "" 10000 "--cpuid-hide all"
set -euo pipefail
ttvm=$(realpath "${1:?usage: kvm_linux.sh TTVM [RECORD_TIMEOUT_S] [VERIFY_TIMEOUT_S] [EXTRA_APPEND] [MAX_EXITS] [RECORD_ARGS]}")
rt=${2:-60}
vt=${3:-60}
here=$(cd "$(dirname "$0")" && pwd)
fetched=$("$here/../tests/linux/fetch_debian_kernel.sh" cloud) || exit $?
eval "$fetched"
work=$(mktemp -d "${TMPDIR:-/tmp}/ttvm-kvm-linux.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$here/../tests/linux/make_initramfs.sh" "$BUSYBOX" "$MODULES_DIR" "$work/initrd-cloud.gz"
# Two recordings and two replays, each bounded, plus the VM's boot.
"$here/nested_kvm.sh" --timeout $((2 * (rt + vt) + 120)) --mem 1536 --file "$ttvm" \
  --file "$KERNEL" --file "$work/initrd-cloud.gz" -- "$here/kvm_linux_vm.sh" "$ttvm" "$KERNEL" \
  "$work/initrd-cloud.gz" "$rt" "$vt" "${4:-}" "${5:-}" "${6:-}"
