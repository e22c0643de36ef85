/* Issue 4 point 1: the single-step trap (EFLAGS.TF).
 * Intel SDM vol. 3, 18.3.1.4 "Single-Step Exception Condition" and 2.3
 * "System Flags and Fields in the EFLAGS Register" (TF): the trap is taken after
 * an instruction only when TF was set before it executed; "if an application
 * program sets the TF flag using a POPF, POPFD, or IRET instruction, a debug
 * exception is generated after the instruction that follows the POPF, POPFD, or
 * IRET"; an instruction that clears TF with TF set does trap. The trap sets
 * DR6.BS (18.2.3 "Debug Status Register"), TF is cleared on entry to the
 * handler (6.12.1.3 "Flag Usage By Exception- or Interrupt-Handler Procedure")
 * and restored by IRET. AMD APM vol. 2, 13.1.3.3 agrees. */
#include "guest.h"

GUEST_NAME("debug_tf");

#define L(x) extern char x[]
/* popf_set: POPF sets TF (no trap after it), NOP traps, the POPF that clears
 * TF traps too. */
L(ps_start); L(ps_nop); L(ps_1); L(ps_2); L(ps_3); L(ps_end);
__asm__(".text\n"
        "ps_start: pushfq\n"
        "  orq $0x100, (%rsp)\n"
        "  popfq\n"
        "ps_nop: nop\n"
        "ps_1: pushfq\n"
        "ps_2: andq $~0x100, (%rsp)\n"
        "ps_3: popfq\n"
        "ps_end: ret\n");

/* popf_clear: TF set by the first POPF, cleared by the next one: exactly one
 * trap, after the clearing POPF, with TF clear in the saved image. */
L(pc_start); L(pc_end);
__asm__(".text\n"
        "pc_start: pushfq\n"
        "  pushfq\n"
        "  orq $0x100, (%rsp)\n"
        "  popfq\n"
        "  popfq\n"
        "pc_end: ret\n");

/* iret_set: IRETQ loads RFLAGS with TF set: no trap after the IRETQ, the next
 * instruction traps. */
L(ir_start); L(ir_target); L(ir_1); L(ir_2); L(ir_3); L(ir_end);
__asm__(".text\n"
        "ir_start: mov %rsp, %rax\n"
        "  pushq $0x10\n"
        "  pushq %rax\n"
        "  pushfq\n"
        "  orq $0x100, (%rsp)\n"
        "  pushq $0x18\n"
        "  lea ir_target(%rip), %rax\n"
        "  pushq %rax\n"
        "  iretq\n"
        "ir_target: xor %eax, %eax\n"
        "ir_1: pushfq\n"
        "ir_2: andq $~0x100, (%rsp)\n"
        "ir_3: popfq\n"
        "ir_end: ret\n");

/* branch: the trap after a taken JMP reports the target; after a CALL, the
 * callee's first instruction; after RET, the return address. */
L(br_start); L(br_jmp); L(br_target); L(br_call); L(br_fn); L(br_after_call); L(br_1);
L(br_2); L(br_end);
__asm__(".text\n"
        "br_start: pushfq\n"
        "  orq $0x100, (%rsp)\n"
        "  popfq\n"
        "br_jmp: jmp br_target\n"
        "  ud2\n"
        "br_target: call br_fn\n"
        "br_after_call: pushfq\n"
        "br_1: andq $~0x100, (%rsp)\n"
        "br_2: popfq\n"
        "br_end: ret\n"
        "br_fn: ret\n");

/* fault: an instruction that faults does not complete, so no single-step trap
 * is reported for it (18.3.1.4: the trap follows execution); the #UD handler
 * resumes at ft_resume with TF restored from the image, and the instruction
 * there traps. */
L(ft_start); L(ft_ud); L(ft_resume); L(ft_1); L(ft_2); L(ft_end);
__asm__(".text\n"
        "ft_start: pushfq\n"
        "  orq $0x100, (%rsp)\n"
        "  popfq\n"
        "ft_ud: ud2\n"
        "ft_resume: pushfq\n"
        "ft_1: andq $~0x100, (%rsp)\n"
        "ft_2: popfq\n"
        "ft_end: ret\n");

/* cpl3: IRETQ into CPL 3 with TF set (user_call with RFLAGS.TF): the first
 * trap follows the first user instruction (user_call's CALL into u_tf), every
 * #DB goes CPL 3 -> CPL 0 through TSS.RSP0 and IRETQ returns with TF. */
L(u_tf); L(u_tf_1); L(u_tf_2); L(u_tf_3); L(u_tf_4); L(u_tf_end);
__asm__(".text\n"
        "u_tf: nop\n"
        "u_tf_1: nop\n"
        "u_tf_2: pushfq\n"
        "u_tf_3: andq $~0x100, (%rsp)\n"
        "u_tf_4: popfq\n"
        "u_tf_end: xor %eax, %eax\n"
        "  ret\n");
