/* Issue 4 point 5: INT3, INT1 (ICEBP), INTO and INT n, and how they meet TF
 * (32-bit guest: INTO is invalid in 64-bit mode).
 * SDM vol. 2A "INT n/INTO/INT3/INT1": INT3 raises #BP as a trap (saved EIP =
 * the next instruction); INT1 raises a trap-like #DB without setting any DR6
 * condition bit (vol. 3 18.2.3: BS, BD and B0-B3 report only their own
 * conditions); INTO raises #OF (trap) only when OF = 1; the gate-DPL check
 * (DPL < CPL -> #GP(vector*8+2)) applies to INT n, INT3 and INTO but not to
 * INT1. #BP leaves DR6 alone (it is not a debug exception). Vol. 3 6.12.1.3:
 * TF is cleared on entry and restored by IRET, so with TF set the single-step
 * trap comes after the instruction that follows the software interrupt. */
#include "guest.h"

GUEST_NAME("debug_int");

#define L(x) extern char x[]
#define TF_ON "pushfl\n orl $0x100, (%esp)\n popfl\n"
#define TF_OFF(p) p "_t0: pushfl\n" p "_t1: andl $~0x100, (%esp)\n" p "_t2: popfl\n" p "_end:\n"
#define TAIL_LABELS(p) L(p##_t0); L(p##_t1); L(p##_t2); L(p##_end)
#define DB(rip_) {1, (ureg)(rip_), DR6_BS, FL_TF, 0, 0, 0}
#define DB_TF_OFF(rip_) {1, (ureg)(rip_), DR6_BS, 0, FL_TF, 0, 0}
#define DB_TAIL(p) DB(p##_t1), DB(p##_t2), DB_TF_OFF(p##_end)

L(i3_after); L(cd3_after); L(i1_after); L(io_after); L(in_after);
__asm__(".text\n"
        "do_int3: int3\n"
        "i3_after: ret\n"
        "do_cd03: .byte 0xcd, 0x03\n"
        "cd3_after: ret\n"
        "do_int1: .byte 0xf1\n"
        "i1_after: ret\n"
        "do_into_of: mov $0x7f, %al\n"
        "  add $1, %al\n" /* OF = 1 */
        "  into\n"
        "io_after: ret\n"
        "do_into_no: xor %eax, %eax\n" /* OF = 0 */
        "  into\n"
        "in_after: ret\n");
void do_int3(void);
void do_cd03(void);
void do_int1(void);
void do_into_of(void);
void do_into_no(void);

/* INT3 and INTO with TF set. */
L(t3_start); L(t3_int3); L(t3_after); TAIL_LABELS(t3);
__asm__(".text\n"
        "t3_start: " TF_ON
        "t3_int3: int3\n"
        "t3_after: nop\n" TF_OFF("t3") "  ret\n");
L(to_start); L(to_into); L(to_after); TAIL_LABELS(to);
__asm__(".text\n"
        "to_start: mov $0x7f, %al\n"
        "  add $1, %al\n" TF_ON
        "to_into: into\n"
        "to_after: nop\n" TF_OFF("to") "  ret\n");

/* Ring-3 callers (run through user_call). */
L(u3_int3); L(u3_after); L(u1_after); L(ucd_int); L(ucd_after);
__asm__(".text\n"
        "user_int3: \n"
        "u3_int3: int3\n"
        "u3_after: xor %eax, %eax\n"
        "  ret\n"
        "user_int1: .byte 0xf1\n"
        "u1_after: xor %eax, %eax\n"
        "  ret\n"
        "user_int_n: \n"
        "ucd_int: int $0x50\n"
        "ucd_after: xor %eax, %eax\n"
        "  ret\n");
ureg user_int3(ureg);
ureg user_int1(ureg);
ureg user_int_n(ureg);

static void run(void (*fn)(void), uint32_t dr6) {
  write_dr6(dr6);
  trap_log_clear();
  fn();
}

/* #GP from ring 3 on a software interrupt: skip the INT instruction. */
/* Resume after the INT whatever RIP the #GP reported (checked separately). */
static ureg gp_resume;
static void gp_skip(struct trap_frame* f) { f->rip = gp_resume; }
static void skip_ud(struct trap_frame* f) { f->rip += 1; }

