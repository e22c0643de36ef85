#!/bin/sh
# ctest -L kvm (kvm.nondeterminism): what KVM lets a guest read without an
# exit (docs/kvm-recording.md, "What KVM does not trap"), inside the nested
# VM (scripts/nested_kvm.sh) under busybox sh. rec_kvm_nondet prints which
# of TSC, RDTSCP, RDRAND, RDSEED, RDPID its CPUID shows, then executes the
# instruction its serial input names. Recorded under KVM with and without
# `--cpuid-hide`:
#  - the guest sees exactly the bits the trace's model shows;
#  - with nothing executed, `ttvm verify` replays the trace;
#  - RDRAND and RDTSC run anyway when hidden (no exit: SVM has no intercept
#    for either), and `ttvm verify` stops at the instruction, named with its
#    step, disassembly and address, saying CPUID hid it;
#  - RDTSCP and RDPID hidden: what the nested CPU does is printed; the
#    emulator raises #UD, and the replay names the instruction where KVM
#    did not;
#  - RDMSR/WRMSR that KVM would answer itself exit to ttvm (the model's
#    microcode revision, the machine's x2APIC) and replay exactly.
#
# usage: nondet_kvm.sh TTVM REC_GUEST_DIR
T=${1:?usage: nondet_kvm.sh TTVM REC_GUEST_DIR}
G=${2:?usage: nondet_kvm.sh TTVM REC_GUEST_DIR}
W=/tmp/kvm-nondet
mkdir -p $W && cd $W || exit 1
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# run NAME COMMAND WANT_STATUS [RECORD ARGS...]: records rec_kvm_nondet under
# KVM with COMMAND as its serial input (WANT_STATUS -: any status), then
# verifies the trace (status in $W/NAME.vrc, output in $W/NAME.verify).
run() {
  name=$1 cmd=$2 want=$3
  shift 3
  printf '%s' "$cmd" >$W/$name.in
  $T record --backend kvm --serial-input $W/$name.in -o $W/$name.ttvm "$@" $G/rec_kvm_nondet.elf \
    >$W/$name.out 2>$W/$name.err </dev/null
  rc=$?
  [ "$want" = - ] || [ $rc -eq "$want" ] || { fail "$name: status $rc, want $want"; sed 's/^/  | /' $W/$name.err; }
  timeout 60 $T verify $W/$name.ttvm >$W/$name.verify 2>&1
  echo $? >$W/$name.vrc
  echo "$name: $(tr '\n' '|' <$W/$name.out), verify status $(cat $W/$name.vrc)"
}
# want_out NAME TEXT: the guest's serial output is TEXT (lines joined by |).
want_out() {
  [ "$(tr '\n' '|' <$W/$1.out)" = "$2" ] || fail "$1: serial output '$(tr '\n' '|' <$W/$1.out)', want '$2'"
}
# verifies NAME: the replay reached KVM's end state.
verifies() {
  [ "$(cat $W/$1.vrc)" = 0 ] || { fail "$1: ttvm verify failed"; sed 's/^/  | /' $W/$1.verify; }
}
# refuses NAME REGEX: the replay stopped with a message matching REGEX.
refuses() {
  if [ "$(cat $W/$1.vrc)" = 0 ] || ! grep -Eq "$2" $W/$1.verify; then
    fail "$1: verify did not stop with /$2/"
    sed 's/^/  | /' $W/$1.verify
  else
    echo "  $(grep -Eo "$2.*" $W/$1.verify | head -1)"
  fi
}

# The model as it is: TSC, RDTSCP and RDRAND shown (RDSEED, RDPID never are).
run model n 1
want_out model "cpuid tsc=1 rdtscp=1 rdrand=1 rdseed=0 rdpid=0|done|"
verifies model
# Everything hidden: the guest is told so, and the trace's model says it.
run hidden n 1 --cpuid-hide all
want_out hidden "cpuid tsc=0 rdtscp=0 rdrand=0 rdseed=0 rdpid=0|done|"
verifies hidden
$T info $W/hidden.ttvm 2>&1 | grep -q "cpu model  ttvm-x86-64 v1 -tsc -rdtscp -rdrand " ||
  { fail "hidden: the trace's model does not name the hidden features"; $T info $W/hidden.ttvm | grep "cpu model"; }
# RDRAND hidden and executed anyway: KVM on SVM runs it (host value, CF=1).
run rdrand r 1 --cpuid-hide rdrand
want_out rdrand "cpuid tsc=1 rdtscp=1 rdrand=0 rdseed=0 rdpid=0|rdrand cf=1|done|"
refuses rdrand "step [0-9]+: rdrand eax at 0x[0-9a-f]+: value not recorded under KVM \(CPUID hid RDRAND; the guest executed it anyway[;)]"
# The same shown: the replay says KVM let the guest read the host's generator.
run rdrand_shown r 1
refuses rdrand_shown "step [0-9]+: rdrand eax at 0x[0-9a-f]+: value not recorded under KVM \(KVM lets the guest read the host's generator"
# RDTSC with the TSC hidden: no exit either.
run rdtsc t 1 --cpuid-hide tsc
want_out rdtsc "cpuid tsc=0 rdtscp=1 rdrand=1 rdseed=0 rdpid=0|rdtsc|done|"
refuses rdtsc "step [0-9]+: rdtsc at 0x[0-9a-f]+: value not recorded under KVM \(CPUID hid the TSC; the guest executed it anyway[;)]"
# RDTSCP and RDPID hidden: KVM on AMD hardware intercepts RDTSCP (#UD), not
# RDPID; what this nested CPU does is printed. The emulator raises #UD for
# both (the model hides them): where the guest took #UD under KVM too the
# replay is exact; where it executed the instruction, the replay's first
# divergence names it.
for insn in rdtscp:p rdpid:d; do
  name=${insn%:*}
  run $name ${insn#*:} - --cpuid-hide all
  if grep -q "#UD" $W/$name.out; then
    verifies $name
  else
    refuses $name "before that, at step [0-9]+: $name[ a-z]* at 0x[0-9a-f]+: the emulator raised #UD \(CPUID hid"
  fi
done
# MSRs KVM would answer itself leave it (KVM_CAP_X86_USER_SPACE_MSR and the
# filter): the microcode revision is the model's (KVM's own is 1), the
# x2APIC registers (which KVM refuses without an in-kernel LAPIC) are the
# machine's, in the trace; the replay matches both.
run ucode m 1 -v
want_out ucode "cpuid tsc=1 rdtscp=1 rdrand=1 rdseed=0 rdpid=0|ucode 0x00000021|done|"
verifies ucode
grep -Eq "kvm .* [1-9][0-9]* MSR" $W/ucode.err || { fail "ucode: no MSR exit counted"; grep "kvm " $W/ucode.err; }
grep -E "^  (kvm|msrs|tsc) " $W/ucode.err
run x2apic x 1
grep -Eq "^x2apic version 0x000[0-9a-f]{5}$" $W/x2apic.out || fail "x2apic: serial output '$(tr '\n' '|' <$W/x2apic.out)'"
verifies x2apic
$T info $W/x2apic.ttvm | grep -Eq "MsrRead +[1-9]" || fail "x2apic: the trace holds no MSR read"
echo "failures: $failures"
[ $failures -eq 0 ]
