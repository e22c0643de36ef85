/* IDT delivery in 64-bit mode: privilege change through TSS.RSP0, IST stacks,
 * 16-byte stack alignment, gate DPL, not-present gates, interrupt vs trap
 * gates, error-code EXT/IDT bits.
 * SDM vol. 3, 6.14 "Exception and Interrupt Handling in 64-bit Mode":
 * 6.14.2 "64-Bit Mode Stack Frame" (RSP aligned to 16 before the push; SS:RSP
 * always pushed; on a CPL change the new SS is a NULL selector with RPL = new
 * CPL), 6.14.5 "Interrupt Stack Table" (IST used whatever the CPL, and SS
 * forced to NULL with it, a CPL change or not), 6.12.1.1
 * "Protection of Exception- and Interrupt-Handler Procedures" (INT n with gate
 * DPL < CPL -> #GP(vector*8+2)), 6.13 "Error Code" (EXT = bit 0, IDT = bit 1),
 * 6.12.1.3 (interrupt gates clear IF, trap gates do not). */
#include "guest.h"

GUEST_NAME("idt_priv");

static uint8_t ist_stack[2][4096] __attribute__((aligned(16)));

struct seen {
  ureg frame_rip_addr, rip, cs, rflags, rsp, ss, handler_ss, handler_flags;
};
static volatile struct seen seen;
static void record_hook(struct trap_frame* f) {
  uint16_t ss;
  __asm__ volatile("mov %%ss, %0" : "=r"(ss));
  seen.frame_rip_addr = (ureg)&f->rip;
  seen.rip = f->rip;
  seen.cs = f->cs;
  seen.rflags = f->rflags;
  seen.rsp = f->rsp;
  seen.ss = f->ss;
  seen.handler_ss = ss;
  seen.handler_flags = read_flags();
}

extern char u50_after[], u51_after[], u52_int[], u_int53[], k_int51_after[];
ureg user_int50(ureg);
ureg user_int51(ureg);
ureg user_int52(ureg);
__asm__(".text\n"
        "user_int50: int $0x50\n"
        "u50_after: ret\n"
        "user_int51: int $0x51\n"
        "u51_after: ret\n"
        "user_int52: \n"
        "u52_int: int $0x52\n"
        "u52_after: ret\n");
extern char u52_after[];

/* Resume after the INT whatever RIP the #GP reported (checked separately). */
/* IRETQ from 64-bit mode to 32-bit compatibility mode at CPL 0 (SDM vol. 2A
 * "IRET/IRETD/IRETQ", IA-32e mode: the CS descriptor's L bit selects the
 * mode), then a far jump back to the 64-bit code segment. */
volatile uint32_t iq_cs, iq_eflags;
void iretq_to_compat(void);
__asm__(".text\n"
        "iretq_to_compat: mov %rsp, %rax\n"
        "  pushq $0x10\n"
        "  pushq %rax\n"
        "  pushq $0xc3\n" /* RFLAGS: CF, ZF, SF, bit 1; IF = 0 */
        "  pushq $0x08\n"
        "  lea iq_compat(%rip), %rcx\n"
        "  pushq %rcx\n"
        "  iretq\n"
        ".code32\n"
        "iq_compat: mov %cs, %ecx\n"
        "  mov %ecx, iq_cs\n"
        "  pushfl\n"
        "  popl iq_eflags\n"
        "  ljmp $0x18, $iq_back\n"
        ".code64\n"
        "iq_back: ret\n");

static void gp_skip(struct trap_frame* f) { f->rip = (ureg)u52_after; }

