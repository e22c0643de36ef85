#!/bin/sh
# ctest -L kvm (kvm.record): `ttvm record --backend kvm` on the recorder's
# test guests, run inside the nested VM (scripts/nested_kvm.sh) by busybox sh.
# Each guest must end as under the emulator (exit status, serial output, end
# reason), the trace must say backend kvm with events in exit numbers, and
# every device answer must be in it. Prints the exit rate of an I/O-bound
# guest with and without a trace.
#
# usage: record_kvm.sh TTVM REC_GUEST_DIR
T=${1:?usage: record_kvm.sh TTVM REC_GUEST_DIR}
G=${2:?usage: record_kvm.sh TTVM REC_GUEST_DIR}
W=/tmp/kvm-record
mkdir -p $W && cd $W || exit 1
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# record NAME WANT_STATUS WANT_END [ARGS...]: records NAME.elf under KVM.
record() {
  name=$1 want=$2 end=$3
  shift 3
  $T record --backend kvm -o $W/$name.ttvm "$@" $G/$name.elf >$W/$name.out 2>$W/$name.err </dev/null
  rc=$?
  [ $rc -eq "$want" ] || { fail "$name: status $rc, want $want"; sed 's/^/  | /' $W/$name.err; return; }
  $T info $W/$name.ttvm >$W/$name.info 2>&1 || { fail "$name: ttvm info failed"; sed 's/^/  | /' $W/$name.info; return; }
  grep -q "backend kvm" $W/$name.info || fail "$name: the trace header does not say backend kvm"
  grep -q "^end        $end" $W/$name.info || { fail "$name: end is not '$end'"; grep "^end" $W/$name.info; }
  grep -q "exits/s, KVM" $W/$name.err || fail "$name: the summary does not count exits"
  echo "ok: $name (status $rc, $(grep -o 'exits .*KVM)' $W/$name.err))"
}

record rec_exit 67 "exit-device (status 33)"
[ "$(cat $W/rec_exit.out)" = "hello from rec_exit" ] || fail "rec_exit: serial output '$(cat $W/rec_exit.out)'"
# Every byte the guest wrote to the UART is an answer the trace holds.
grep -q "PortOut" $W/rec_exit.info || fail "rec_exit: the trace holds no port writes"
record rec_panic 6 "panic"
record rec_shutdown 0 "shutdown"
# The PIT's IRQ 0 through the 8259, taken while the guest halts: the
# interrupts are injected by ttvm (KVM has no irqchip here). The guest's own
# TSC check fails under KVM (RDTSC is the host's: status 3, not 1).
record rec_timer 3 "exit-device (status 1)"
[ "$(cat $W/rec_timer.out)" = "5 timer ticks" ] || fail "rec_timer: serial output '$(cat $W/rec_timer.out)'"
grep -q "Interrupt  *5" $W/rec_timer.info || { fail "rec_timer: not 5 interrupts in the trace"; grep Interrupt $W/rec_timer.info; }
# A guest that never exits: --timeout still ends it (the vCPU is kicked out).
record rec_cpu 124 "timeout" --timeout 0.5
# Exit rate, I/O-bound (20,000 port accesses), with and without the trace.
$T record --backend kvm --max-steps 20000 -o $W/io.ttvm $G/rec_io.elf >/dev/null 2>$W/io.err </dev/null
$T record --backend kvm --max-steps 20000 --no-trace $G/rec_io.elf >/dev/null 2>$W/io0.err </dev/null
grep -q "exits    20000" $W/io.err || { fail "rec_io: not 20000 exits"; cat $W/io.err; }
echo "rec_io traced:   $(grep -o 'exits .*KVM)' $W/io.err)"
echo "rec_io no trace: $(grep -o 'exits .*KVM)' $W/io0.err)"
# auto picks KVM here and says so.
$T record --max-steps 10 --no-trace $G/rec_exit.elf >/dev/null 2>$W/auto.err </dev/null
grep -q "backend: kvm" $W/auto.err || { fail "auto did not choose kvm"; cat $W/auto.err; }
echo "failures: $failures"
[ $failures -eq 0 ]
