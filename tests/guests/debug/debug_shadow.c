/* Issue 4 point 3: interrupt shadows (32-bit guest: POP SS exists only outside
 * 64-bit mode).
 * SDM vol. 3, 6.8.3 "Masking Exceptions and Interrupts When Switching Stacks":
 * after MOV SS / POP SS the processor inhibits interrupts, debug exceptions and
 * single-step traps until the boundary after the next instruction; pending
 * breakpoints are then reported together. SDM vol. 2B "STI": interrupts are
 * recognised only after the instruction following STI — STI does not block
 * #DB, so a single-step trap follows the STI itself (SDM vol. 3 table 6-2 and
 * 18.3.1.4). Vol. 3, 18.2.4: the general-detect fault is not deferred by the
 * MOV SS shadow (it is a fault on the MOV DR itself). */
#include "guest.h"

GUEST_NAME("debug_shadow");

#define L(x) extern char x[]
#define TF_ON "pushfl\n orl $0x100, (%esp)\n popfl\n"
#define TF_OFF(p) p "_t0: pushfl\n" p "_t1: andl $~0x100, (%esp)\n" p "_t2: popfl\n" p "_end:\n"
#define TAIL_LABELS(p) L(p##_t0); L(p##_t1); L(p##_t2); L(p##_end)
#define DB(rip_) {1, (ureg)(rip_), DR6_BS, FL_TF, 0, 0, 0}
#define DB_TF_OFF(rip_) {1, (ureg)(rip_), DR6_BS, 0, FL_TF, 0, 0}
#define DB_TAIL(p) DB(p##_t1), DB(p##_t2), DB_TF_OFF(p##_end)

volatile uint16_t ss_val = SEL_DATA;

/* movss_tf: the trap owed to MOV SS (TF set before it) is deferred past the
 * next instruction: one #DB, after the NOP. */
L(ms_start); L(ms_movss); L(ms_nop); TAIL_LABELS(ms);
__asm__(".text\n"
        "ms_start: mov %ss, %ax\n" TF_ON
        "ms_movss: mov %ax, %ss\n"
        "ms_nop: nop\n" TF_OFF("ms") "  ret\n");

L(ps_start); L(ps_popss); L(ps_nop); TAIL_LABELS(ps);
__asm__(".text\n"
        "ps_start: push %ss\n" TF_ON
        "ps_popss: pop %ss\n"
        "ps_nop: nop\n" TF_OFF("ps") "  ret\n");

/* movss_databp: a data breakpoint hit by MOV SS's own read is reported after
 * the next instruction (6.8.3). */
L(md_start); L(md_nop); L(md_end);
__asm__(".text\n"
        "md_start: mov ss_val, %ss\n"
        "md_nop: nop\n"
        "md_end: ret\n");

/* movss_databp_tf: TF and the data breakpoint together: one #DB after the NOP
 * with both B0 and BS (18.3.1.2 / table 6-2: trap-class debug conditions on the
 * same boundary are reported in one #DB). */
L(mt_start); L(mt_nop); TAIL_LABELS(mt);
__asm__(".text\n"
        "mt_start: " TF_ON
        "  mov ss_val, %ss\n"
        "mt_nop: nop\n" TF_OFF("mt") "  ret\n");

/* sti_tf: STI with TF set traps after the STI as usual. */
L(st_start); L(st_sti); L(st_nop); TAIL_LABELS(st);
__asm__(".text\n"
        "st_start: cli\n" TF_ON
        "st_sti: sti\n"
        "st_nop: nop\n" TF_OFF("st") "  cli\n  ret\n");

/* movss_icebp: INT1 (ICEBP) right after MOV SS with TF set: the INT1 #DB is
 * delivered after the INT1 with no BS and no B0-B3 (the single-step owed to
 * MOV SS is not reported as a separate #DB); stepping then continues. The
 * same sequence on hardware and KVM (kvm-unit-tests x86/debug.c
 * "Single-Step + ICEBP #DB w/ MOVSS blocking"). */
L(mi_start); L(mi_icebp); L(mi_after); TAIL_LABELS(mi);
__asm__(".text\n"
        "mi_start: mov %ss, %ax\n" TF_ON
        "  mov %ax, %ss\n"
        "mi_icebp: .byte 0xf1\n"
        "mi_after: nop\n" TF_OFF("mi") "  ret\n");

/* movss_gd: DR7.GD with a MOV DR inside the MOV SS shadow: the general-detect
 * #DB is a fault on the MOV DR (RIP = the MOV DR, DR6.BD), not deferred; after
 * it the MOV DR re-executes (GD was cleared on delivery) and steps normally. */
