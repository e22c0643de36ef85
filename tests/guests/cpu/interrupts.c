/* External interrupts and NMIs (64-bit guest, local APIC self-IPIs).
 * SDM vol. 3: 6.8.1 "Masking Maskable Hardware Interrupts" (IF), vol. 2B
 * "STI" (interrupts are recognised only after the instruction that follows
 * STI, so STI; HLT wakes at the instruction after HLT), "HLT" (an enabled
 * interrupt resumes execution after the HLT), 6.7.1 "Handling Multiple NMIs"
 * (NMIs are blocked from NMI delivery until the next IRET), 10.6.1 / 11.6.1
 * "Interrupt Command Register" (fixed IPI with the self shorthand; NMI to the
 * own APIC ID). */
#include "guest.h"

GUEST_NAME("interrupts");

#define APIC 0xFEE00000u
#define ICR_LO (APIC + 0x300)
#define ICR_HI (APIC + 0x310)
#define EOI (APIC + 0x0B0)
#define SVR (APIC + 0x0F0)
#define TPR (APIC + 0x080)
static inline void apic_write(uint32_t reg, uint32_t v) { *(volatile uint32_t*)(ureg)reg = v; }

static void irq_hook(struct trap_frame* f) {
  (void)f;
  apic_write(EOI, 0);
}

static volatile int in_nmi, nmi_nested, nmi_resend;
static void nmi_hook(struct trap_frame* f) {
  (void)f;
  if (in_nmi) nmi_nested = 1;
  in_nmi = 1;
  if (nmi_resend) {
    nmi_resend = 0;
    apic_write(ICR_HI, 0);
    apic_write(ICR_LO, 0x400); /* another NMI to ourselves: held until our IRET */
    for (volatile int i = 0; i < 1000; i++) {
    }
  }
  in_nmi = 0;
}

/* IPIs are made pending deterministically: sent with IF = 0, then the IRR bit
 * is polled (IPI delivery latency is not architectural). */
extern char sh_after[], pf_after[], if0_after[];
void sti_hlt(void);
void popf_enable(void);
void sti_shadow(void);
void send_nmi(void);
__asm__(".text\n"
        /* rdi = vector; returns once IRR[vector] is set */
        "pend_ipi: mov $0xFEE00000, %eax\n"
        "  mov %edi, %ecx\n"
        "  or $0x40000, %ecx\n" /* fixed, self shorthand */
        "  movl %ecx, 0x300(%rax)\n"
        "  mov %edi, %ecx\n"
        "  shr $5, %ecx\n"
        "  shl $4, %ecx\n"      /* IRR register offset: 0x200 + 16 * (vector / 32) */
        "  mov %edi, %edx\n"
        "  and $31, %edx\n"
        "1: mov 0x200(%rax,%rcx), %r8d\n"
        "  bt %edx, %r8d\n"
        "  jnc 1b\n"
        "  ret\n"
        /* pending IRQ; STI; HLT -> the interrupt wakes the HLT, RIP after it */
        "sti_hlt: cli\n"
        "  mov $0x40, %edi\n"
        "  call pend_ipi\n"
        "  sti\n"
        "  hlt\n"
        "sh_after: cli\n"
        "  ret\n"
        /* pending IRQ; POPF sets IF: taken right after the POPF (no shadow) */
        "popf_enable: cli\n"
        "  mov $0x41, %edi\n"
        "  call pend_ipi\n"
        "  pushfq\n"
        "  orq $0x200, (%rsp)\n"
        "  popfq\n"
        "pf_after: cli\n"
        "  ret\n"
        /* pending IRQ; STI; NOP: taken after the NOP that STI shadows */
        "sti_shadow: cli\n"
        "  mov $0x42, %edi\n"
        "  call pend_ipi\n"
        "  nop\n"
        "  sti\n"
        "  nop\n"
        "if0_after: cli\n"
        "  ret\n"
        /* NMI to APIC ID 0, then a short spin for its delivery latency */
        "send_nmi: mov $0xFEE00000, %eax\n"
        "  movl $0, 0x310(%rax)\n"
        "  movl $0x400, 0x300(%rax)\n"
        "  mov $1000, %ecx\n"
        "1: dec %ecx\n"
        "  jnz 1b\n"
        "  ret\n");

void guest_main(void) {
  apic_write(SVR, 0x1FF); /* software enable, spurious vector 0xFF */
  apic_write(TPR, 0);
  for (int v = 0x40; v <= 0x42; v++) set_trap_hook(v, irq_hook);
  set_trap_hook(2, nmi_hook);

  case_begin("popf_enables_irq");
  trap_log_clear();
  popf_enable();
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 0x41);
  CHECK_EQ(trap_log[0].rip, (ureg)pf_after);

  case_begin("sti_shadow_irq");
  trap_log_clear();
  sti_shadow();
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 0x42);
  CHECK_EQ(trap_log[0].rip, (ureg)if0_after); /* after STI and the NOP it shadows */

  case_begin("sti_hlt_wakeup");
  trap_log_clear();
  sti_hlt();
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 0x40);
  CHECK_EQ(trap_log[0].rip, (ureg)sh_after);

  case_begin("nmi_ignores_if");
  trap_log_clear();
  send_nmi(); /* IF = 0 */
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 2);
  CHECK_EQ(trap_log[0].rflags & FL_IF, 0);

  case_begin("nmi_blocked_until_iret");
  trap_log_clear();
  nmi_resend = 1;
  nmi_nested = 0;
  send_nmi();
  CHECK_EQ(nmi_nested, 0);
  CHECK_EQ(trap_count, 2);
  CHECK_EQ(trap_log[1].vector, 2);
  /* The second NMI was pending when the first handler's IRET unblocked NMIs:
   * it is taken before the interrupted instruction runs again. */
  CHECK_EQ(trap_log[1].rip, trap_log[0].rip);
}
