/* Issue 4 point 2: instructions completed outside the CPU single-step exactly
 * like all others. SDM vol. 3, 18.3.1.4 "Single-Step Exception Condition": the
 * trap follows every instruction executed with TF set, whatever it accessed;
 * for repeated string instructions the trap follows each iteration (vol. 2B
 * "REP/REPE/REPZ/REPNE/REPNZ": "A repeating string operation can be suspended
 * by an exception or interrupt... the saved RIP points to the string
 * instruction", with RCX counting the iterations left). The device side must
 * complete first: OUT to COM1, IN from it, a LAPIC MMIO read/write, REP
 * OUTSB/INSB with RCX = 3 (three traps; RIP stays on the instruction for the
 * first two), REP MOVSB into pc-testdev's MMIO window. This is the case KVM's
 * emulator once missed. */
#include "dbg_seq.h"

GUEST_NAME("debug_io");

static const char out_buf[4] = "abc";
static volatile uint8_t in_buf[4];

L(oi_start); L(oi_out); L(oi_1); L(oi_in); TAIL_LABELS(oi);
__asm__(".text\n"
        "oi_start: mov $0x3F8, %edx\n"
        "  mov $'x', %al\n"
        TF_ON
        "oi_out: outb %al, %dx\n"
        "oi_1: mov $0x3FD, %dx\n"
        "oi_in: inb %dx, %al\n"
        TF_OFF("oi")
        "  movb %al, oi_lsr(%rip)\n"
        "  ret\n");
volatile uint8_t oi_lsr;

L(mm_start); L(mm_rd); L(mm_wr); L(mm_rd2); L(mm_rmw); TAIL_LABELS(mm);
volatile uint32_t mm_ver, mm_tpr, mm_tpr2;
__asm__(".text\n"
        "mm_start: push %rbx\n"
        "  mov $0xFEE00000, %ebx\n"
        TF_ON
        "mm_rd: movl 0x30(%rbx), %ecx\n"   /* LAPIC version register */
        "mm_wr: movl $0x20, 0x80(%rbx)\n"  /* TPR write */
        "mm_rd2: movl 0x80(%rbx), %r9d\n"  /* TPR read */
        "mm_rmw: addl $0x10, 0x80(%rbx)\n" /* read-modify-write of MMIO */
        TF_OFF("mm")
        "  movl 0x80(%rbx), %r10d\n"
        "  movl %r10d, mm_tpr2(%rip)\n"
        "  movl %ecx, mm_ver(%rip)\n"
        "  movl %r9d, mm_tpr(%rip)\n"
        "  movl $0, 0x80(%rbx)\n"
        "  pop %rbx\n"
        "  ret\n");

L(ro_start); L(ro_rep); TAIL_LABELS(ro);
__asm__(".text\n"
        "ro_start: mov $0x3F8, %edx\n"
        "  lea out_buf(%rip), %rsi\n"
        "  mov $3, %ecx\n"
        TF_ON
        "ro_rep: rep outsb\n"
        TF_OFF("ro")
        "  mov %rsi, ro_rsi(%rip)\n"
        "  ret\n");
volatile ureg ro_rsi;

L(ri_start); L(ri_rep); TAIL_LABELS(ri);
__asm__(".text\n"
        "ri_start: mov $0x3FD, %edx\n"
        "  lea in_buf(%rip), %rdi\n"
        "  mov $3, %ecx\n"
        TF_ON
        "ri_rep: rep insb\n"
        TF_OFF("ri")
        "  ret\n");

/* REP MOVSB into MMIO (pc-testdev's RAM-like window at 0xFF000000): one trap
 * per iteration, each after its MMIO write completed. */
L(rm_start); L(rm_rep); TAIL_LABELS(rm);
__asm__(".text\n"
        "rm_start: lea out_buf(%rip), %rsi\n"
        "  mov $0xFF000010, %edi\n"
        "  mov $3, %ecx\n"
        TF_ON
        "rm_rep: rep movsb\n"
        TF_OFF("rm")
        "  ret\n");

void guest_main(void) {
  set_trap_record_only(1, 1);
  write_dr7(0x400);

  case_begin("out_in");
  RUN(oi_start);
  printf("\n");
  {
    const struct trap_expect e[] = {DB(oi_1), DB(oi_in), DB(oi_t0), DB_TAIL(oi)};
    expect_traps(e, 6);
  }
  /* LSR after a polled transmit: THRE and TEMT (bits 5, 6) set. */
  CHECK_EQ(oi_lsr & 0x60, 0x60);

  case_begin("mmio");
  RUN(mm_start);
  {
    const struct trap_expect e[] = {DB(mm_wr), DB(mm_rd2), DB(mm_rmw), DB(mm_t0), DB_TAIL(mm)};
    expect_traps(e, 7);
  }

  case_begin("lapic_values");
  /* SDM vol. 3, 11.4.8 "Local APIC Version Register": version in bits 7:0
   * (0x1X for an integrated APIC), max LVT entry in 23:16 (>= 3). TPR reads
   * back what was written (11.8.3.1). */
  CHECK_EQ(mm_ver & 0xF0, 0x10);
  CHECK(((mm_ver >> 16) & 0xFF) >= 3);
  CHECK_EQ(mm_tpr & 0xFF, 0x20);
  CHECK_EQ(mm_tpr2 & 0xFF, 0x30);

  case_begin("rep_outsb");
  RUN(ro_start);
  printf("\n");
  {
    const struct trap_expect e[] = {DB_RCX(ro_rep, 2), DB_RCX(ro_rep, 1), DB_RCX(ro_t0, 0),
                                    DB_TAIL(ro)};
    expect_traps(e, 6);
  }
  CHECK_EQ(ro_rsi, (ureg)out_buf + 3);

  case_begin("rep_rf");
  /* 18.3.1.1: a trap after an iteration of a REP string instruction other than
   * the last pushes RF = 1 (the instruction is restarted); after the last, the
   * current RF (0). */
  RUN(ro_start);
  printf("\n");
  CHECK_EQ(trap_count, 6);
  CHECK_MSG((trap_log[0].rflags & FL_RF) && (trap_log[1].rflags & FL_RF),
            "iterations 1-2: RF not set in the images (%#lx, %#lx)",
            (unsigned long)trap_log[0].rflags, (unsigned long)trap_log[1].rflags);
  CHECK_MSG(!(trap_log[2].rflags & FL_RF), "last iteration: RF set (%#lx)",
            (unsigned long)trap_log[2].rflags);

  case_begin("rep_movsb_mmio");
  RUN(rm_start);
  {
    const struct trap_expect e[] = {DB_RCX(rm_rep, 2), DB_RCX(rm_rep, 1), DB_RCX(rm_t0, 0),
                                    DB_TAIL(rm)};
    expect_traps(e, 6);
  }
  CHECK_EQ(*(volatile uint8_t*)0xFF000010u, 'a');
  CHECK_EQ(*(volatile uint8_t*)0xFF000012u, 'c');

  case_begin("rep_insb");
  RUN(ri_start);
  {
    const struct trap_expect e[] = {DB_RCX(ri_rep, 2), DB_RCX(ri_rep, 1), DB_RCX(ri_t0, 0),
                                    DB_TAIL(ri)};
    expect_traps(e, 6);
  }
  for (int i = 0; i < 3; i++) CHECK_EQ(in_buf[i] & 0x60, 0x60); /* LSR: THRE | TEMT */
  CHECK_EQ(in_buf[3], 0);
}