void guest_main(void) {
  set_trap_record_only(1, 1);
  set_trap_record_only(3, 1);
  set_trap_record_only(4, 1);
  set_trap_hook(6, skip_ud); /* a runner rejecting INT1 fails only that case */
  write_dr7(0x400);

  case_begin("int3");
  run(do_int3, DR6_INIT | DR6_B1);
  {
    const struct trap_expect e[] = {{3, (ureg)i3_after, DR6_B1, 0, FL_TF, 0, 0}};
    expect_traps(e, 1);
  }
  case_begin("int_3_cd03");
  run(do_cd03, DR6_INIT);
  {
    const struct trap_expect e[] = {{3, (ureg)cd3_after, 0, 0, FL_TF, 0, 0}};
    expect_traps(e, 1);
  }
  case_begin("int1");
  run(do_int1, DR6_INIT);
  {
    const struct trap_expect e[] = {{1, (ureg)i1_after, 0, 0, FL_TF, 0, 0}};
    expect_traps(e, 1);
  }
  case_begin("into");
  run(do_into_of, DR6_INIT);
  {
    const struct trap_expect e[] = {{4, (ureg)io_after, 0, FL_OF, 0, 0, 0}};
    expect_traps(e, 1);
  }
  run(do_into_no, DR6_INIT);
  CHECK_EQ(trap_count, 0);

  case_begin("int3_tf");
  run((void (*)(void))t3_start, DR6_INIT);
  {
    const struct trap_expect e[] = {{3, (ureg)t3_after, 0, FL_TF, 0, 0, 0}, DB(t3_t0),
                                    DB_TAIL(t3)};
    expect_traps(e, 5);
  }
  case_begin("into_tf");
  run((void (*)(void))to_start, DR6_INIT);
  {
    const struct trap_expect e[] = {{4, (ureg)to_after, 0, FL_TF, 0, 0, 0}, DB(to_t0),
                                    DB_TAIL(to)};
    expect_traps(e, 5);
  }

  case_begin("user_int3_dpl0");
  /* Gate 3 has DPL 0: INT3 at CPL 3 -> #GP(3*8+2), a fault on the INT3. */
  set_trap_hook(13, gp_skip);
  gp_resume = (ureg)u3_after;
  trap_log_clear();
  user_call(user_int3, (ureg)user_stack_top, 0, 0x2);
  {
    const struct trap_expect e[] = {{13, (ureg)u3_int3, 0, 0, 0, 0, 0}};
    expect_traps(e, 1);
    CHECK_EQ(trap_log[0].error, 3 * 8 + 2);
    CHECK_EQ(trap_log[0].cs, SEL_UCODE32 | 3);
  }
  case_begin("user_int3_dpl3");
  idt_set_attr(3, 0xE, 3, 0);
  trap_log_clear();
  user_call(user_int3, (ureg)user_stack_top, 0, 0x2);
  idt_set_attr(3, 0xE, 0, 0);
  {
    const struct trap_expect e[] = {{3, (ureg)u3_after, 0, 0, 0, 0, 0}};
    expect_traps(e, 1);
    CHECK_EQ(trap_log[0].cs, SEL_UCODE32 | 3);
  }
  case_begin("user_int1_dpl0");
  /* INT1 skips the DPL check: #DB is delivered through the DPL-0 gate. */
  write_dr6(DR6_INIT);
  trap_log_clear();
  user_call(user_int1, (ureg)user_stack_top, 0, 0x2);
  {
    const struct trap_expect e[] = {{1, (ureg)u1_after, 0, 0, 0, 0, 0}};
    expect_traps(e, 1);
  }
  case_begin("user_int_n_dpl0");
  gp_resume = (ureg)ucd_after;
  trap_log_clear();
  user_call(user_int_n, (ureg)user_stack_top, 0, 0x2);
  {
    const struct trap_expect e[] = {{13, (ureg)ucd_int, 0, 0, 0, 0, 0}};
    expect_traps(e, 1);
    CHECK_EQ(trap_log[0].error, 0x50 * 8 + 2);
  }
  set_trap_hook(13, 0);
}