void guest_main(void) {
  for (int v = 0x50; v <= 0x56; v++) set_trap_hook(v, record_hook);

  case_begin("rsp0");
  idt_set_attr(0x50, 0xE, 3, 0);
  ureg top = (ureg)intr_stack_top;
  trap_log_clear();
  user_call(user_int50, (ureg)user_stack_top, 0, 0x2);
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(seen.rip, (ureg)u50_after);
  CHECK_EQ(seen.cs, SEL_UCODE64 | 3);
  CHECK_EQ(seen.ss, SEL_UDATA | 3);
  CHECK_EQ(seen.rsp, (ureg)user_stack_top - 8); /* the CALL into the user function */
  CHECK_EQ(seen.frame_rip_addr, top - 40);      /* SS, RSP, RFLAGS, CS, RIP below RSP0 */
  CHECK_EQ(seen.handler_ss, 0);                 /* NULL SS, RPL 0 */

  case_begin("rsp0_alignment");
  /* RSP0 not 16-byte aligned: the CPU aligns it down before pushing. */
  tss_set_rsp0(top - 8);
  user_call(user_int50, (ureg)user_stack_top, 0, 0x2);
  CHECK_EQ(seen.frame_rip_addr, top - 16 - 40);
  tss_set_rsp0(top);

  case_begin("ist_from_cpl0");
  tss_set_ist(2, (ureg)ist_stack[1] + 4096);
  idt_set_attr(0x51, 0xE, 3, 2);
  __asm__ volatile("int $0x51\n.globl k_int51_after\nk_int51_after:" ::: "memory");
  CHECK_EQ(seen.frame_rip_addr, (ureg)ist_stack[1] + 4096 - 40);
  CHECK_EQ(seen.rip, (ureg)k_int51_after);
  CHECK_EQ(seen.cs, SEL_CODE64);
  CHECK_EQ(seen.ss, SEL_DATA); /* same CPL: the old SS is pushed */
  CHECK_EQ(seen.handler_ss, 0); /* an IST switch loads a NULL SS all the same (6.14.5) */

  case_begin("ist_from_cpl3");
  user_call(user_int51, (ureg)user_stack_top, 0, 0x2);
  CHECK_EQ(seen.frame_rip_addr, (ureg)ist_stack[1] + 4096 - 40);
  CHECK_EQ(seen.cs, SEL_UCODE64 | 3);
  CHECK_EQ(seen.rip, (ureg)u51_after);

  case_begin("same_cpl_no_switch");
  {
    ureg rsp_before;
    __asm__ volatile("mov %%rsp, %0\n int $0x54" : "=r"(rsp_before)::"memory");
    /* 6.14.2: the frame starts at the old RSP aligned down to 16. */
    CHECK_EQ(seen.frame_rip_addr, (rsp_before & ~(ureg)15) - 40);
    CHECK_EQ(seen.rsp, rsp_before);
  }

  case_begin("gate_dpl");
  idt_set_attr(0x52, 0xE, 0, 0);
  set_trap_hook(13, gp_skip);
  trap_log_clear();
  user_call(user_int52, (ureg)user_stack_top, 0, 0x2);
  set_trap_hook(13, 0);
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 13);
  CHECK_EQ(trap_log[0].error, 0x52 * 8 + 2); /* IDT = 1, EXT = 0 (software INT) */
  CHECK_EQ(trap_log[0].rip, (ureg)u52_int);

  case_begin("gate_not_present");
  idt_set_present(0x53, 0);
  trap_log_clear();
  __asm__ volatile(
      "lea 1f(%%rip), %%rax\n mov %%rax, trap_resume(%%rip)\n int $0x53\n1:" ::: "rax", "memory");
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 11);
  CHECK_EQ(trap_log[0].error, 0x53 * 8 + 2);
  /* A not-present gate for a CPU exception: EXT = 1 (6.13). */
  idt_set_present(6, 0);
  trap_log_clear();
  __asm__ volatile(
      "lea 1f(%%rip), %%rax\n mov %%rax, trap_resume(%%rip)\n ud2\n1:" ::: "rax", "memory");
  idt_set_present(6, 1);
  idt_set_present(0x53, 1);
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 11);
  CHECK_EQ(trap_log[0].error, 6 * 8 + 2 + 1);

  case_begin("iretq_to_compat");
  iretq_to_compat();
  CHECK_EQ(iq_cs, SEL_CODE32);
  CHECK_EQ(iq_eflags & 0xFFF, 0x0C3);

  case_begin("interrupt_vs_trap_gate");
  idt_set_attr(0x55, 0xE, 0, 0);
  idt_set_attr(0x56, 0xF, 0, 0);
  __asm__ volatile("sti\n int $0x55\n cli" ::: "memory");
  CHECK_EQ(seen.handler_flags & FL_IF, 0);
  CHECK(seen.rflags & FL_IF);
  __asm__ volatile("sti\n int $0x56\n cli" ::: "memory");
  CHECK_EQ(seen.handler_flags & FL_IF, FL_IF);
}
