#!/bin/sh
# ctest -L kvm (kvm.record): `ttvm record --backend kvm` on the recorder's
# test guests and the demo, run inside the nested VM (scripts/nested_kvm.sh)
# by busybox sh. Each guest must end as under the emulator (exit status,
# serial output, end reason), the trace must say backend kvm with events in
# exit numbers, and every device answer must be in it. Then `ttvm verify`
# replays each trace in the emulator (steps assigned from the exit order):
# the same accesses with the same values (so the same serial output), the
# state digests taken under KVM, and KVM's final state. Prints the exit rate
# of an I/O-bound guest with and without a trace, and the replay's time.
#
# usage: record_kvm.sh TTVM REC_GUEST_DIR DEMO_ELF
T=${1:?usage: record_kvm.sh TTVM REC_GUEST_DIR DEMO_ELF}
G=${2:?usage: record_kvm.sh TTVM REC_GUEST_DIR DEMO_ELF}
DEMO=${3:?usage: record_kvm.sh TTVM REC_GUEST_DIR DEMO_ELF}
W=/tmp/kvm-record
mkdir -p $W && cd $W || exit 1
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# bounded CMD...: runs CMD (its redirections given by the caller) with 60 s
# to finish. A recording that hangs inside the VM is otherwise only seen as
# the whole VM's --timeout, with nothing to tell a hung ttvm from a wedged
# VM; this names it, with where each of its threads waits, and kills it.
bounded() {
  "$@" &
  bpid=$!
  ticks=0
  while kill -0 $bpid 2>/dev/null; do
    if [ $ticks -ge 600 ]; then
      echo "FAIL: hung for 60 s: $*" >&2
      for t in /proc/$bpid/task/*; do
        echo "  thread ${t##*/}: $(cut -d' ' -f3 $t/stat 2>/dev/null) in $(cat $t/wchan 2>/dev/null)" >&2
      done
      kill -9 $bpid
      wait $bpid
      return 124
    fi
    sleep 0.1
    ticks=$((ticks + 1))
  done
  wait $bpid
}

# record NAME WANT_STATUS WANT_END [ARGS...]: records NAME.elf under KVM.
record() {
  name=$1 want=$2 end=$3
  shift 3
  bounded $T record --backend kvm -o $W/$name.ttvm "$@" $G/$name.elf >$W/$name.out 2>$W/$name.err </dev/null
  rc=$?
  [ $rc -eq "$want" ] || { fail "$name: status $rc, want $want"; sed 's/^/  | /' $W/$name.err; return; }
  $T info $W/$name.ttvm >$W/$name.info 2>&1 || { fail "$name: ttvm info failed"; sed 's/^/  | /' $W/$name.info; return; }
  grep -q "backend kvm" $W/$name.info || fail "$name: the trace header does not say backend kvm"
  grep -q "^end        $end" $W/$name.info || { fail "$name: end is not '$end'"; grep "^end" $W/$name.info; }
  grep -q "exits/s, KVM" $W/$name.err || fail "$name: the summary does not count exits"
  echo "ok: $name (status $rc, $(grep -o 'exits .*KVM)' $W/$name.err))"
}

# verify NAME: the emulator replays NAME.ttvm to KVM's end state.
verify() {
  if timeout 60 $T verify $W/$1.ttvm >$W/$1.verify 2>&1; then
    echo "ok: $1 verifies: $(grep -o '[0-9]* exits are [0-9]* emulator steps[^,]*' $W/$1.verify), $(grep -o '[0-9]* state digests' $W/$1.verify)"
  else
    fail "$1: ttvm verify failed"
    sed 's/^/  | /' $W/$1.verify
  fi
}

record rec_exit 67 "exit-device (status 33)"
[ "$(cat $W/rec_exit.out)" = "hello from rec_exit" ] || fail "rec_exit: serial output '$(cat $W/rec_exit.out)'"
# Every byte the guest wrote to the UART is an answer the trace holds.
grep -q "PortOut" $W/rec_exit.info || fail "rec_exit: the trace holds no port writes"
verify rec_exit
# ttvm replay opens it the same way: the registers at the end, the note.
$T replay --regs $W/rec_exit.ttvm >$W/rec_exit.replay 2>&1 || fail "rec_exit: ttvm replay failed"
grep -q "step 255" $W/rec_exit.replay && grep -q "41 exits are 255 emulator steps" $W/rec_exit.replay ||
  { fail "rec_exit: ttvm replay --regs did not reach step 255 with the note"; cat $W/rec_exit.replay; }
