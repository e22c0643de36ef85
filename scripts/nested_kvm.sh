#!/usr/bin/env bash
# Runs a command inside a nested VM that has a working /dev/kvm, so that ttvm's
# KVM code is tested for real on a host without one.
#
# QEMU's TCG with `-cpu max` emulates AMD SVM; a stock Debian cloud kernel
# (fetched into ${TTVM_CACHE:-$HOME/.cache/ttvm} by
# tests/linux/fetch_debian_kernel.sh, never installed) loads irqbypass, kvm and
# kvm-amd from a small initramfs and then has /dev/kvm. The initramfs holds
# busybox, those modules, the command's executable and every --file given, each
# at its absolute host path, plus the shared libraries they need (ldd), so
# paths compiled into test binaries hold inside the VM too. Its /init runs the
# command in the host's current directory (when it is in the initramfs), with
# TTVM_NESTED_KVM=1 in its environment, and prints a sentinel line with the
# exit status; QEMU always exits 0, so the
# status is taken from that line.
#
# usage: nested_kvm.sh [--timeout S] [--mem MiB] [--file PATH]... [--keep DIR] -- COMMAND [ARG]...
#   --timeout S  wall-clock limit for the whole VM run (default 120 s)
#   --mem MiB    guest RAM (default 1024)
#   --file PATH  a file or directory to put in the initramfs at PATH (repeatable)
#   --keep DIR   keep the initramfs and the console log in DIR
# Exit status: the command's; 77 (skip, reason printed) when QEMU, the kernel
# packages or /dev/kvm inside the VM are not to be had; 1 with the console's
# last lines when the VM does not come up, hangs or loses the sentinel.
set -euo pipefail

timeout_s=120
mem=1024
keep=""
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --mem) mem=${2:?}; shift 2 ;;
    --file) files+=("$(realpath "${2:?}")"); shift 2 ;;
    --keep) keep=${2:?}; shift 2 ;;
    --) shift; break ;;
    *) echo "nested_kvm.sh: unknown option '$1' (usage: nested_kvm.sh [options] -- COMMAND...)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "nested_kvm.sh: no command given (usage: nested_kvm.sh [options] -- COMMAND...)" >&2; exit 2; }

