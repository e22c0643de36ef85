/* MSRs as the unit-test kernels' MSR and TSC tests use them: write, read
 * back and restore the SYSENTER, MISC_ENABLE (read-only bits kept), PAT,
 * segment-base, EFER and SYSCALL MSRs, #GP on non-canonical bases; the
 * machine-check MSRs (MCG_CAP is read without a safety net; every bank beyond
 * its count must #GP); the x2APIC MSR range (all #GP in xAPIC mode; in
 * x2APIC mode each register readable/writable exactly as the SDM's x2APIC
 * register table says, bits 63:32 reserved except in ICR); PRED_CMD and
 * FLUSH_CMD #GP when CPUID does not offer them; TSC writes, TSC_AUX through
 * RDTSCP, RDPID only when offered. */
#include "kut.h"

#define NONCANONICAL 0xAAAAAAAAAAAAAAAAull
#define ADDR64 0x0000123456789ABCull

static void msr_rw(uint32_t msr, const char* name, uint64_t val, uint64_t keep) {
  uint64_t orig = rdmsr(msr);
  if (msr == MSR_EFER)
    val |= orig;
  else
    val = (val & ~keep) | (orig & keep);
  wrmsr(msr, val);
  uint64_t r = rdmsr(msr);
  wrmsr(msr, orig);
  report(r == val, "%s: wrote %#llx, read %#llx", name, (unsigned long long)val,
         (unsigned long long)r);
}
static void wr_faults(uint32_t msr, const char* name, uint64_t v) {
  int vec = wrmsr_safe(msr, v);
  report(vec == GP_VECTOR, "%s: #GP on WRMSR %#llx (vector %d)", name, (unsigned long long)v, vec);
}
/* wr_faults for a readable MSR, whose value is written back right after
 * the attempt, in the same asm, before anything reads %gs:4: on a CPU that
 * takes the value (QEMU's TCG takes non-canonical bases) a bad GS base would
 * otherwise make every later check's own bookkeeping fault. */
static void wr_faults_restored(uint32_t msr, const char* name, uint64_t v) {
  uint64_t orig = rdmsr(msr);
  uint32_t lo = (uint32_t)v, hi = (uint32_t)(v >> 32);
  __asm__ volatile(KUT_TRY("wrmsr") "movl %%esi, %%eax\n\tmovl %%edi, %%edx\n\twrmsr"
                   : "+a"(lo), "+d"(hi)
                   : "c"(msr), "S"((uint32_t)orig), "D"((uint32_t)(orig >> 32))
                   : "memory");
  int vec = (int)exception_vector();
  report(vec == GP_VECTOR, "%s: #GP on WRMSR %#llx (vector %d)", name, (unsigned long long)v, vec);
}
static void rd_faults(uint32_t msr, const char* name) {
  uint64_t v;
  int vec = rdmsr_safe(msr, &v);
  report(vec == GP_VECTOR, "%s: #GP on RDMSR (vector %d)", name, vec);
}

static void test_misc(void) {
  report_prefix_push("misc");
  msr_rw(0x174, "SYSENTER_CS", 0x1234, 0);
  msr_rw(0x175, "SYSENTER_ESP", (ulong_t)ADDR64, 0);
  msr_rw(0x176, "SYSENTER_EIP", (ulong_t)ADDR64, 0);
  msr_rw(0x1A0, "MISC_ENABLE", 0x400C50809ull, 0x1880);
  msr_rw(0x277, "PAT", 0x07070707, 0);
  msr_rw(MSR_EFER, "EFER", 1 /* SCE */, 0);
  /* 64-bit MSRs: a CPU with long mode has them in 32-bit mode too. */
  static const struct {
    uint32_t msr;
    const char* name;
  } bases[] = {{0xC0000100, "FS_BASE"},
               {0xC0000101, "GS_BASE"},
               {0xC0000102, "KERNEL_GS_BASE"},
               {0xC0000082, "LSTAR"},
               {0xC0000083, "CSTAR"}};
  for (unsigned i = 0; i < sizeof bases / sizeof bases[0]; i++) {
    msr_rw(bases[i].msr, bases[i].name, ADDR64, 0);
    wr_faults_restored(bases[i].msr, bases[i].name, NONCANONICAL);
  }
  msr_rw(0xC0000084, "SYSCALL_MASK", 0xFFFFFFFF, 0);
  report_prefix_pop();
}

