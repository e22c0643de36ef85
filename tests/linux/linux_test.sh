#!/usr/bin/env bash
# ctest -L linux: records a stock Debian 12 kernel (fetched into the cache by
# fetch_debian_kernel.sh) booting an initramfs whose /init runs the commands
# it reads from the serial console, fed by --serial-input; checks what the
# guest printed, how the run ended, and that `ttvm verify` replays the trace.
#
# usage: linux_test.sh TTVM cloud|generic boot|crash|verify-boot|verify-crash OUTDIR
#   boot:  uname -r, cat /proc/cpuinfo, an awk floating-point computation,
#          poweroff -f: the run must end as "shutdown" (exit status 0).
#   crash: echo c > /proc/sysrq-trigger: the kernel panics, pvpanic tells
#          ttvm, the run must end as "panic" (exit status 6). The trace is
#          OUTDIR/FLAVOUR-crash.ttvm (a stable path other tests build on).
#   verify-boot, verify-crash: `ttvm verify` of the trace the boot or crash
#          test wrote (a test of its own: a replay of a generic boot takes as
#          long as its recording, and together they would pass two minutes).
# Exits 77 (skip) when the package archive cannot be reached.
set -euo pipefail
ttvm=${1:?usage: linux_test.sh TTVM cloud|generic boot|crash OUTDIR}
flavour=${2:?}
mode=${3:?}
out=${4:?}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"

if [[ "$mode" == verify-* ]]; then
  name="$flavour-${mode#verify-}"
  trace="$out/$name.ttvm"
  if [ ! -f "$trace" ]; then
    echo "linux_test.sh: no $trace: the recording test ($name) skipped or failed" >&2
    exit 77
  fi
  "$ttvm" verify "$trace" >"$out/$name.verify" 2>&1 || {
    cat "$out/$name.verify" >&2
    echo "FAIL ($name): ttvm verify failed" >&2
    exit 1
  }
  sed 's/^/== verify: /' "$out/$name.verify" | head -5
  exit 0
fi

fetched=$("$here/fetch_debian_kernel.sh" "$flavour") || exit $?
eval "$fetched"
initrd="$out/initrd-$flavour.gz"
"$here/make_initramfs.sh" "$BUSYBOX" "$MODULES_DIR" "$initrd"

name="$flavour-$mode"
append="console=ttyS0 panic=0"
input="$out/$name.input"
case "$mode" in
  boot)
    cat >"$input" <<'CMDS'
uname -r
cat /proc/cpuinfo
awk 'BEGIN { e = 0; t = 1; for (n = 1; n < 20; n++) { e += t; t /= n }; x = e * 3.5 / 7 + 1 / 3; printf "awk-fp: %.6f %.4e %d\n", x, x * 1e10, int(x * 1000) }'
poweroff -f
CMDS
    want_status=0
    want_end=shutdown
    ;;
  crash)
    printf 'echo c > /proc/sysrq-trigger\n' >"$input"
    # crash_symbols_test.py names the frames from the link-time System.map.
    append="$append nokaslr"
    want_status=6
    want_end=panic
    ;;
  *) echo "linux_test.sh: mode '$mode': use boot or crash" >&2; exit 2 ;;
esac

trace="$out/$name.ttvm"
rm -f "$trace"
serial="$out/$name.serial"
log="$out/$name.log"
fail() {
  echo "FAIL ($name): $*" >&2
  echo "--- last serial lines ($serial)" >&2
  tail -n 25 "$serial" >&2 || true
  echo "--- ttvm record ($log)" >&2
  cat "$log" >&2 || true
  exit 1
}

start=$(date +%s.%N)
status=0
"$ttvm" record --kernel "$KERNEL" --initrd "$initrd" --append "$append" \
  --serial-input "$input" --start-clock 1700000000 --timeout 900 -o "$trace" \
  >"$serial" 2>"$log" || status=$?
end=$(date +%s.%N)
tr -d '\r' <"$serial" >"$serial.txt"

[ "$status" = "$want_status" ] || fail "ttvm record exited $status, expected $want_status ($want_end)"
grep -q "^ttvm record: $want_end " "$log" || fail "the run did not end as '$want_end'"
grep -q "Linux version $RELEASE " "$serial.txt" || fail "no 'Linux version $RELEASE' line"
grep -q "ttvm-init: ready ($RELEASE)" "$serial.txt" || fail "/init did not start"

if [ "$mode" = boot ]; then
  # `uname -r` printed the release on the line after its command.
  grep -A1 "^ttvm-cmd: uname -r" "$serial.txt" | grep -qx "$RELEASE" || fail "uname -r did not print $RELEASE"
  grep -q "^model name[[:space:]]*: ttvm x86-64 emulator" "$serial.txt" || fail "/proc/cpuinfo has no ttvm model name"
  flags=$(grep -m1 "^flags[[:space:]]*:" "$serial.txt") || fail "/proc/cpuinfo has no flags line"
  for f in fpu tsc cx8 apic cmov fxsr sse sse2 lm nx; do
    [[ " ${flags#*:} " == *" $f "* ]] || fail "/proc/cpuinfo flags lack $f: $flags"
  done
  expected=$(awk 'BEGIN { e = 0; t = 1; for (n = 1; n < 20; n++) { e += t; t /= n }; x = e * 3.5 / 7 + 1 / 3; printf "awk-fp: %.6f %.4e %d\n", x, x * 1e10, int(x * 1000) }')
  grep -qx "$expected" "$serial.txt" || fail "awk printed no '$expected' line"
else
  grep -q "sysrq: Trigger a crash" "$serial.txt" || fail "no sysrq crash line"
  grep -q "Kernel panic - not syncing: sysrq triggered crash" "$serial.txt" || fail "no panic line"
fi

echo "== $name: $(grep -m1 'Linux version' "$serial.txt" | cut -c1-120)"
if [ "$mode" = boot ]; then
  grep -A1 "^ttvm-cmd: uname -r" "$serial.txt" | sed 's/^/== /'
  grep -m1 "^model name" "$serial.txt" | sed 's/^/== /'
  grep "^awk-fp:" "$serial.txt" | sed 's/^/== /'
else
  grep -E "sysrq: Trigger a crash|Kernel panic - not syncing" "$serial.txt" | sed 's/^/== /'
fi
grep -E "^ttvm record:|^  steps|^  trace" "$log" | sed 's/^/== /'
awk -v a="$start" -v b="$end" 'BEGIN { printf "== ttvm record wall time %.1f s\n", b - a }'