ls /tmp/ttvm-steps-* >/dev/null 2>&1 && fail "a stepped trace was left in /tmp"
record rec_panic 6 "panic"
verify rec_panic
record rec_shutdown 0 "shutdown"
verify rec_shutdown
# The PIT's IRQ 0 through the 8259, taken while the guest halts: the
# interrupts are injected by ttvm (KVM has no irqchip here). The guest's own
# TSC check fails under KVM (RDTSC is the host's: status 3, not 1).
record rec_timer 3 "exit-device (status 1)"
[ "$(cat $W/rec_timer.out)" = "5 timer ticks" ] || fail "rec_timer: serial output '$(cat $W/rec_timer.out)'"
# Virtual time follows the wall time the guest runs (stop points, the
# default): a sixth tick may fall due while it prints, after the five it
# counted.
grep -Eq "Interrupt +([5-9]|[1-9][0-9]+)\$" $W/rec_timer.info || { fail "rec_timer: fewer than 5 interrupts in the trace"; grep Interrupt $W/rec_timer.info; }
# Its RDTSC is not in a KVM trace: the replay says so at the instruction.
$T verify $W/rec_timer.ttvm >$W/rec_timer.verify 2>&1 && fail "rec_timer: verify passed without the TSC values"
grep -Eq "step [0-9]+: rdtsc at 0x[0-9a-f]+: value not recorded under KVM \(KVM lets the guest read the host's TSC" $W/rec_timer.verify ||
  { fail "rec_timer: verify did not name RDTSC at its instruction"; cat $W/rec_timer.verify; }
echo "ok: rec_timer's replay stops at RDTSC: $(grep -Eo 'step [0-9]+: rdtsc.*' $W/rec_timer.verify | head -1)"
# Interrupts at I/O exits and at interrupt windows (IF=0 while a tick falls
# due), REP INSB batched by KVM: the replay must take each where KVM did.
record rec_kvm_irq 1 "exit-device (status 0)" -v --digest-interval 500
[ "$(cat $W/rec_kvm_irq.out)" = "10 ticks, string input ok" ] ||
  fail "rec_kvm_irq: serial output '$(cat $W/rec_kvm_irq.out)'"
grep -Eq "Interrupt +[1-9][0-9]" $W/rec_kvm_irq.info || { fail "rec_kvm_irq: not 10 interrupts"; grep Interrupt $W/rec_kvm_irq.info; }
grep -Eq " [1-9][0-9]* interrupt windows" $W/rec_kvm_irq.err || { fail "rec_kvm_irq: no interrupt window opened"; grep "kvm " $W/rec_kvm_irq.err; }
grep "kvm " $W/rec_kvm_irq.err | sed 's/^ */  /'
verify rec_kvm_irq
# Between exits (--kvm-stop-points): a guest that spins on memory for PIT
# ticks (no exit while it waits; the state repeats at every turn of the
# loop). Each tick is injected where the recorder kicked the vCPU out (a
# stop point), or at the interrupt window after it; the replay must find
# every stop point by its state.
record rec_kvm_spin 1 "exit-device (status 0)" -v --kvm-stop-points
[ "$(cat $W/rec_kvm_spin.out)" = "5 ticks while spinning" ] ||
  fail "rec_kvm_spin: serial output '$(cat $W/rec_kvm_spin.out)'"
grep -Eq " [1-9][0-9]* stop points" $W/rec_kvm_spin.err || { fail "rec_kvm_spin: no stop point"; grep "kvm " $W/rec_kvm_spin.err; }
grep -E "kvm |pmu " $W/rec_kvm_spin.err | sed 's/^ */  /'
# The PMU probe runs and says what it found (the nested VM has no PMU).
grep -q "pmu      none (perf_event_open" $W/rec_kvm_spin.err || { fail "rec_kvm_spin: no PMU probe result"; grep pmu $W/rec_kvm_spin.err; }
verify rec_kvm_spin
grep -Eq "[1-9][0-9]* stop points found" $W/rec_kvm_spin.verify || fail "rec_kvm_spin: the replay found no stop point"
# A guest that computes between ticks in a loop whose registers repeat
# (only memory changes), with paging on (the walks set accessed and dirty
# bits) and a CLI/STI section per turn (ticks fall due while IF=0: the
# window opens after STI). Stop points are the default: each tick lands at
# one, stepped past the STI's shadow where the nested VM opens the window
# inside it; the replay must find every one and KVM's final state.
record rec_kvm_compute 1 "exit-device (status 0)" -v
[ "$(cat $W/rec_kvm_compute.out)" = "5 ticks while computing" ] ||
  fail "rec_kvm_compute: serial output '$(cat $W/rec_kvm_compute.out)'"
