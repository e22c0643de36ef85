#!/bin/sh
# ctest -L kvm (kvm.record_guests_*): every guest ELF under the given
# folders recorded with `ttvm record --backend kvm` inside the nested VM and
# replayed in the emulator (`ttvm verify`: every access, every state digest
# and KVM's final state) with zero divergence. The KVM run must also end as
# the emulator's own recording of the guest does: the same exit status, end
# reason and serial output. The debug-semantics guests check their own trap
# sequences (single-step across OUT, IN and MMIO writes included) and print
# PASS, so the same status means the same traps under KVM as in the emulator.
#
# usage: record_guests_kvm.sh TTVM DIR|GUEST.elf...
T=${1:?usage: record_guests_kvm.sh TTVM DIR|GUEST.elf...}
shift
W=/tmp/kvm-guests
mkdir -p $W
failures=0
guests=0
# The cases each guest fails under KVM in the nested VM and not in the
# emulator (its checks are the SDM's). The nested VM's CPU is QEMU's TCG, so
# the cases in the guest's QEMU_KNOWN_FAIL (tests/guests/*/CMakeLists.txt,
# each with its SDM reason) fail there too ("QEMU"); the others are KVM's
# or the nested SVM's, documented in docs/kvm-recording.md. The set must
# match exactly: a case that starts passing or a new failure fails the
# test. A guest with such cases is not replayed (the emulator delivers what
# the SDM says, so the replay diverges at the first of them).
known() {
  case "$1" in
    debug_dr) echo "general_detect" ;;                      # QEMU
    # int1, user_int1_dpl0: QEMU. user_int3_dpl0 (passes under QEMU TCG
    # alone): an NPF while the #GP of INT3 is pushed, QEMU's SVM reports the
    # INT3 in EXITINTINFO as a soft INT (AMD: the #GP, INT3 as type 3), and
    # KVM, without NRIPS there, re-injects it past the INT3: the #GP's RIP is
    # the next instruction (kvm_exit/kvm_inj_virq traced, docs/kvm-recording.md
    # "An event chain cut by an exit").
    debug_int) echo "int1 user_int1_dpl0 user_int3_dpl0" ;;
    debug_prio) echo "ss_databp" ;;                         # QEMU
    debug_shadow) echo "movss_databp movss_databp_tf movss_gd movss_icebp sti_tf" ;;  # all QEMU
    cpuid_msr) echo "lstar_noncanonical" ;;                 # QEMU
    double_fault) echo "benign_then_contributory" ;;        # QEMU
    exceptions) echo "ac gp_ss_noncanonical" ;;             # QEMU
    idt_priv) echo "gate_dpl gate_not_present" ;;           # QEMU
    paging32) echo "pae_pdpte_reserved pae_reserved pg32_reserved" ;;  # QEMU
    # pf_reserved, pf_rf, tlb_global: QEMU. tlb_cr3 (passes under QEMU TCG
    # alone) wants the stale entry of the previous case's read across
    # case_begin's serial output: every #VMEXIT/VMRUN of QEMU's SVM loads
    # CR3 and flushes its whole TLB (cpu_x86_update_cr3), so it never holds
    # across an exit; the SDM allows both.
    paging64 | paging64_cpumax) echo "pf_reserved pf_rf tlb_cr3 tlb_global" ;;
    segments) echo "expand_down_big expand_down_small limit_byte limit_granular null_selector ss_expand_down" ;;  # all QEMU
    sse_fp) echo "ud_without_osxmmexcpt xm_delivery" ;;     # QEMU
    x87) echo "fsin_out_of_range mf_delivery stack_overflow_masked transcendental_values" ;;  # all QEMU
    compat_emu) echo "mmx_exponent" ;;                     # QEMU
    # QEMU: its WRMSR takes a non-canonical FS/GS/KERNEL_GS base, LSTAR and
    # CSTAR, which SVM's KVM passes through to the nested CPU (ttvm's filter
    # leaves them in the kernel: state KVM keeps); AMD hardware raises #GP.
    compat_msr | compat_msr_32) echo "misc" ;;
  esac
}
# Guests that execute RDTSC whatever CPUID says (a wait bounded by the TSC,
# a rate measured against it): KVM runs RDTSC without an exit (AMD and
# Intel alike: no KVM API makes it exit). They are recorded with
# --kvm-trap-tsc: the pages holding RDTSC stay out of KVM's memory, ttvm's
# emulator runs their instructions, and the TSC values are in the trace, so
# each must replay to its end like any other guest.
trap_tsc() {
  case "$1" in
    apic_timer) echo "divide: the APIC timer's rate per TSC cycle" ;;
    timer_calibration) echo "the TSC against PIT channel 2 and the APIC timer" ;;
    uart_input) echo "its wait for input is bounded by the TSC" ;;
    compat_apic) echo "the APIC timer against the TSC, pending NMIs" ;;
  esac
}
# Guests recorded without it whose RDTSC KVM runs untrapped: they must
# still behave as in the emulator, and the replay must stop exactly at that
# RDTSC, naming the instruction (docs/kvm-recording.md, "What KVM does not
# trap").
untrapped() {
  case "$1" in
    compat_msr_without_misc | compat_msr_32_without_misc) echo "its case tsc: RDTSC, IA32_TSC written" ;;
  esac
}
# Cases that race ttvm's timers against the time exits take, and may fail
# under KVM or pass: the timers follow the wall time the guest ran as seen
# at its exits, which spreads with the nested VM's scheduling. When one
# fails, status and output differ from the emulator's by that case alone.
# (timer_calibration's same_time_base, the TSC against the APIC timer, was
# one while the TSC was the host's; with --kvm-trap-tsc both follow the
# virtual clock and it must pass.)
mayfail() {
  case "$1" in
    # mode0_out2 programs PIT channel 2 with a count of 2000 (1.7 ms) and
    # wants OUT2 still low at the next exit (in 0x61): when the nested VM
    # takes longer than that between two exits (seen: 50 ms, the count
    # wrapped to 56,216), virtual time, which follows the wall time there,
    # has passed it. 1 to 2 of 3 recordings in a row at host load 2-3, with
    # this build and with 77c90e3's, whose CI run had passed.
    pit_mode0) echo "mode0_out2" ;;
    # The TLB cases read a page again after changing its PTE without
    # invalidating, and want the stale translation (the emulator keeps it;
    # the SDM allows either). Under KVM in the nested VM every exit between
    # the two reads (a kick at the end of a wall slice) flushes QEMU TCG's
    # TLB, so the second read may see the new frame: paging64_cpumax's
    # tlb_invlpg failed so in 1 of 3 pre-check runs (tlb_cr3, whose fill
    # comes before serial output, always does and is pinned above).
    paging64 | paging64_cpumax) echo "tlb_invlpg" ;;
    paging32) echo "pg32_tlb" ;;
    # Its case tsc writes IA32_TSC (which stays in KVM) and wants the next
    # RDTSC, the host's TSC, within 10^9 cycles (1 s) of the value written:
    # a nested VM descheduled for longer in between fails it (1 of 4 runs,
    # in a pre-check with the whole suite on both cores).
    compat_msr | compat_msr_32 | compat_msr_without_misc | compat_msr_32_without_misc) echo "tsc" ;;
    # Its "periodic -> one-shot" check reads TMCCT at most half a period
    # (10 ms) before expiry, switches the mode (2 MMIO exits) and reads it
    # again, wanting it above 0: when those exits take longer than the
    # count left (the nested VM under host load), the one-shot has run out.
    # Seen in 2 of 4 recordings in a row at host load 6 ("TMCCT 0x0 not
    # reloaded"), and in 2 of 4 runs of kvm.record_guests_compat.
    compat_apic) echo "timer_mode" ;;
  esac
}
# Lines of a guest's output whose numbers measure time (the guest checks
# them itself): under KVM virtual time follows the wall time the guest ran,
# the TSC is the host's, so the numbers differ from the emulator's.
timed() {
  case "$1" in
    acpi | acpi_32) echo '^PM timer: [0-9]+ ticks in 10 ms' ;;
    timer_calibration) echo '^(TSC [0-9]+ Hz, APIC timer|  window [0-9]+: TSC)' ;;
    compat_apic) echo '^PASS: timer( one shot: 1 interrupt|_mode: .* TMCCT 0x)' ;;
    compat_msr_without_misc | compat_msr_32_without_misc) echo '^PASS: tsc: RDTSC' ;;
  esac
}
# The loader guests' arguments (tests/guests/loaders/CMakeLists.txt): a flat
# binary's mode and load address.
args() {
  case "$1" in
    flat_real) echo "--mode real --load-addr 0x8000" ;;
    flat_prot) echo "--mode prot --load-addr 0x100000" ;;
    flat_long) echo "--mode long --load-addr 0x100000" ;;
  esac
}
# The files given that are no guest (modules, initrds), and one by name.
modules=""
for d in "$@"; do
  case "$d" in *.elf | *.bin | *.flat | */disk_master.img) ;; *) [ -f "$d" ] && modules="$modules $d" ;; esac
