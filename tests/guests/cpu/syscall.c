/* SYSCALL/SYSRET round trip in 64-bit mode, SYSRET to compatibility mode.
 * SDM vol. 2B "SYSCALL": RCX <- RIP of the next instruction, R11 <- RFLAGS,
 * RFLAGS <- RFLAGS & ~IA32_FMASK (RF cleared too), CS <- STAR[47:32] (flat
 * 64-bit, CPL 0), SS <- STAR[47:32] + 8; RSP unchanged. EFER.SCE = 0 -> #UD.
 * "SYSRET": RIP <- RCX, RFLAGS <- (R11 & 3C7FD7H) | 2, CS <- STAR[63:48] + 16
 * (REX.W, 64-bit) or STAR[63:48] (32-bit, compatibility mode), SS <-
 * STAR[63:48] + 8, all with RPL 3. APM vol. 2, 6.1.1 agrees.
 * Vendors differ on SYSRET to a non-canonical RCX: Intel raises #GP(0) on the
 * SYSRET, at CPL 0 (SDM vol. 2B "SYSRET"); AMD loads it and the fetch there
 * faults, at CPL 3 (APM vol. 3 "SYSRET" has no canonical check). */
#include "guest.h"

GUEST_NAME("syscall");

struct k_seen {
  uint64_t rcx, r11, rflags, cs, ss, rsp, rax;
};
volatile struct k_seen ks;
struct u_seen {
  uint64_t cs, ss, rflags, rax, rsp;
};
volatile struct u_seen us;
volatile uint64_t compat_cs;
volatile uint64_t nc_resume; /* where the #GP of sysret_noncanonical resumes */

/* Kernel entries: record state, then return to user with SYSRETQ or SYSRETL. */
__asm__(".text\n"
        "sc_entry64: mov %rcx, ks+0(%rip)\n"
        "  mov %r11, ks+8(%rip)\n"
        "  pushfq\n"
        "  popq ks+16(%rip)\n"
        "  mov %cs, %rcx\n"
        "  mov %rcx, ks+24(%rip)\n"
        "  mov %ss, %rcx\n"
        "  mov %rcx, ks+32(%rip)\n"
        "  mov %rsp, ks+40(%rip)\n"
        "  mov %rax, ks+48(%rip)\n"
        "  mov ks+0(%rip), %rcx\n"
        "  add $1, %rax\n"
        "  sysretq\n"
        /* compat entry: return to 32-bit code at sc_compat */
        "sc_entry_compat: mov %rcx, ks+0(%rip)\n"
        "  lea sc_compat(%rip), %rcx\n"
        "  sysretl\n"
        /* noncanonical entry: SYSRETQ to a non-canonical RCX. Intel raises
         * #GP(0) at CPL 0 on the SYSRET itself: the #GP handler resumes at
         * nc_fixup, which returns to the user properly. AMD returns and
         * faults at CPL 3: the handler resumes at nc_user_fixup, which
         * returns from u_syscall_nc on the user's stack. */
        "sc_entry_nc: mov %rcx, ks+0(%rip)\n"
        "  mov nc_resume(%rip), %rax\n"
        "  mov %rax, trap_resume(%rip)\n"
        "  mov $0x0000800000000000, %rcx\n"
        "nc_sysret: sysretq\n"
        "nc_fixup: mov ks+0(%rip), %rcx\n"
        "  mov $0x77, %eax\n"
        "  sysretq\n"
        "u_syscall_nc: syscall\n"
        "  ret\n"
        "nc_user_fixup: mov $0x77, %eax\n"
        "  ret\n"
        /* user side, 64-bit */
        "u_syscall: push %rbx\n"
        "  mov $0x1234, %eax\n"
        "  pushfq\n"
        "  orq $0x401, (%rsp)\n" /* CF and DF set before SYSCALL */
        "  popfq\n"
        "  mov %rsp, %rbx\n"
        "  syscall\n"
        "u_after_syscall: pushfq\n"
        "  popq us+16(%rip)\n"
        "  cld\n"
        "  mov %cs, %rcx\n"
        "  mov %rcx, us+0(%rip)\n"
        "  mov %ss, %rcx\n"
        "  mov %rcx, us+8(%rip)\n"
        "  mov %rax, us+24(%rip)\n"
        "  mov %rsp, us+32(%rip)\n"
        "  pop %rbx\n"
        "  ret\n"
        "u_syscall_compat: syscall\n"
        "  ret\n"
        ".code32\n"
        /* IRET to CPL 3 nulled DS (DPL 0); compatibility mode uses DS again. */
        "sc_compat: mov $0x33, %eax\n"
        "  mov %eax, %ds\n"
        "  mov %cs, %eax\n"
        "  mov %eax, compat_cs\n"
        "  mov $0xC0DE, %eax\n"
        "  int $0x81\n" /* back to the kernel through user_call's return gate */
        ".code64\n");
extern char sc_entry64[], sc_entry_compat[], u_after_syscall[], sc_entry_nc[], nc_sysret[],
    nc_fixup[], nc_user_fixup[];