static void test_mce(void) {
  report_prefix_push("mce");
  unsigned banks = rdmsr(0x179) & 0xFF; /* MCG_CAP: read without a safety net */
  printf("%u machine-check banks\n", banks);
  char name[32];
  for (unsigned i = 0; i < banks; i++) {
    snprintf(name, sizeof name, "MC%u_CTL", i);
    msr_rw(0x400 + 4 * i, name, 0, 0);
    snprintf(name, sizeof name, "MC%u_STATUS", i);
    msr_rw(0x401 + 4 * i, name, 0, 0);
  }
  unsigned bad = 0;
  for (unsigned i = banks; i < 32; i++) {
    for (unsigned k = 0; k < 4; k++) {
      uint64_t v;
      if (rdmsr_safe(0x400 + 4 * i + k, &v) != GP_VECTOR) bad++;
      if (wrmsr_safe(0x400 + 4 * i + k, 0) != GP_VECTOR) bad++;
    }
  }
  report(bad == 0, "banks %u..31 absent: %u access(es) did not #GP", banks, bad);
  report_prefix_pop();
}

/* The SDM's x2APIC register table (max LVT entry 5: no CMCI). */
enum { INVALID = 0, RO = 1, WO = 2, RW = 3 };
static int x2apic_semantics(unsigned reg) {
  switch (reg) {
    case APIC_ID:
    case APIC_LVR:
    case APIC_PROCPRI:
    case 0xD0: /* LDR */
    case APIC_TMCCT: return RO;
    case APIC_TASKPRI:
    case APIC_SPIV:
    case APIC_ESR:
    case APIC_ICR:
    case APIC_LVTT:
    case 0x330: /* thermal */
    case 0x340: /* performance counters */
    case APIC_LVT0:
    case APIC_LVT1:
    case 0x370: /* error */
    case APIC_TMICT:
    case APIC_TDCR: return RW;
    case APIC_EOI:
    case APIC_SELF_IPI: return WO;
    case 0x2F0: /* CMCI */ return ((apic_read(APIC_LVR) >> 16) & 0xFF) >= 6 ? RW : INVALID;
    default: break;
  }
  if (reg >= APIC_ISR && reg < APIC_IRR + 0x80) return RO; /* ISR, TMR, IRR */
  return INVALID;
}

static void test_x2apic_range(int x2) {
  unsigned bad_rd = 0, bad_wr = 0, bad_high = 0, bad_rw = 0;
  for (unsigned reg = 0; reg < 0x1000; reg += 0x10) {
    uint32_t msr = 0x800 + reg / 16;
    int sem = x2 ? x2apic_semantics(reg) : INVALID;
    uint64_t v;
    if (!(sem & RO) && rdmsr_safe(msr, &v) != GP_VECTOR) {
      bad_rd++;
      printf("  %#x: RDMSR did not #GP\n", msr);
    }
    if (!(sem & WO) && wrmsr_safe(msr, 0) != GP_VECTOR) {
      bad_wr++;
      printf("  %#x: WRMSR 0 did not #GP\n", msr);
    }
    if ((!x2 || reg != APIC_ICR) && wrmsr_safe(msr, ~0ull) != GP_VECTOR) {
      bad_high++;
      printf("  %#x: WRMSR with bits 63:32 set did not #GP\n", msr);
    }
    if (sem == RW) {
      uint64_t orig = rdmsr(msr);
      wrmsr(msr, orig);
      if (rdmsr(msr) != orig) bad_rw++;
    } else if (sem == WO && reg == APIC_EOI) {
      wrmsr(msr, 0);
    } else if (sem == RO && (rdmsr(msr) >> 32)) {
      bad_rw++;
    }
  }
  report(bad_rd == 0, "reads that must #GP: %u did not", bad_rd);
  report(bad_wr == 0, "writes that must #GP: %u did not", bad_wr);
  report(bad_high == 0, "bits 63:32 reserved: %u write(s) did not #GP", bad_high);
  report(bad_rw == 0, "read/write registers: %u did not read back", bad_rw);
  if (x2) {
    uint32_t self = 0x800 + APIC_SELF_IPI / 16;
    report(wrmsr_safe(self, 0x100) == GP_VECTOR && wrmsr_safe(self, 0xFF00) == GP_VECTOR &&
               wrmsr_safe(self, 0xFF000000) == GP_VECTOR,
           "SELF IPI: bits 31:8 reserved");
  }
}

