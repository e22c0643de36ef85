#!/bin/sh
# The inside half of scripts/kvm_linux.sh (not a CTest, not in CI): records the Debian cloud
# kernel's boot under KVM inside the nested VM (scripts/nested_kvm.sh runs
# this under busybox sh), once with time following exits only (--no-kvm-stop-points) and once
# with stop points (the default), each bounded by --timeout, then replays each trace with
# `ttvm verify` (bounded too). A measurement, not a pass/fail check of the
# boot: it prints the end reason, the exit count, the last serial lines
# reached and verify's verdict (the first divergence or refusal, with its
# message), and fails only when ttvm itself cannot run (no trace written).
#
# usage: kvm_linux_vm.sh TTVM KERNEL INITRD [RECORD_TIMEOUT_S] [VERIFY_TIMEOUT_S] [EXTRA_APPEND] [MAX_EXITS] [RECORD_ARGS]
#   EXTRA_APPEND: more kernel parameters, e.g. "nokaslr" (the decompressor's
#   KASLR reads RDRAND, which KVM does not trap).
#   MAX_EXITS: end the recording after that many exits (--max-steps), so
#   that the replay inside the VM (emulator under QEMU TCG) can finish.
#   RECORD_ARGS: more `ttvm record` options for both runs, e.g.
#   "--cpuid-hide all" (issue 13.3: what the kernel does without TSC, RDRAND...).
T=${1:?usage: kvm_linux_vm.sh TTVM KERNEL INITRD [RECORD_TIMEOUT_S] [VERIFY_TIMEOUT_S] [EXTRA_APPEND] [MAX_EXITS] [RECORD_ARGS]}
K=${2:?}
I=${3:?}
RT=${4:-60}
VT=${5:-60}
A="console=ttyS0 panic=0${6:+ $6}"
M=${7:+--max-steps $7}
R=${8:-}
W=/tmp/kvm-linux
mkdir -p $W && cd $W || exit 1
printf 'uname -r\npoweroff -f\n' >$W/input
failures=0

# run NAME [ARGS...]: records the boot under KVM, then verifies the trace.
run() {
  name=$1
  shift
  echo "== $name: ttvm record --backend kvm --ram 256M --append '$A' --timeout $RT $M $R $*"
  $T record --backend kvm --ram 256M --kernel $K --initrd $I \
    --append "$A" --serial-input $W/input \
    --start-clock 1700000000 --timeout $RT $M -v $R -o $W/$name.ttvm "$@" \
    >$W/$name.serial 2>$W/$name.err </dev/null
  echo "== $name: record status $?"
  sed 's/^/  | /' $W/$name.err | tail -n 16
  [ -f $W/$name.ttvm ] || { echo "FAIL: $name: no trace"; failures=$((failures + 1)); return; }
  echo "== $name: serial bytes $(wc -c <$W/$name.serial), last lines:"
  tr -d '\r' <$W/$name.serial | grep -v '^$' | tail -n 8 | sed 's/^/  > /'
  echo "== $name: what the kernel chose for time and randomness:"
  tr -d '\r' <$W/$name.serial | grep -iE 'clocksource|tsc|hpet|pm.timer|random|rdrand|x2apic|microcode' |
    head -n 20 | sed 's/^/  > /'
  $T info $W/$name.ttvm 2>&1 | grep -E '^(backend|end|steps|events|final|cpu model)' | sed 's/^/  i /'
  echo "== $name: ttvm verify (timeout $VT s)"
  start=$(date +%s)
  timeout $VT $T verify $W/$name.ttvm >$W/$name.verify 2>&1
  echo "== $name: verify status $? after $(($(date +%s) - start)) s"
  tail -n 20 $W/$name.verify | sed 's/^/  v /'
}

run exits --no-kvm-stop-points
run stops
[ $failures -eq 0 ]
