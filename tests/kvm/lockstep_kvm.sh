#!/bin/sh
# ctest -L kvm (kvm.lockstep_*): `ttvm lockstep` inside the nested VM on
# every guest ELF under the given folders, each for its first N
# instructions (lockstep single-steps KVM: about 700 instructions/s in the
# nested VM, so whole guests do not fit a test). A guest passes when
# lockstep reports no difference (status 0); every masked difference is
# printed with its reason. Fails on the first guest with a difference,
# printing it (instruction, fields, both states).
#
# usage: lockstep_kvm.sh TTVM N DIR...
# QEMU's TCG (the nested VM's CPU) runs AVX2 code through helpers: glibc's
# AVX2 memcmp, which the RAM comparisons use, made lockstep 1.7x slower
# there than its baseline string functions (docs/kvm-recording.md).
export GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2
T=${1:?usage: lockstep_kvm.sh TTVM N DIR...}
N=${2:?usage: lockstep_kvm.sh TTVM N DIR...}
shift 2
failures=0
guests=0
# Guests whose lockstep is known to stop, each with the words it must stop
# with (as the guest tests' QEMU_KNOWN_FAIL): a fix makes the test say so.
#  - rec_mmio_fetch jumps into the MMIO hole: KVM cannot run it at all
#    (internal error, as `record --backend kvm` reports; status 70).
#  - rec_timer reads the TSC in its PIT handler: KVM does not single-step
#    into an injected interrupt's handler (its delivery clears the TF KVM
#    steps with), runs it to the next exit, and the emulator then gets the
#    last RDTSC's value for the first (docs/kvm-recording.md, Open).
known() {
  case "$1" in
    rec_mmio_fetch.elf) echo "internal error, suberror 1" ;;
    rec_timer.elf) echo "the states differ" ;;
  esac
}
for d in "$@"; do
  for g in $(ls "$d"/*.elf 2>/dev/null | grep -v '\.elf\.elf$'); do
    guests=$((guests + 1))
    $T lockstep --ram 16M --max-steps "$N" --memory-every 1000 "$g" >/tmp/lockstep.out 2>/tmp/lockstep.err </dev/null
    rc=$?
    name=$(basename "$g")
    if [ $rc -eq 0 ] && [ -n "$(known $name)" ]; then
      echo "FAIL: $name: passes now; take it off the known list"
      failures=$((failures + 1))
    elif [ $rc -eq 0 ]; then
      echo "ok: $name: $(grep -o 'compared [0-9]* instructions ([0-9]* emulator steps)' /tmp/lockstep.err)$(grep 'masked' /tmp/lockstep.err | sed 's/^ *masked */; /' | tr -d '\n')"
    elif [ -n "$(known $name)" ] && grep -q "$(known $name)" /tmp/lockstep.err; then
      echo "known: $name: status $rc, $(known $name)"
    else
      echo "FAIL: $name: status $rc"
      sed 's/^/  | /' /tmp/lockstep.err | head -40
      failures=$((failures + 1))
    fi
  done
done
echo "guests: $guests, failures: $failures"
[ $guests -gt 0 ] && [ $failures -eq 0 ]
