/* SYSENTER/SYSEXIT in 32-bit protected mode (SDM vol. 2B "SYSENTER",
 * "SYSEXIT"): SYSENTER loads CS = IA32_SYSENTER_CS, SS = CS + 8 (flat,
 * fixed descriptors, CPL 0), ESP/EIP from the MSRs, clears VM, IF and RF
 * (TF is kept); #GP(0) if IA32_SYSENTER_CS[15:2] = 0. SYSEXIT: CS =
 * SYSENTER_CS + 16 | 3, SS = SYSENTER_CS + 24 | 3, EIP = EDX, ESP = ECX. */
#include "guest.h"

GUEST_NAME("sysenter");

#define SE_CS 0x60 /* GDT 12..15: code0, data0, code3, data3 */
static uint8_t se_stack[1024] __attribute__((aligned(16)));

struct k_seen {
  uint32_t cs, ss, esp, eflags, eax;
};
volatile struct k_seen ks;
struct u_seen {
  uint32_t cs, ss, esp, eax;
};
volatile struct u_seen us;

__asm__(".text\n"
        "se_entry: mov %cs, %ecx\n"
        "  mov %ecx, ks+0\n"
        "  mov %ss, %ecx\n"
        "  mov %ecx, ks+4\n"
        "  mov %esp, ks+8\n"
        "  pushfl\n"
        "  popl ks+12\n"
        "  mov %eax, ks+16\n"
        "  add $1, %eax\n"
        "  mov se_user_esp, %ecx\n"
        "  mov $u_after, %edx\n"
        "  sysexit\n"
        "u_sysenter: push %ebx\n"
        "  mov 8(%esp), %eax\n"
        "  mov %esp, se_user_esp\n"
        "  sysenter\n"
        "u_after: mov %cs, %ecx\n"
        "  mov %ecx, us+0\n"
        "  mov %ss, %ecx\n"
        "  mov %ecx, us+4\n"
        "  mov %esp, us+8\n"
        "  mov %eax, us+12\n"
        "  pop %ebx\n"
        "  ret\n");
volatile uint32_t se_user_esp;
extern char se_entry[];
ureg u_sysenter(ureg);

void guest_main(void) {
  gdt_set(SE_CS / 8, gdt_make(0, 0xFFFFF, 0x9A, 0xC));
  gdt_set(SE_CS / 8 + 1, gdt_make(0, 0xFFFFF, 0x92, 0xC));
  gdt_set(SE_CS / 8 + 2, gdt_make(0, 0xFFFFF, 0xFA, 0xC));
  gdt_set(SE_CS / 8 + 3, gdt_make(0, 0xFFFFF, 0xF2, 0xC));

  case_begin("cs_zero_gp");
  wrmsr(MSR_SYSENTER_CS, 0);
  trap_log_clear();
  __asm__ volatile("movl $1f, trap_resume\n sysenter\n1:" ::: "memory");
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 13);
  CHECK_EQ(trap_log[0].error, 0);

  case_begin("round_trip");
  wrmsr(MSR_SYSENTER_CS, SE_CS);
  wrmsr(MSR_SYSENTER_ESP, (ureg)se_stack + sizeof(se_stack));
  wrmsr(MSR_SYSENTER_EIP, (ureg)se_entry);
  ureg r = user_call(u_sysenter, (ureg)user_stack_top, 41, 0x202); /* IF = 1 in user mode */
  CHECK_EQ(ks.cs, SE_CS);
  CHECK_EQ(ks.ss, SE_CS + 8);
  CHECK_EQ(ks.esp, (ureg)se_stack + sizeof(se_stack));
  CHECK_EQ(ks.eflags & (FL_IF | FL_RF), 0);
  CHECK_EQ(ks.eax, 41);
  CHECK_EQ(us.cs, SE_CS + 16 + 3);
  CHECK_EQ(us.ss, SE_CS + 24 + 3);
  CHECK_EQ(us.esp, se_user_esp);
  CHECK_EQ(us.eax, 42);
  CHECK_EQ(r, 42);
}
