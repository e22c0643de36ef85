/* IDT delivery in 32-bit protected mode with a privilege change: SDM vol. 3,
 * 6.12.1 "Exception- or Interrupt-Handler Procedures" (figure 6-4: on a CPL
 * change the CPU loads SS:ESP from TSS.SS0:ESP0 and pushes the old SS, ESP,
 * EFLAGS, CS, EIP [, error code]; without a change only EFLAGS, CS, EIP),
 * 7.2.1 "Task-State Segment (TSS)" (ESP0 at offset 4, SS0 at 8), 6.12.1.2
 * (INT n from CPL 3 through a DPL-3 gate), and IRET back to CPL 3. */
#include "guest.h"

GUEST_NAME("idt_priv32");

static volatile ureg frame_eip_addr, f_eip, f_cs, f_esp, f_ss, h_ss, h_esp_top;
static void hook(struct trap_frame* f) {
  uint16_t ss;
  __asm__ volatile("mov %%ss, %0" : "=r"(ss));
  frame_eip_addr = (ureg)&f->rip;
  f_eip = f->rip;
  f_cs = f->cs;
  f_esp = (f->cs & 3) ? f->rsp : 0;
  f_ss = (f->cs & 3) ? f->ss : 0;
  h_ss = ss;
}

extern char u50_after[];
ureg user_int50(ureg);
__asm__(".text\n"
        "user_int50: int $0x50\n"
        "u50_after: mov %esp, %eax\n"
        "  ret\n");

static uint8_t alt_stack[1024] __attribute__((aligned(16)));

void guest_main(void) {
  set_trap_hook(0x50, hook);
  idt_set_attr(0x50, 0xE, 3, 0);

  case_begin("cpl3_to_cpl0");
  ureg esp_after = user_call(user_int50, (ureg)user_stack_top, 0, 0x2);
  CHECK_EQ(f_eip, (ureg)u50_after);
  CHECK_EQ(f_cs, SEL_UCODE32 | 3);
  CHECK_EQ(f_ss, SEL_UDATA | 3);
  CHECK_EQ(f_esp, esp_after); /* the user ESP at the INT, restored by IRET */
  CHECK_EQ(frame_eip_addr, (ureg)intr_stack_top - 20);
  CHECK_EQ(h_ss, SEL_DATA); /* TSS.SS0 */

  case_begin("esp0_from_tss");
  /* A different ESP0 (and SS0) takes effect on the next privilege change. */
  tss_set_rsp0((ureg)alt_stack + sizeof(alt_stack));
  *(uint32_t*)(tss_area + 8) = SEL_DATA64; /* another flat DPL-0 data segment */
  user_call(user_int50, (ureg)user_stack_top, 0, 0x2);
  CHECK_EQ(frame_eip_addr, (ureg)alt_stack + sizeof(alt_stack) - 20);
  CHECK_EQ(h_ss, SEL_DATA64);
  tss_set_rsp0((ureg)intr_stack_top);
  *(uint32_t*)(tss_area + 8) = SEL_DATA;

  case_begin("same_cpl");
  ureg esp_before;
  __asm__ volatile("mov %%esp, %0\n int $0x50" : "=r"(esp_before)::"memory");
  CHECK_EQ(frame_eip_addr, esp_before - 12); /* EFLAGS, CS, EIP only */
  CHECK_EQ(f_cs, SEL_CODE32);
  CHECK_EQ(h_ss, SEL_DATA);
}
