/* CPUID and RDMSR/WRMSR basics (SDM vol. 2A "CPUID"; vol. 4 MSR tables;
 * APM vol. 2 ch. 3 "EFER"). Checks what every x86-64 CPU model must report. */
#include "guest.h"

GUEST_NAME("cpuid_msr");

static void check_fault_msr(uint32_t msr) {
  /* RDMSR of an unimplemented MSR raises #GP(0) (SDM vol. 2B "RDMSR"). */
  trap_log_clear();
  uint32_t lo = 0, hi = 0;
  __asm__ volatile(
      "lea 1f(%%rip), %%rax\n"
      "mov %%rax, trap_resume(%%rip)\n"
      "rdmsr\n"
      "1:\n"
      : "=a"(lo), "=d"(hi)
      : "c"(msr)
      : "memory");
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 13);
  CHECK_EQ(trap_log[0].error, 0);
}

void guest_main(void) {
  uint32_t r[4];
  case_begin("cpuid0");
  cpuid(0, 0, r);
  CHECK(r[0] >= 1);
  char vendor[13];
  memcpy(vendor, &r[1], 4);
  memcpy(vendor + 4, &r[3], 4);
  memcpy(vendor + 8, &r[2], 4);
  vendor[12] = 0;
  printf("vendor %s max leaf %u\n", vendor, r[0]);

  case_begin("cpuid1");
  cpuid(1, 0, r);
  /* Long mode guests need FPU, TSC, MSR, PAE, CX8, APIC, SEP, PGE, CMOV, FXSR, SSE, SSE2. */
  const uint32_t need_edx = (1u << 0) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) |
                            (1u << 11) | (1u << 13) | (1u << 15) | (1u << 24) | (1u << 25) |
                            (1u << 26);
  CHECK_EQ(r[3] & need_edx, need_edx);
  /* CPUID.1:EBX[31:24] = initial APIC ID: 0 on the boot CPU. */
  CHECK_EQ(r[1] >> 24, 0);

  case_begin("cpuid_ext");
  cpuid(0x80000000u, 0, r);
  CHECK(r[0] >= 0x80000001u);
  cpuid(0x80000001u, 0, r);
  CHECK(r[3] & (1u << 29)); /* LM */
  CHECK(r[3] & (1u << 11)); /* SYSCALL */

  case_begin("efer");
  uint64_t efer = rdmsr(MSR_EFER);
  CHECK_EQ(efer & 0x500, 0x500); /* LME and LMA in long mode */
  wrmsr(MSR_EFER, efer | 1);     /* SCE */
  CHECK_EQ(rdmsr(MSR_EFER), efer | 1);
  wrmsr(MSR_EFER, efer);
  CHECK_EQ(rdmsr(MSR_EFER), efer);

  case_begin("apic_base");
  uint64_t ab = rdmsr(MSR_APIC_BASE);
  CHECK_EQ(ab & ~0xFFFull & 0xFFFFFFFFull, 0xFEE00000u); /* default base */
  CHECK(ab & (1u << 8));                                  /* BSP */

  case_begin("star_lstar");
  wrmsr(MSR_STAR, 0x0023001000000000ull);
  CHECK_EQ(rdmsr(MSR_STAR), 0x0023001000000000ull);
  wrmsr(MSR_LSTAR, 0xFFFF800012345678ull);
  CHECK_EQ(rdmsr(MSR_LSTAR), 0xFFFF800012345678ull);

  case_begin("lstar_noncanonical");
  /* WRMSR of a non-canonical address to LSTAR raises #GP(0) (SDM vol. 2B "WRMSR"). */
  trap_log_clear();
  __asm__ volatile(
      "lea 1f(%%rip), %%rbx\n"
      "mov %%rbx, trap_resume(%%rip)\n"
      "wrmsr\n"
      "1:\n" ::"c"(MSR_LSTAR),
      "a"(0), "d"(0x00008000u)
      : "rbx", "memory");
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 13);
  CHECK_EQ(rdmsr(MSR_LSTAR), 0xFFFF800012345678ull);

  case_begin("tsc");
  uint64_t t0 = rdmsr(0x10);
  uint64_t t1 = rdmsr(0x10);
  CHECK(t1 >= t0);

  case_begin("bad_msr");
  check_fault_msr(0xDEAD0000u);
}