skip() {
  echo "SKIP: $*"
  exit 77
}
here=$(cd "$(dirname "$0")" && pwd)
qemu=${QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || skip "$qemu not found (scripts/setup.sh installs qemu-system-x86)"
for tool in cpio ldd; do
  command -v "$tool" >/dev/null || skip "$tool not found (scripts/setup.sh installs it)"
done

fetched=$("$here/../tests/linux/fetch_debian_kernel.sh" cloud) || {
  rc=$?
  [ $rc -eq 77 ] && skip "the Debian cloud kernel could not be fetched (see above)"
  exit $rc
}
eval "$fetched"
for m in irqbypass kvm kvm-amd; do
  [ -f "$MODULES_DIR/$m.ko" ] || { echo "nested_kvm.sh: $MODULES_DIR/$m.ko missing after the fetch" >&2; exit 1; }
done

exe=$1
if [[ "$exe" != */* ]]; then
  exe=$(command -v "$exe") || { echo "nested_kvm.sh: command '$1' not found" >&2; exit 2; }
fi
exe=$(realpath "$exe")
shift

work=$(mktemp -d "${TMPDIR:-/tmp}/ttvm-nested.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
for m in irqbypass kvm kvm-amd; do cp "$MODULES_DIR/$m.ko" "$root/lib/modules/"; done

# Copies PATH (a file, or a directory with its contents) to the same path
# inside the initramfs, and every shared library an ELF among them needs.
put() {
  local path=$1
  mkdir -p "$root$(dirname "$path")"
  # Into the parent: a folder already there (the command's own, put first)
  # is merged rather than given a copy of the folder inside it.
  cp -a "$path" "$root$(dirname "$path")/"
  local f lib
  while IFS= read -r f; do
    # Debug info only slows the boot (the kernel unpacks every byte).
    strip --strip-debug "$root$f" 2>/dev/null || true
    # ldd lists "name => /path (addr)" and the loader as "/path (addr)".
    for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true); do
      [ -e "$root$lib" ] && continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done < <(find "$path" -type f -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print)
}
put "$exe"
for f in "${files[@]}"; do put "$f"; done

cmd=$(printf '%q ' "$exe" "$@")
cwd=$(pwd)
# The markers are split in the script text so that a console echo of /init
# itself (never expected, but cheap to rule out) cannot fake them.
# kvm is loaded with force_emulation_prefix=1 (a kvm.ko parameter of 6.1,
# 0 by default): KVM then emulates an instruction after ud2; "kvm" as ttvm's
# emulator does, so compat/fep's guest behaves the same under both.
cat >"$root/init" <<INIT
#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
m=ttvm-; m=\${m}nested
echo  # the firmware's escape codes leave the console mid-line
for k in irqbypass kvm kvm-amd; do
  p=""
  [ \$k = kvm ] && p=force_emulation_prefix=1
  out=\$(insmod /lib/modules/\$k.ko \$p 2>&1) || echo "\$m: insmod \$k: \$out"
done
if [ ! -c /dev/kvm ]; then
  why="no /dev/kvm after loading kvm-amd"
  grep -qw svm /proc/cpuinfo || why="\$why (the virtual CPU shows no svm flag)"
  dmesg | grep -i -E 'kvm|svm' | tail -3
  echo "\$m-skip: \$why"
  poweroff -f
fi
echo "\$m: /dev/kvm ready, \$(grep -c ^processor /proc/cpuinfo) CPU, kernel \$(uname -r), uptime \$(cut -d' ' -f1 /proc/uptime) s"
[ -d "$cwd" ] && cd "$cwd"
# Tells tests that /dev/kvm is promised here: not opening it is a failure.
export TTVM_NESTED_KVM=1
$cmd
echo "\$m-exit: \$?"
poweroff -f
INIT
chmod +x "$root/init"
initrd=$work/initrd.cpio
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --owner 0:0 --quiet) >"$initrd"

log=$work/console.log
start=$(date +%s%N)
# -no-reboot: a kernel panic (panic=-1 reboots at once) ends QEMU instead of
# looping. Exit status of QEMU is 0 either way; timeout's 124 marks a hang.
# -vgif: with virtual GIF shown, kvm-amd enables it in its VMCBs, and QEMU
# 7.2's TCG then now and then leaves the VM's own CPU halted for good (seen
# from its monitor: RFLAGS.IF set, the LAPIC timer's vector 236 pending in
# IRR, an NMI from the monitor not taken either, so GIF stayed clear): about
# one `ttvm record --backend kvm` in 5-9 of rec_io's 20,000 exits wedged the
# whole VM (CI's kvm.record ran into its --timeout). Without VGIF, 30 such
# recordings in a row ran clean. ttvm's guests never see SVM, so nothing
# tested here needs it.
#
# The same wedge was still seen (rarely, under host load) without VGIF. So
# the run is watched: when QEMU has used no CPU for 10 s
# (TTVM_NESTED_QUIET_S, for the harness's own test), its monitor is
# asked for the VM's CPU, and a CPU halted with an interrupt pending in its
# LAPIC's IRR that it never takes (the signature above: QEMU's, not the
# command's, which runs in the VM's guests or its userspace, never with
# interrupts blocked in the VM's kernel) ends the run; the harness then
# boots the VM once more and says so. Any other quiet VM runs on to the
# --timeout as before.
monitor=$work/monitor.sock
quiet_s=${TTVM_NESTED_QUIET_S:-10}
# vm_state: the monitor's answers to `info registers` and `info lapic`.
vm_state() {
  python3 - "$monitor" <<'PY' 2>/dev/null
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
def drain():
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except OSError:
        pass
    return out.decode(errors="replace")
drain()
for c in ("info registers", "info lapic"):
    s.sendall((c + "\n").encode())
    time.sleep(0.3)
    print(drain())
PY
}
# qemu_cpu PID: the user+system CPU ticks of QEMU (the child of timeout PID).
qemu_cpu() {
  local q
  q=$(pgrep -P "$1" | head -1)
  [ -n "$q" ] && awk '{print $14 + $15}' "/proc/$q/stat" 2>/dev/null
}
run_vm() {
  rm -f "$monitor"
  timeout --kill-after=5 "$timeout_s" "$qemu" -accel tcg -cpu max,-vgif -m "$mem" -smp 1 -nographic \
    -no-reboot -nodefaults -serial stdio -monitor "unix:$monitor,server,nowait" \
    -kernel "$KERNEL" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3" </dev/null >"$log" 2>&1 &
  local tpid=$! last="" quiet=0 now state
  while kill -0 "$tpid" 2>/dev/null; do
    sleep 1
    now=$(qemu_cpu "$tpid")
    if [ -n "$now" ] && [ "$now" = "$last" ]; then quiet=$((quiet + 1)); else quiet=0; fi
    last=$now
    [ $quiet -ge "$quiet_s" ] || continue
    quiet=0
    state=$(vm_state)
    if grep -q 'HLT=1' <<<"$state" && grep -Eq '^IRR[[:space:]]+[0-9]' <<<"$state"; then
      wedged=$(grep -E '^(RIP|IRR)' <<<"$state" | tr -s ' \t\r\n' ' ')
      kill "$tpid" 2>/dev/null
      wait "$tpid"
      return 200
    fi
  done
  wait "$tpid"
}
set +e
wedged=""
run_vm
qrc=$?
if [ $qrc -eq 200 ]; then
  echo "nested_kvm.sh: the VM's CPU wedged in QEMU (halted, never taking a pending interrupt: $wedged); booting it again" >&2
  run_vm
  qrc=$?
fi
set -e
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
elapsed=$((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000)))
if [ -n "$keep" ]; then
  mkdir -p "$keep" && cp "$initrd" "$log" "$keep/"
fi

fail() {
  echo "FAIL: nested VM: $*" >&2
  echo "--- last console lines" >&2
  tail -n 40 "$log" | tr -d '\r' >&2
  exit 1
}
sed -i 's/\r$//' "$log"
[ $qrc -eq 200 ] && fail "the VM's CPU wedged in QEMU twice (halted, never taking a pending interrupt: $wedged)"
[ $qrc -eq 124 ] || [ $qrc -eq 137 ] && fail "no end after ${timeout_s} s (--timeout)"
[ $qrc -eq 0 ] || fail "$qemu exited with status $qrc"
reason=$(sed -n 's/^ttvm-nested-skip: //p' "$log" | tail -1)
[ -n "$reason" ] && skip "inside the nested VM: $reason"
grep -q 'ttvm-nested: /dev/kvm ready' "$log" || fail "the VM never reached its /init (no 'ttvm-nested: /dev/kvm ready' line)"
status=$(sed -n 's/^ttvm-nested-exit: \([0-9]*\)$/\1/p' "$log" | tail -1)
[ -n "$status" ] || fail "no 'ttvm-nested-exit: N' sentinel: the command did not finish"
# The command's output: everything between the ready line and the sentinel.
sed -n '/ttvm-nested: \/dev\/kvm ready/,/^ttvm-nested-exit: /p' "$log"
echo "nested_kvm.sh: VM run ${elapsed} s (QEMU TCG, $mem MiB), command exit status $status"
exit "$status"
