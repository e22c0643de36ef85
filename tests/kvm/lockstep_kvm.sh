#!/bin/sh
# ctest -L kvm (kvm.lockstep_*): `ttvm lockstep` inside the nested VM on
# every guest ELF under the given folders, each for its first N
# instructions (lockstep single-steps KVM: about 700 instructions/s in the
# nested VM, so whole guests do not fit a test). A guest passes when
# lockstep reports no difference (status 0), or only the known ones listed
# below; every masked difference is printed with its reason. A guest with a
# difference that is not known fails, printed (instruction, fields, both
# states).
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
# Known differences. Guests that stop at one (`stops`): the words it must
# stop with; a fix makes the test say so.
#  - rec_mmio_fetch jumps into the MMIO hole: KVM cannot run it at all
#    (internal error, as `record --backend kvm` reports; status 70).
#  - rec_timer reads the TSC in its PIT handler: KVM does not single-step
#    into an injected interrupt's handler (its delivery clears the TF KVM
#    steps with), runs it to the next exit, and the emulator then gets the
#    last RDTSC's value for the first (docs/kvm-recording.md, Open).
#  - debug_int: #UD (6) where the emulator delivers #BP (3) (the guest's
#    int1 QEMU_KNOWN_FAIL: TCG raises #UD for INT1). Not run with
#    --keep-going: past it QEMU 7.2 itself aborts ("qemu: fatal: invalid
#    tss type", the nested VM dies) at the guest's next interrupt from CPL 3
#    through its 32-bit TSS, once KVM's TR was set with the busy type (11)
#    the emulator holds (KVM takes the emulator's state after a guest #DB it
#    keeps); TCG's own LTR caches the available type (9).
# Guests run whole with --keep-going (`differences`): every difference
# lockstep reports (its summary line: "difference K at instruction N: RIP
# DISASSEMBLY: FIRST FIELD, PAGE OR ACCESS; P pages taken") must match one
# of the guest's patterns (grep, one a line), and each pattern must match
# one (a fix makes the test say so); a pattern after "? " may match none. The nested VM's CPU (QEMU 7.2's TCG
# under kvm-amd) at the cases the guests list as QEMU_KNOWN_FAIL
# (tests/guests/*/CMakeLists.txt), unless said otherwise:
#  - cpuid_msr: lstar_noncanonical (WRMSR of a non-canonical LSTAR
#    accepted: the emulator's #GP). Its bad_msr (RDMSR of an unknown MSR)
#    differed too while lockstep answered every RDMSR KVM sent to user
#    space, refusals included; it no longer does.
#  - exceptions: gp_ss_noncanonical (#GP (13) pushed where the SDM has #SS
#    (12)), ac (no #AC for a misaligned load: the handler's count in RBX).
#  - paging32: its tlb cases (a stale TLB entry read after the PTE changed:
#    TCG's soft TLB had dropped it, each step being a #VMEXIT, and QEMU's
#    SVM flushes its whole TLB at every #VMEXIT and VMRUN; the SDM allows
#    both), pg32_reserved and pae_reserved (#PF error code RSVD without P:
#    8, not 9), pae_pdpte_reserved (MOV CR3 with reserved PDPTE bits: no
#    #GP; the emulator, given KVM's state, then triple-faults, which ends
#    the run).
#  - paging64, paging64_cpumax: pf_reserved (8 for 9; 0xa for 0xb on a
#    write), tlb_global (the stale-TLB case above: the old value read on one
#    side, then the new), and at the end the A bit that TCG's walk set in a
#    PTE the emulator's TLB hit did not walk.
#  - segments (limit_*, expand_down_*, ss_*, null_selector): no segment
#    limit check, so no #GP: the emulator's handler prints (its port read of
#    the UART) where KVM's step did not fault; and LLDT with a null
#    selector (ldt case): TCG's helper_lldt sets only the LDTR's base and
#    limit to 0 and keeps its attributes (0x82: present, type 2, from the
#    LLDT before; plain qemu-system-x86_64 -accel tcg -cpu max -d cpu after
#    that LLDT: "LDT=0000 00000000 00000000 00008200"), so the VMCB says
#    present and KVM (svm_get_segment: unusable = !present) a usable LDTR;
#    the SDM (vol. 2A "LLDT") marks it invalid, as the emulator does
#    (unusable, 0x10000).
#  - sse_fp: xm_delivery, ud_without_osxmmexcpt (no SIMD floating-point
#    exception for DIVSS: the emulator's handler prints); MOVQ/PADDUSB to
#    MM0/MM1 leave the x87 exponent (bits 79:64) 0 where the SDM (vol. 1
#    9.5.1) sets all ones, as the emulator does: compat_emu's mmx_exponent
#    (below); sse_fp checks only the significand, so its QEMU run passes.
#  - x87: stack_overflow_masked (FLD1 onto a full stack without IE and SF),
#    c1_round_up (FSTP), transcendental_values (FSINCOS, FPTAN: C1 and PE),
#    fsin_out_of_range (C2), mf_delivery (FDIVR by zero: infinity stored).
#  - idt_priv: gate_dpl, gate_not_present (#GP/#NP error codes of INT
#    0x52/0x53 built from the 16-byte IDT offset: 0x522, 0x532 for the SDM's
#    0x292, 0x29a), and double_fault's case; double_fault:
#    benign_then_contributory (#NP's error code for the #UD gate: 0x62, SDM
#    0x33; run with --map-ram, options below). Once in a while (seen in one
#    run of four, after other guests) np_then_gp's #DF frame RIP differs
#    even with --map-ram: an exit that is not a page's first touch (a host
#    interrupt, say) cut its event chain (below); optional.
#  - compat_emu: mmx_exponent (MOVQ/MOVD to an MMX register leave the x87
#    exponent 0, the SDM sets all ones: plain QEMU TCG -cpu max under gdb
#    after `movq mm3, [rsp+0x20]` and FXSAVE has ST3's exponent word 0).
#    FXSAVE with CR4.OSFXSR clear (CR4 0x20 there): TCG's do_fxsave stores
#    MXCSR and MXCSR_MASK (bytes 24-31) only with OSFXSR, so the guest's
#    zeroed buffer keeps 0 (plain QEMU under gdb, the same); the emulator
#    stores 0x1f80 and 0xffff; the SDM (FXSAVE) leaves the
#    XMM/MXCSR part to the implementation when OSFXSR is clear: neither is
#    wrong. MOVAPS to a misaligned address (#GP): the fault-frame RF row
#    (exceptions' fault_rf): the guest's handler (kut.c kut_trap) keeps
#    vector | RF << 8 | error code << 16 from the frame, 0xd from TCG's
#    frame (RF = 0; plain QEMU under gdb at that store, the same), 0x10d from
#    the emulator's (RF = 1, SDM vol. 3 18.3.1.1); the frame's own RF is
#    masked, the handler's copy cannot be. Its #UDs do not differ: SVM
#    intercepts #UD and KVM injects it, setting RF in the frame.
#  - compat_msr, compat_msr_32: WRMSR of a non-canonical FS base faults;
#    KVM's step runs the #GP handler whole (the delivery clears the TF KVM
#    steps with), and its IRET pops the RF = 0 that TCG pushed for the fault
#    (the fault-frame RF row of docs/kvm-recording.md), the emulator's RF = 1.
#    The next instruction differs again: TCG took the non-canonical FS/GS
#    base as 0x00aaaaaaaaaaaaaa where the emulator's handler left
#    0xaaaaaaaaaaaaaaaa.
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
stops() {
  case "$1" in
    rec_mmio_fetch.elf) echo "internal error, suberror 1" ;;
    rec_timer.elf) echo "the states differ" ;;
    debug_int.elf) echo "KVM 00000006, emulator 00000003" ;;
  esac
}
uart="access: the emulator made a port read of 1 bytes at 0x3fd that KVM did not make"
differences() {
  case "$1" in
    cpuid_msr.elf)
      echo "wrmsr: rflags: KVM 0x[0-9a-f]*, emulator 0x10[0-9a-f]*;" ;;
    exceptions.elf)
      echo ": RAM 0x[0-9a-f]*: KVM 0000000d, emulator 0000000c;"
      echo "mov ecx, \[rcx+0x01\]: rbx: KVM 0x11, emulator 0x11a000;" ;;
    paging32.elf)
      echo "mov eax, \[edx\]: rax: KVM 0x3, emulator 0x11111111;"
      echo "mov eax, \[edx\]: RAM 0x[0-9a-f]*: KVM 00000008, emulator 00000009;"
      echo ": the emulator triple-faulted, KVM did not;" ;;
    paging64.elf | paging64_cpumax.elf)
      echo "mov rax, \[rdi\]: RAM 0x[0-9a-f]*: KVM 00000008, emulator 00000009;"
      echo "mov \[rdi\], rsi: RAM 0x[0-9a-f]*: KVM 0000000a, emulator 0000000b;"
      echo "mov rax, \[rdi\]: rax: KVM 0x2222222222222222, emulator 0x1111111111111111;"
      echo "mov rax, \[rdi\]: rax: KVM 0x1111111111111111, emulator 0x2222222222222222;"
      echo "(the end): RAM 0x[0-9a-f]*: KVM 00114027, emulator 00114007;" ;;
    segments.elf)
      echo " es:\[e[a-z]*\]: $uart;"
      echo "mov ss, dx: $uart;"
      echo "lldt ax: ldtr.attributes: KVM 0x82, emulator 0x10000;" ;;
    sse_fp.elf)
      echo "divss xmm0, xmm1: $uart;"
      echo "mm[01], .*: st[01].exponent: KVM 0, emulator 0xffff;" ;;
    x87.elf)
      echo "fld1: fsw: KVM 0x3800, emulator 0x3a41;"
      echo "fstp \[rsp+0x88\]: fsw: KVM 0x3b00, emulator 0x3900;"
      echo "fsincos: fsw: KVM 0x3000, emulator 0x3220;"
      echo "fptan: fsw: KVM 0x3000, emulator 0x3220;"
      echo "fsin: fsw: KVM 0x3800, emulator 0x3c00;"
      echo "fdivr st0, st1: st6.significand: KVM 0x8000000000000000, emulator 0;" ;;
    double_fault.elf)
      echo "? int 0x60: RAM 0x[0-9a-f]*: KVM 00102710, emulator 0010270e;"
      echo "ud2: RAM 0x[0-9a-f]*: KVM 00000062, emulator 00000033;" ;;
    idt_priv.elf)
      echo "int 0x52: RAM 0x[0-9a-f]*: KVM 00000522, emulator 00000292;"
      echo "int 0x53: RAM 0x[0-9a-f]*: KVM 00000532, emulator 0000029a;"
      echo "ud2: RAM 0x[0-9a-f]*: KVM 00000062, emulator 00000033;" ;;
    compat_emu.flat.elf)
      echo "movq mm3, \[rsp+0x20\]: st3.exponent: KVM 0, emulator 0xffff;"
      echo "movd mm5, eax: st5.exponent: KVM 0, emulator 0xffff;"
      echo "fxsave \[0x[0-9a-f]*\]: RAM 0x[0-9a-f]*: KVM 00000000, emulator 00001f80; 0x[0-9a-f]*: KVM 00000000, emulator 0000ffff;"
      echo "movaps \[rax\], xmm1: RAM 0x[0-9a-f]*: KVM 0000000d, emulator 0000010d;" ;;
    compat_msr.flat.elf | compat_msr_32.flat.elf)
      echo "wrmsr: rflags: KVM 0x[0-9a-f]*, emulator 0x10[0-9a-f]*;"
      echo "mov eax, esi: [fg]s.base: KVM 0xaaaaaaaaaaaaaa, emulator 0xaaaaaaaaaaaaaaaa;" ;;
    debug_shadow.elf)
      echo "mov ss, ax: access: KVM made a port read of 1 bytes at 0x3fd that the emulator did not;" ;;
  esac
}
# Each line of `found` that matches none of `patterns`, and each pattern
# that matches no line, one a line, prefixed.
unmatched() {
  found=$1 patterns=$2
  while IFS= read -r line; do
    hit=""
    while IFS= read -r p; do
      if printf '%s\n' "$line" | grep -q -e "${p#\? }"; then hit=1; fi
    done <"$patterns"
    [ -n "$hit" ] || echo "  unexpected: $line"
  done <"$found"
  while IFS= read -r p; do
    case "$p" in "? "*) continue ;; esac
    grep -q -e "$p" "$found" || echo "  known, not seen: $p"
  done <"$patterns"
}
for d in "$@"; do
  if [ -f "$d" ]; then list=$d; else list=$(ls "$d"/*.elf 2>/dev/null | grep -v '\.elf\.elf$'); fi
  for g in $list; do
    guests=$((guests + 1))
    name=$(basename "$g")
    differences "$name" >/tmp/lockstep.known
    keep=""
    [ -s /tmp/lockstep.known ] && keep=--keep-going
    $T lockstep --ram 16M --max-steps "$N" --memory-every 10000 $keep $(options $name) "$g" \
      >/tmp/lockstep.out 2>/tmp/lockstep.err </dev/null
    rc=$?
    compared=$(grep -o 'compared [0-9]* instructions ([0-9]* emulator steps) in [0-9.]* s' /tmp/lockstep.err)
    if [ -n "$keep" ]; then
      grep '^  difference [0-9]* at instruction ' /tmp/lockstep.err >/tmp/lockstep.found
      bad=$(unmatched /tmp/lockstep.found /tmp/lockstep.known)
      if [ $rc -eq 1 ] && [ -z "$bad" ]; then
        echo "known: $name: $(wc -l </tmp/lockstep.found) known differences, KVM's side taken after each; $compared"
      else
        echo "FAIL: $name: status $rc"
        [ -n "$bad" ] && echo "$bad"
        [ $rc -eq 0 ] && echo "  no difference now: take it off the known list"
        sed 's/^/  | /' /tmp/lockstep.err | tail -60
        failures=$((failures + 1))
      fi
    elif [ $rc -eq 0 ] && [ -n "$(stops $name)" ]; then
      echo "FAIL: $name: passes now; take it off the known list"
      failures=$((failures + 1))
    elif [ $rc -eq 0 ]; then
      echo "ok: $name: $(grep -o '^ttvm lockstep: .*' /tmp/lockstep.err | sed 's/^ttvm lockstep: //'); $compared$(grep 'masked' /tmp/lockstep.err | sed 's/^ *masked */; /' | tr -d '\n')"
    elif [ -n "$(stops $name)" ] && grep -q "$(stops $name)" /tmp/lockstep.err; then
      echo "known: $name: status $rc, $(stops $name)"
    else
      echo "FAIL: $name: status $rc"
      sed 's/^/  | /' /tmp/lockstep.err | head -40
      failures=$((failures + 1))
    fi
  done
done
echo "guests: $guests, failures: $failures"
[ $guests -gt 0 ] && [ $failures -eq 0 ]