static void test_x2apic_msrs(void) {
  report_prefix_push("x2apic_msrs_off");
  reset_apic();
  test_x2apic_range(0);
  report_prefix_pop();
  report_prefix_push("x2apic_msrs_on");
  if (enable_x2apic())
    test_x2apic_range(1);
  else
    report_skip("x2APIC not offered");
  report_prefix_pop();
}

static void test_cmd_msrs(void) {
  report_prefix_push("cmd");
  int ibpb = (cpuid_indexed(7, 0).d >> 26) & 1;
  int flush = (cpuid_indexed(7, 0).d >> 28) & 1;
  rd_faults(0x49, "PRED_CMD");
  if (!ibpb) wr_faults(0x49, "PRED_CMD", 1);
  rd_faults(0x10B, "FLUSH_CMD");
  if (!flush) wr_faults(0x10B, "FLUSH_CMD", 1);
  report_prefix_pop();
}

static void test_tsc(void) {
  report_prefix_push("tsc");
  uint64_t t1 = rdtsc(), t2 = rdtsc();
  report(t2 > t1, "RDTSC counts up (%llu -> %llu)", (unsigned long long)t1, (unsigned long long)t2);
  wrmsr(MSR_IA32_TSC, 100000000000ull);
  t1 = rdtsc();
  report(t1 >= 100000000000ull && t1 < 100000000000ull + 1000000000ull,
         "RDTSC after writing IA32_TSC = 1e11: %llu", (unsigned long long)t1);
  wrmsr(MSR_IA32_TSC, 0);
  t1 = rdtsc();
  report(t1 < 1000000000ull, "RDTSC after writing 0: %llu", (unsigned long long)t1);
  if ((cpuid_leaf(0x80000001).d >> 27) & 1) {
    static const uint32_t values[] = {0, 10, 0x100};
    for (int i = 0; i < 3; i++) {
      uint32_t aux;
      wrmsr(MSR_TSC_AUX, values[i]);
      rdtscp(&aux);
      report(aux == values[i], "RDTSCP returns TSC_AUX %u", values[i]);
    }
  } else {
    report_skip("RDTSCP not offered");
  }
  if ((cpuid_indexed(7, 0).c >> 22) & 1) {
    uint32_t v;
    wrmsr(MSR_TSC_AUX, 10);
    __asm__ volatile(".byte 0xf3, 0x0f, 0xc7, 0xf8" : "=a"(v)); /* RDPID EAX */
    report(v == 10, "RDPID returns TSC_AUX");
  } else {
    /* Not offered: the encoding is #UD. */
    __asm__ volatile(KUT_TRY(".byte 0xf3, 0x0f, 0xc7, 0xf8")::: "eax", "memory");
    report(exception_vector() == UD_VECTOR, "RDPID not offered: #UD");
  }
  report_prefix_pop();
}

/* Every case, or only those the command line names (misc mce x2apic_msrs
 * cmd tsc): a CPU known to fail one (the nested VM's, under KVM) still runs
 * the others. */
static int wanted(int argc, char** argv, const char* name) {
  if (argc < 2) return 1;
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], name)) return 1;
  return 0;
}

int main(int argc, char** argv) {
  if (wanted(argc, argv, "misc")) test_misc();
  if (wanted(argc, argv, "mce")) test_mce();
  if (wanted(argc, argv, "x2apic_msrs")) test_x2apic_msrs();
  if (wanted(argc, argv, "cmd")) test_cmd_msrs();
  if (wanted(argc, argv, "tsc")) test_tsc();
  return report_summary();
}