ureg u_syscall_nc(ureg);
ureg u_syscall(ureg);
ureg u_syscall_compat(ureg);

/* Whether the CPU runs AMD's SYSRET. ttvm's CPU model declares its vendor
 * choices in CPUID leaf 0x40000001 (EAX bit 1: AMD's SYSRET) under the
 * signature "TTVMTTVMTTVM" at 0x40000000 (kTtvmCpuidLeaf in
 * emulator/include/ttvm/emulator/cpu_model.h) when it has any: a KVM
 * recording on an AMD host shows ttvm's Intel vendor string but runs AMD's
 * SYSRET. Without them (QEMU, real CPUs, ttvm's emulator alone) the vendor
 * string decides. */
static int amd_sysret(void) {
  uint32_t v[4];
  const uint32_t ttvm = 0x4D565454u; /* "TTVM" */
  cpuid(0x40000000u, 0, v);
  if (v[0] >= 0x40000001u && v[1] == ttvm && v[2] == ttvm && v[3] == ttvm) {
    cpuid(0x40000001u, 0, v);
    return (v[0] >> 1) & 1;
  }
  cpuid(0, 0, v);
  return v[1] == 0x68747541u /* "Auth"enticAMD */ || v[1] == 0x6F677948u /* "Hygo"nGenuine */;
}

void guest_main(void) {
  const uint64_t star = ((uint64_t)SEL_UCODE32 << 48) | ((uint64_t)SEL_CODE64 << 32);

  case_begin("sce_off_ud");
  wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~1ull);
  trap_log_clear();
  __asm__ volatile("lea 1f(%%rip), %%rax\n mov %%rax, trap_resume(%%rip)\n syscall\n1:"
                   ::: "rax", "rcx", "r11", "memory");
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 6);

  case_begin("round_trip");
  wrmsr(MSR_EFER, rdmsr(MSR_EFER) | 1);
  wrmsr(MSR_STAR, star);
  wrmsr(MSR_LSTAR, (uint64_t)(ureg)sc_entry64);
  wrmsr(MSR_SFMASK, FL_IF | FL_DF | FL_TF | FL_CF);
  ureg r = user_call(u_syscall, (ureg)user_stack_top, 0, 0x2);
  CHECK_EQ(ks.rcx, (ureg)u_after_syscall);
  CHECK_EQ(ks.r11 & 0xFFFF, 0x2 | FL_CF | FL_DF); /* user RFLAGS (with reserved bit 1) */
  CHECK_EQ(ks.rflags & (FL_IF | FL_DF | FL_TF | FL_CF | FL_RF), 0);
  CHECK_EQ(ks.cs, SEL_CODE64);
  CHECK_EQ(ks.ss, SEL_CODE64 + 8);
  CHECK_EQ(ks.rsp, (ureg)user_stack_top - 16); /* unchanged: CALL + PUSH RBX */
  CHECK_EQ(ks.rax, 0x1234);
  CHECK_EQ(us.cs, SEL_UCODE32 + 16 + 3);
  CHECK_EQ(us.ss, SEL_UCODE32 + 8 + 3);
  CHECK_EQ(us.rflags & 0xFFFF, 0x2 | FL_CF | FL_DF); /* restored from R11 */
  CHECK_EQ(us.rax, 0x1235);
  CHECK_EQ(us.rsp, (ureg)user_stack_top - 16);
  CHECK_EQ(r, 0x1235);

  case_begin("sysret_noncanonical");
  {
    const int amd = amd_sysret();
    nc_resume = amd ? (ureg)nc_user_fixup : (ureg)nc_fixup;
    wrmsr(MSR_LSTAR, (uint64_t)(ureg)sc_entry_nc);
    trap_log_clear();
    r = user_call(u_syscall_nc, (ureg)user_stack_top, 0, 0x2);
    CHECK_EQ(r, 0x77);
    CHECK_EQ(trap_count, 1);
    CHECK_EQ(trap_log[0].vector, 13);
    CHECK_EQ(trap_log[0].error, 0);
    if (amd) {
      /* Returned to CPL 3 at the non-canonical RIP, whose fetch faults: the
       * user's CS and RSP (the CALL's return address) in the frame. */
      CHECK_EQ(trap_log[0].rip, 0x0000800000000000ull);
      CHECK_EQ(trap_log[0].cs, SEL_UCODE32 + 16 + 3);
      CHECK_EQ(trap_log[0].rsp, (ureg)user_stack_top - 8);
    } else {
      /* #GP(0) on the SYSRET, at CPL 0 (RSP is still the user's) */
      CHECK_EQ(trap_log[0].rip, (ureg)nc_sysret);
      CHECK_EQ(trap_log[0].cs, SEL_CODE64);
    }
  }

  case_begin("sysret_compat");
  wrmsr(MSR_LSTAR, (uint64_t)(ureg)sc_entry_compat);
  r = user_call(u_syscall_compat, (ureg)user_stack_top, 0, 0x2);
  CHECK_EQ(compat_cs, SEL_UCODE32 | 3);
  CHECK_EQ(r & 0xFFFFFFFF, 0xC0DE);
}