grep -Eq " [1-9][0-9]* stop points" $W/rec_kvm_compute.err || { fail "rec_kvm_compute: no stop point"; grep "kvm " $W/rec_kvm_compute.err; }
grep "kvm " $W/rec_kvm_compute.err | sed 's/^ */  /'
verify rec_kvm_compute
grep -Eq "[1-9][0-9]* stop points found" $W/rec_kvm_compute.verify || fail "rec_kvm_compute: the replay found no stop point"
# Without stop points (--no-kvm-stop-points) time follows exits: the spin
# guest, which makes none while it waits, never gets a tick.
record rec_kvm_spin 124 "timeout" --no-kvm-stop-points --timeout 1 -v
grep -q " 0 stop points" $W/rec_kvm_spin.err || { fail "rec_kvm_spin: stop points without them"; grep "kvm " $W/rec_kvm_spin.err; }
# The demo: 64-bit, the local APIC's timer and MMIO, a use-after-free.

bounded $T record --backend kvm -v --digest-interval 100 -o $W/demo.ttvm $DEMO >$W/demo.out 2>$W/demo.err </dev/null
rc=$?
[ $rc -eq 6 ] || fail "demo: status $rc, want 6 (the use-after-free panics)"
grep -q "PANIC: " $W/demo.out || fail "demo: no panic line on the console"
echo "demo: status $rc, $(grep -o 'exits .*KVM)' $W/demo.err), $(grep -c . $W/demo.out) lines of output"
grep "kvm " $W/demo.err | sed 's/^ */  /'
verify demo
# The 64-bit demo's hidden segment state as SVM reports it (accessed bits,
# null FS/GS) is normalized by KvmBackend: its digests match the emulator's.
grep -q " [1-9][0-9]* state digests" $W/demo.verify || fail "demo: no state digest was checked"
# KVM's internal error (code fetched from outside every memory slot) ends
# the run as internal-error with KVM's words and the state, the trace
# finalized (a footer: `ttvm info` reads the end without recovering it).
record rec_mmio_fetch 70 "internal-error"
[ "$(cat $W/rec_mmio_fetch.out)" = "jumping into the MMIO hole" ] ||
  fail "rec_mmio_fetch: serial output '$(cat $W/rec_mmio_fetch.out)'"
grep -q "KVM internal error (suberror 1" $W/rec_mmio_fetch.info ||
  { fail "rec_mmio_fetch: the footer does not give KVM's internal error"; grep -A1 "^end" $W/rec_mmio_fetch.info; }
grep -q "final rip 0xf0000000" $W/rec_mmio_fetch.info ||
  { fail "rec_mmio_fetch: the final state is not where the fetch failed"; grep "^end" $W/rec_mmio_fetch.info; }
grep -q "recovered" $W/rec_mmio_fetch.info && fail "rec_mmio_fetch: the trace had to be recovered"
echo "  $(grep -A1 '^end' $W/rec_mmio_fetch.info | tail -1 | sed 's/^ *//')"
# A guest that never exits: --timeout still ends it (the vCPU is kicked out).
record rec_cpu 124 "timeout" --timeout 0.5
# Exit rate, I/O-bound (20,000 port accesses), with and without the trace.
bounded $T record --backend kvm --max-steps 20000 --digest-interval 100 -o $W/io.ttvm $G/rec_io.elf >/dev/null 2>$W/io.err </dev/null
bounded $T record --backend kvm --max-steps 20000 --no-trace $G/rec_io.elf >/dev/null 2>$W/io0.err </dev/null
grep -q "exits    20000" $W/io.err || { fail "rec_io: not 20000 exits"; cat $W/io.err; }
echo "rec_io traced:   $(grep -o 'exits .*KVM)' $W/io.err)"
echo "rec_io no trace: $(grep -o 'exits .*KVM)' $W/io0.err)"
t0=$(cut -d' ' -f1 /proc/uptime)
verify io
t1=$(cut -d' ' -f1 /proc/uptime)
echo "rec_io replay (assigning steps + verify): $(echo "$t1 $t0" | awk '{printf "%.2f", $1 - $2}') s"
# auto picks KVM here and says so.
bounded $T record --max-steps 10 --no-trace $G/rec_exit.elf >/dev/null 2>$W/auto.err </dev/null
grep -q "backend: kvm" $W/auto.err || { fail "auto did not choose kvm"; cat $W/auto.err; }
echo "failures: $failures"
[ $failures -eq 0 ]