done
module() { for f in $modules; do [ "$(basename "$f")" = "$1" ] && echo "$f"; done; }
# `ttvm record` of guest $2 named $1 with the rest as options, and the
# guest's own arguments: multiboot_info's and compat_boot's command line
# and module (given as files that are no guest).
record_guest() {
  n=$1
  g=$2
  shift 2
  case "$n" in
    multiboot_info)
      $T record "$@" --append "ttvm-mbi arg=42" --initrd "$(module mbi_module.txt) modarg=7" "$g" ;;
    disk_master) $T record "$@" --disk "$g" --disk "$(module disk_slave.img)" ;;  # boots from it
    compat_boot | compat_boot_32)
      $T record "$@" --append "first-arg nr=42" --initrd "$(module env.txt)" "$g" ;;
    compat_msr_without_misc | compat_msr_32_without_misc)
      $T record "$@" --append "mce x2apic_msrs cmd tsc" "$g" ;;
    *) $T record "$@" $(args $n) "$g" ;;
  esac
}
# A guest recorded once more under another name (its own arguments above):
# compat_msr without its case misc, which fails in the nested VM, so that
# its other cases (1,800 MSR exits) are replayed too.
variants() {
  case "$1" in
    compat_msr | compat_msr_32) echo "$1_without_misc" ;;
  esac
}
# Serial input a guest waits for (its ttvm_test_guest STDIN).
W_INPUT=$W/serial-input
printf 'ttvm-input\n' >$W_INPUT
input() {
  case "$1" in
    uart_input) echo "--serial-input $W_INPUT" ;;
  esac
}
# The cases a run failed, sorted, one line ("FAIL: <case>: ..." lines; the
# summary line names the guest or its source file and is left out).
failed_cases() {
  grep -o '^FAIL: [a-z0-9_]*: ' "$1" | grep -v 'check(s) failed' | sed 's/^FAIL: //; s/: $//' |
    grep -v "^$2\$" | sort -u | tr '\n' ' ' | sed 's/ $//'
}
words() { echo "$@" | tr ' ' '\n' | grep . | sort -u | tr '\n' ' ' | sed 's/ $//'; }
for d in "$@"; do
  # A folder: every guest in it; a file: that guest.
  if [ -f "$d" ]; then list=$d; else list=$(ls "$d"/*.elf 2>/dev/null | grep -v '\.elf\.elf$'); fi
  for g in $list; do
    case "$g" in *.elf | *.bin | *.flat | */disk_master.img) ;; *) continue ;; esac  # a guest's module
    guests=$((guests + 1))
    name=$(basename "$g"); name=${name%.elf}; name=${name%.bin}; name=${name%.flat}; name=${name%.img}
    for name in $name $(variants $name); do
      # One start clock for both: the RTC reads the same date and time.
      clk=$(date +%s)
      trap=$(trap_tsc $name)
      record_guest $name "$g" --backend emu --no-trace --timeout 30 --start-clock $clk $(input $name) \
        >$W/$name.emu.out 2>$W/$name.emu.err </dev/null
      rce=$?
      record_guest $name "$g" --backend kvm -v --timeout 30 --start-clock $clk $(input $name) \
        ${trap:+--kvm-trap-tsc} -o $W/$name.ttvm \
        >$W/$name.kvm.out 2>$W/$name.kvm.err </dev/null
      rck=$?
      if [ -n "$(timed $name)" ]; then
        for o in emu kvm; do
          sed -E "/$(timed $name)/s/[0-9][0-9a-fx]*/N/g" $W/$name.$o.out >$W/$name.$o.tmp && mv $W/$name.$o.tmp $W/$name.$o.out
        done
      fi
      ende=$(grep -o '^ttvm record: [a-z-]* —' $W/$name.emu.err | head -1)
      endk=$(grep -o '^ttvm record: [a-z-]* —' $W/$name.kvm.err | head -1)
      src=$(grep -o '^FAIL: [a-z0-9_]*: [0-9]* check(s) failed' $W/$name.emu.out $W/$name.kvm.out | head -1 | sed 's/.*FAIL: //; s/:.*//')
      fe=$(failed_cases $W/$name.emu.out "$src")
      fk=$(failed_cases $W/$name.kvm.out "$src")
      want=$(words $fe $(known $name))
      # Whichever of mayfail's cases failed under KVM (and not in the emulator).
      timing=""
      for c in $(mayfail $name); do
        case " $fk " in *" $c "*) case " $fe " in *" $c "*) ;; *) timing="$timing $c" ;; esac ;; esac
      done
      for c in $timing; do fk=$(echo " $fk " | sed "s/ $c / /" | xargs); done
      problem=""
      if [ "$fk" != "$want" ]; then
        problem="cases failing under KVM: [$fk], expected [$want] (emulator: [$fe])"
      elif [ -n "$(known $name)" ]; then
        echo "known: $name: fails under KVM as expected: $(known $name)"
        rm -f $W/$name.ttvm
        continue
      fi
      if [ -n "$timing" ]; then
        echo "note: $name: failed under KVM this time:$timing (timing under KVM: see mayfail); status and output not compared"
      else
        [ -z "$problem" ] && [ $rce -ne $rck ] && problem="status $rck under KVM, $rce in the emulator"
        [ -z "$problem" ] && [ "$ende" != "$endk" ] && problem="end '$endk' under KVM, '$ende' in the emulator"
        [ -z "$problem" ] && ! cmp -s $W/$name.emu.out $W/$name.kvm.out && problem="serial output differs"
      fi
      if [ -z "$problem" ]; then
        # The trace names its emulated pages (ttvm info), which the replay
        # needs. The replay is bounded: a stop point never found costs 200 M
        # emulator steps, minutes under the nested VM's TCG.
        if [ -n "$trap" ] && ! $T info $W/$name.ttvm | grep -q '^emulated   [1-9][0-9]* pages run by'; then
          problem="ttvm info names no emulated pages in a --kvm-trap-tsc trace"
        elif timeout 60 $T verify $W/$name.ttvm >$W/$name.verify 2>&1; then
          [ $name = triple_fault ] && problem="ttvm verify passed: KVM's final state is no longer the reset state"
          [ -n "$(untrapped $name)" ] && problem="ttvm verify passed: the guest no longer reads the TSC"
        elif [ -n "$(untrapped $name)" ] &&
          at=$(grep -o "step [0-9]*: rdtsc at 0x[0-9a-f]*: value not recorded under KVM" $W/$name.verify); then
          echo "known: $name: as in the emulator; its replay stops at its first RDTSC ($(untrapped $name)): ${at%%: value*}, which KVM does not trap"
          rm -f $W/$name.ttvm
          continue
        elif [ $name = triple_fault ] && grep -q "end state differs.*rip 0x[0-9a-f]* vs recorded 0xfff0" $W/$name.verify; then
          # After a shutdown SVM's KVM reinitialises the vCPU: the recorded
          # final state is the reset state (docs/kvm-recording.md); every
          # access and digest before it replayed.
          echo "known: $name: replays to its triple fault; KVM's final state is the reset state"
          rm -f $W/$name.ttvm
          continue
        else
          problem="ttvm verify failed"
        fi
      fi
      if [ -z "$problem" ]; then
        echo "ok: $name: status $rck, $(grep -o '[0-9]* exits are [0-9]* emulator steps[^,]*' $W/$name.verify), $(grep -o '[0-9]* state digests' $W/$name.verify)$(grep -o ', [0-9]* single-step traps after MMIO' $W/$name.kvm.err)${trap:+, $(grep -o '[0-9]* pages holding RDTSC/RDTSCP: [0-9]* instructions' $W/$name.kvm.err) run by ttvm (--kvm-trap-tsc: $trap)}"
      else
        echo "FAIL: $name: $problem"
        { echo "-- emulator (status $rce):"; tail -4 $W/$name.emu.err; tail -3 $W/$name.emu.out
          echo "-- KVM (status $rck):"; tail -6 $W/$name.kvm.err; tail -3 $W/$name.kvm.out
          [ -f $W/$name.verify ] && { echo "-- verify:"; tail -8 $W/$name.verify; }
          echo "-- output, emulator then KVM:"; diff $W/$name.emu.out $W/$name.kvm.out | grep '^[<>]' | head -6; } | sed 's/^/  | /'
        failures=$((failures + 1))
      fi
      rm -f $W/$name.ttvm
    done
  done
done
echo "guests: $guests, failures: $failures"
[ $guests -gt 0 ] && [ $failures -eq 0 ]