ureg u_tf_fn(ureg);
__asm__(".text\n u_tf_fn = u_tf\n");

static void run(void (*fn)(void)) {
  write_dr6(DR6_INIT);
  trap_log_clear();
  fn();
}

static volatile ureg handler_flags[TRAP_LOG_MAX];
static void db_hook(struct trap_frame* f) {
  (void)f;
  int i = trap_count - 1;
  if (i < TRAP_LOG_MAX) handler_flags[i] = read_flags();
}
static void ud_hook(struct trap_frame* f) { f->rip = (ureg)ft_resume; }

#define DB(rip_) {1, (ureg)(rip_), DR6_BS, FL_TF, 0, 0, 0}
#define DB_TF_OFF(rip_) {1, (ureg)(rip_), DR6_BS, 0, FL_TF, 0, 0}

void guest_main(void) {
  set_trap_hook(1, db_hook);
  write_dr7(0x400);

  case_begin("popf_set");
  run((void (*)(void))ps_start);
  {
    const struct trap_expect e[] = {DB(ps_1), DB(ps_2), DB(ps_3), DB_TF_OFF(ps_end)};
    expect_traps(e, 4);
  }

  case_begin("tf_cleared_in_handler");
  /* 6.12.1.3: the processor clears TF (and RF) on entry through a gate; an
   * interrupt gate clears IF too. */
  for (int i = 0; i < trap_count && i < TRAP_LOG_MAX; i++)
    CHECK_MSG((handler_flags[i] & (FL_TF | FL_IF | FL_RF)) == 0, "handler %d rflags %#lx", i,
              (unsigned long)handler_flags[i]);
  CHECK_EQ(read_flags() & FL_TF, 0);

  case_begin("popf_clear");
  run((void (*)(void))pc_start);
  {
    const struct trap_expect e[] = {DB_TF_OFF(pc_end)};
    expect_traps(e, 1);
  }

  case_begin("iret_set");
  run((void (*)(void))ir_start);
  {
    const struct trap_expect e[] = {DB(ir_1), DB(ir_2), DB(ir_3), DB_TF_OFF(ir_end)};
    expect_traps(e, 4);
  }

  case_begin("branch");
  run((void (*)(void))br_start);
  {
    const struct trap_expect e[] = {DB(br_target), DB(br_fn), DB(br_after_call), DB(br_1),
                                    DB(br_2), DB_TF_OFF(br_end)};
    expect_traps(e, 6);
  }

  case_begin("fault_no_trap");
  set_trap_hook(6, ud_hook);
  run((void (*)(void))ft_start);
  {
    const struct trap_expect e[] = {{6, (ureg)ft_ud, 0, FL_TF, 0, 0, 0}, DB(ft_1), DB(ft_2),
                                    DB_TF_OFF(ft_end)};
    expect_traps(e, 4);
  }
  set_trap_hook(6, 0);

  case_begin("cpl3");
  write_dr6(DR6_INIT);
  trap_log_clear();
  user_call(u_tf_fn, (ureg)user_stack_top, 0, 0x2 | FL_TF);
  {
    const struct trap_expect e[] = {DB(u_tf), DB(u_tf_1), DB(u_tf_2), DB(u_tf_3), DB(u_tf_4),
                                    DB_TF_OFF(u_tf_end)};
    expect_traps(e, 6);
    for (int i = 0; i < trap_count && i < 6; i++)
      CHECK_MSG(trap_log[i].cs == (SEL_UCODE64 | 3), "trap %d cs %#lx", i,
                (unsigned long)trap_log[i].cs);
  }

  case_begin("rf_image");
  /* SDM vol. 3 18.3.1.1 (RF): the RF value pushed is 1 for every fault-class
   * exception other than an instruction-breakpoint #DB, and the current RF
   * (0 here) for trap-class exceptions after a completed instruction. */
  set_trap_hook(6, ud_hook);
  run((void (*)(void))ft_start);
  set_trap_hook(6, 0);
  CHECK_EQ(trap_count, 4);
  CHECK_MSG(trap_log[0].rflags & FL_RF, "#UD image rflags %#lx: RF clear",
            (unsigned long)trap_log[0].rflags);
  for (int i = 1; i < trap_count && i < 4; i++)
    CHECK_MSG(!(trap_log[i].rflags & FL_RF), "single-step image %d rflags %#lx: RF set", i,
              (unsigned long)trap_log[i].rflags);

  case_begin("dr6_bs_only");
  /* A single-step-only trap reports BS and no B0-B3 (18.2.3); the handler reset
   * DR6 after each trap, so every record above holds only that trap's bits.
   * Here DR6 is left alone: BS stays set after the trap (the CPU never clears it). */
  trap_reset_dr6 = 0;
  run((void (*)(void))pc_start);
  trap_reset_dr6 = 1;
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(read_dr6() & DR6_MASK, DR6_BS);
  write_dr6(DR6_INIT);
}
