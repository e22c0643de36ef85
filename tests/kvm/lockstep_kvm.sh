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
# The nested VM's CPU (QEMU 7.2's TCG under kvm-amd) at the cases the guests
# list as QEMU_KNOWN_FAIL (tests/guests/cpu/CMakeLists.txt), run whole:
#  - cpuid_msr, lstar_noncanonical: WRMSR of a non-canonical LSTAR accepted.
#  - exceptions, gp_ss_noncanonical: #GP (13) pushed where the SDM has #SS (12).
#  - paging64, pf_reserved: #PF error code RSVD without P (8, not 9).
#  - paging32, a stale TLB entry read after the PTE changed (its tlb cases):
#    TCG's soft TLB had dropped it (each step is a #VMEXIT, and QEMU's SVM
#    flushes its whole TLB at every #VMEXIT and VMRUN: cpu_x86_update_cr3),
#    the emulator's exact TLB keeps it until INVLPG; the SDM allows both, so
#    lockstep cannot go on there.
#  - segments (limit_*): no data-segment limit check, so no #GP: the
#    emulator's handler prints (its port read of the UART) where KVM's step
#    did not fault.
#  - sse_fp (xm_delivery): no SIMD floating-point exception for DIVSS.
#  - x87 (stack_overflow_masked): FLD1 onto a full stack without IE and SF.
#  - debug_int: #UD (6) where the emulator delivers #BP (3) (the doc's
#    int1 case: TCG raises #UD for INT1); compat_emu: MOVQ to an MMX
#    register leaves the x87 exponent 0, the SDM sets it to all ones.
#  - compat_msr, compat_msr_32: WRMSR of a non-canonical FS base faults;
#    KVM's step runs the #GP handler whole (the delivery clears the TF KVM
#    steps with), and its IRET pops the RF = 0 that TCG pushed for the fault
#    (the fault-frame RF row of docs/kvm-recording.md), the emulator's RF = 1.
#  - idt_priv, gate_dpl: the #GP error code of INT 0x52 through a DPL-0 gate
#    is built from the 16-byte IDT offset (0x522, the SDM's 0x292).
#  - double_fault, benign_then_contributory: #NP's error code for the #UD
#    gate is built from the 16-byte IDT offset without EXT (0x62, SDM 0x33).
#    Run with --map-ram (options below).
#  - debug_shadow, movss_icebp: INT1 (F1) after MOV SS with the guest's TF
#    set. TCG raises #UD for INT1 (the guest's QEMU_KNOWN_FAIL; plain
#    qemu-system-x86_64 -accel tcg logs the same #UD at the INT1). KVM
#    intercepts the #UD and injects it; injecting a fault sets RF through
#    kvm_get_rflags, which hides TF while the host steps (KVM puts its TF
#    back only at the RIP it armed stepping at), so the #UD frame holds
#    TF = 0, the handler's IRET resumes unstepped, and the guest runs to the
#    UART read of its FAIL message, where the emulator delivered INT1's #DB.
# Lockstep options a guest needs.
#  - double_fault: --map-ram. Without it, it stops in its first case,
#    np_then_gp: INT 0x60 raises #NP, #GP, #DF, and the first write to the
#    IST1 page, an NPF while the #DF frame is pushed, makes QEMU's SVM
#    report the INT 0x60 (the chain's first event) in EXITINTINFO; KVM (no
#    NRIPS there) re-injects it past the INT, so the #DF frame's RIP
#    (undefined in the SDM) is the next instruction, and KVM's step runs the
#    handler, which copies it: no mask can go on (docs/kvm-recording.md, "An
#    event chain cut by an exit"). With every page mapped first, no exit
#    comes in the chain.
options() {
  case "$1" in
    double_fault.elf) echo "--map-ram" ;;
  esac
}
known() {
  case "$1" in
    rec_mmio_fetch.elf) echo "internal error, suberror 1" ;;
    rec_timer.elf) echo "the states differ" ;;
    cpuid_msr.elf) echo "lstar " ;;
    exceptions.elf) echo "KVM 0000000d, emulator 0000000c" ;;
    paging64.elf | paging64_cpumax.elf) echo "KVM 00000008, emulator 00000009" ;;
    paging32.elf) echo "rax                    0x3                0x11111111" ;;
    segments.elf | sse_fp.elf) echo "port read of 1 bytes at 0x3fd that KVM did not make" ;;
    x87.elf) echo "fsw                    0x3800             0x3a41" ;;
    double_fault.elf) echo "KVM 00000062, emulator 00000033" ;;
    idt_priv.elf) echo "KVM 00000522, emulator 00000292" ;;
    debug_int.elf) echo "KVM 00000006, emulator 00000003" ;;
    compat_emu.flat.elf) echo "st3.exponent" ;;
    # RF only in the emulator's RFLAGS; the arithmetic flags there vary
    # from run to run (seen: 0x6 and 0x46 under KVM).
    compat_msr.flat.elf | compat_msr_32.flat.elf) echo "rflags  *0x[0-9a-f]\{1,3\}  *0x10[0-9a-f]\{3\} " ;;
    debug_shadow.elf) echo "KVM made a port read of 1 bytes at 0x3fd that the emulator did not" ;;
  esac
}
for d in "$@"; do
  if [ -f "$d" ]; then list=$d; else list=$(ls "$d"/*.elf 2>/dev/null | grep -v '\.elf\.elf$'); fi
  for g in $list; do
    guests=$((guests + 1))
    name=$(basename "$g")
    $T lockstep --ram 16M --max-steps "$N" --memory-every 10000 $(options $name) "$g" \
      >/tmp/lockstep.out 2>/tmp/lockstep.err </dev/null
    rc=$?
    if [ $rc -eq 0 ] && [ -n "$(known $name)" ]; then
      echo "FAIL: $name: passes now; take it off the known list"
      failures=$((failures + 1))
    elif [ $rc -eq 0 ]; then
      echo "ok: $name: $(grep -o '^ttvm lockstep: .*' /tmp/lockstep.err | sed 's/^ttvm lockstep: //'); $(grep -o 'compared [0-9]* instructions ([0-9]* emulator steps) in [0-9.]* s' /tmp/lockstep.err)$(grep 'masked' /tmp/lockstep.err | sed 's/^ *masked */; /' | tr -d '\n')"
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