L(mg_start); L(mg_movdr); L(mg_after); TAIL_LABELS(mg);
__asm__(".text\n"
        "mg_start: mov %ss, %cx\n"
        "  mov $0xFFFF0FF0, %eax\n"
        "  mov $0x2400, %edx\n"
        "  mov %edx, %dr7\n" TF_ON
        "  mov %cx, %ss\n"
        "mg_movdr: mov %eax, %dr6\n"
        "mg_after: nop\n" TF_OFF("mg") "  ret\n");

/* sti_irq: an interrupt pending while IF = 0 is taken only after the
 * instruction that follows STI (RIP saved = the instruction after that NOP). */
L(si_start); L(si_sti); L(si_nop); L(si_after);
__asm__(".text\n"
        "si_start: movl $0x40040, 0xFEE00300\n" /* ICR: self IPI, fixed, vector 0x40 */
        "1: testl $1, 0xFEE00220\n"              /* until IRR bit 0x40 is set: pending */
        "  jz 1b\n"
        "si_sti: sti\n"
        "si_nop: nop\n"
        "si_after: cli\n"
        "  ret\n");

static void run(void (*fn)(void)) {
  write_dr6(DR6_INIT);
  trap_log_clear();
  fn();
}
#define RUN(sym) run((void (*)(void))sym)

static void irq_hook(struct trap_frame* f) {
  (void)f;
  *(volatile uint32_t*)0xFEE000B0 = 0; /* EOI */
}

/* A runner that rejects INT1 (#UD) must not stop the later cases. */
static void skip_ud(struct trap_frame* f) { f->rip += 1; }

void guest_main(void) {
  set_trap_record_only(1, 1);
  write_dr7(0x400);

  case_begin("movss_tf");
  RUN(ms_start);
  {
    const struct trap_expect e[] = {DB(ms_t0), DB_TAIL(ms)};
    expect_traps(e, 4);
  }

  case_begin("popss_tf");
  RUN(ps_start);
  {
    const struct trap_expect e[] = {DB(ps_t0), DB_TAIL(ps)};
    expect_traps(e, 4);
  }

  /* DR0 = ss_val, R/W0 = 11 (read or write), LEN0 = 01 (2 bytes), L0. */
  const ureg dr7_rw2 = 0x400 | 1 | (3u << 16) | (1u << 18);
  case_begin("movss_databp");
  write_dr0((ureg)&ss_val);
  write_dr7(dr7_rw2);
  RUN(md_start);
  write_dr7(0x400);
  {
    const struct trap_expect e[] = {{1, (ureg)md_end, DR6_B0, 0, FL_TF, 0, 0}};
    expect_traps(e, 1);
  }

  case_begin("movss_databp_tf");
  write_dr7(dr7_rw2);
  RUN(mt_start);
  write_dr7(0x400);
  {
    const struct trap_expect e[] = {{1, (ureg)mt_t0, DR6_B0 | DR6_BS, FL_TF, 0, 0, 0},
                                    DB_TAIL(mt)};
    expect_traps(e, 4);
  }

  case_begin("sti_tf");
  RUN(st_start);
  {
    const struct trap_expect e[] = {DB(st_nop), DB(st_t0), DB_TAIL(st)};
    expect_traps(e, 5);
  }

  case_begin("movss_icebp");
  set_trap_hook(6, skip_ud);
  RUN(mi_start);
  set_trap_hook(6, 0);
  {
    const struct trap_expect e[] = {{1, (ureg)mi_after, 0, 0, 0, 0, 0}, DB(mi_t0), DB_TAIL(mi)};
    expect_traps(e, 5);
  }

  case_begin("movss_gd");
  RUN(mg_start);
  {
    const struct trap_expect e[] = {{1, (ureg)mg_movdr, DR6_BD, 0, 0, 0, 0}, DB(mg_after),
                                    DB(mg_t0), DB_TAIL(mg)};
    expect_traps(e, 6);
  }
  CHECK_EQ(read_dr7() & 0x2000, 0); /* GD cleared by the #DB delivery (18.2.4) */
  write_dr7(0x400);

  case_begin("sti_irq");
  /* LAPIC software enable (SVR bit 8, spurious vector 0xFF): SDM vol. 3 11.9. */
  *(volatile uint32_t*)0xFEE000F0 = 0x1FF;
  set_trap_hook(0x40, irq_hook);
  RUN(si_start);
  {
    const struct trap_expect e[] = {{0x40, (ureg)si_after, 0, FL_IF, 0, 0, 0}};
    expect_traps(e, 1);
  }
}
