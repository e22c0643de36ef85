/* Double-fault rules (SDM vol. 3, 6.15 "Exception and Interrupt Reference",
 * Interrupt 8 — Double Fault, table 6-5 "Conditions for Generating a Double
 * Fault"): a contributory exception (#DE, #TS, #NP, #SS, #GP) raised while
 * delivering a contributory one, or a #PF or contributory exception raised
 * while delivering a #PF, becomes #DF with error code 0; a benign first
 * exception (#UD here) followed by a contributory one is handled serially.
 * #DF runs on IST1 (6.14.5). */
#include "guest.h"

GUEST_NAME("double_fault");

static uint8_t df_stack[4096] __attribute__((aligned(16)));
volatile ureg df_saved_rsp;
static volatile ureg df_frame_rip_addr, df_cr2;

void df_probe(void (*trigger)(void));
__asm__(".text\n"
        "df_probe: push %rbx\n"
        "  push %rbp\n"
        "  push %r12\n"
        "  push %r13\n"
        "  push %r14\n"
        "  push %r15\n"
        "  mov %rsp, df_saved_rsp(%rip)\n"
        "  call *%rdi\n"
        "df_resume: pop %r15\n"
        "  pop %r14\n"
        "  pop %r13\n"
        "  pop %r12\n"
        "  pop %rbp\n"
        "  pop %rbx\n"
        "  ret\n"
        "trig_int60: int $0x60\n"
        "  ret\n"
        "trig_pf: movq 0x8000000000, %rax\n"
        "  ret\n"
        "trig_gp: mov $0x1234, %ax\n"
        "  mov %ax, %ds\n" /* selector beyond the GDT limit: #GP(0x1230) */
        "  ret\n"
        "trig_ud: ud2\n"
        "trig_ud_end: ret\n");
extern char df_resume[], trig_ud_end[];
void trig_int60(void);
void trig_pf(void);
void trig_gp(void);
void trig_ud(void);

/* #DF is an abort: the saved RIP is undefined (6.15), so resume by hand. */
static void df_hook(struct trap_frame* f) {
  df_frame_rip_addr = (ureg)&f->rip;
  df_cr2 = read_cr2();
  f->rip = (ureg)df_resume;
  f->rsp = df_saved_rsp;
  f->cs = SEL_CODE64;
  f->ss = SEL_DATA;
  f->rflags = 0x2;
}
static void np_hook(struct trap_frame* f) { f->rip = (ureg)trig_ud_end; }

static void expect_df(void) {
  CHECK_MSG(trap_count == 1, "%d trap(s), expected only #DF", trap_count);
  CHECK_EQ(trap_log[0].vector, 8);
  CHECK_EQ(trap_log[0].error, 0);
  /* error code + SS, RSP, RFLAGS, CS, RIP on the IST1 stack */
  CHECK_EQ(df_frame_rip_addr, (ureg)df_stack + 4096 - 40);
  if (trap_count != 1) trap_log_dump();
}

void guest_main(void) {
  tss_set_ist(1, (ureg)df_stack + 4096);
  idt_set_attr(8, 0xE, 0, 1);
  set_trap_hook(8, df_hook);

  case_begin("np_then_gp");
  /* INT 0x60 through a not-present gate: #NP; the #NP gate names a data
   * segment as its code segment: #GP while delivering #NP -> #DF. */
  idt_set_present(0x60, 0);
  idt_set_gate(11, idt_stub(11), SEL_DATA, 0xE, 0, 0);
  trap_log_clear();
  df_probe(trig_int60);
  idt_set_attr(11, 0xE, 0, 0);
  idt_set_present(0x60, 1);
  expect_df();

  case_begin("gp_then_gp");
  idt_set_gate(13, idt_stub(13), SEL_DATA, 0xE, 0, 0);
  trap_log_clear();
  df_probe(trig_gp);
  idt_set_attr(13, 0xE, 0, 0);
  expect_df();

  case_begin("pf_then_gp");
  idt_set_gate(14, idt_stub(14), SEL_DATA, 0xE, 0, 0);
  trap_log_clear();
  df_probe(trig_pf);
  idt_set_attr(14, 0xE, 0, 0);
  expect_df();

  case_begin("pf_then_pf");
  /* #PF delivered on IST3 = an unmapped stack: the push faults -> #DF. */
  tss_set_ist(3, 0x8000001000ull);
  idt_set_attr(14, 0xE, 0, 3);
  trap_log_clear();
  df_probe(trig_pf);
  idt_set_attr(14, 0xE, 0, 0);
  expect_df();
  CHECK_MSG(df_cr2 >= 0x8000001000ull - 48 && df_cr2 < 0x8000001000ull,
            "CR2 %#lx is not in the IST3 frame", (unsigned long)df_cr2);

  case_begin("benign_then_contributory");
  /* #UD (benign) through a not-present gate: #NP is delivered normally with
   * error code 6*8 + IDT + EXT. */
  idt_set_present(6, 0);
  set_trap_hook(11, np_hook);
  trap_log_clear();
  df_probe(trig_ud);
  idt_set_present(6, 1);
  set_trap_hook(11, 0);
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 11);
  CHECK_EQ(trap_log[0].error, 6 * 8 + 2 + 1);
}
