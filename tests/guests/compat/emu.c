/* Instruction forms the unit-test kernels' emulator test relies on, beyond
 * what a compiler emits: KVM's forced-emulation prefix (ud2; "kvm") is an
 * ordinary #UD at the ud2 (how such kernels find out that it is off), MOVQ
 * through MMX registers without asking CPUID (with the x87 side effects:
 * TOP 0, all tags valid, exponent all ones; EMMS empties the tags), the SSE
 * moves with the unaligned-MOVAPS #GP and an unaligned MOVUPS across a page,
 * LEA with a register operand (#UD), SGDT/SIDT after LGDT/LIDT, LMSW (cannot
 * clear PE), code written to RAM and called, and MMIO (pc-testdev's memory
 * at 0xFF000000): plain, string and page-crossing accesses. */
#include "kut.h"

static uint8_t page_pair[8192] __attribute__((aligned(4096)));
static uint8_t code_page[4096] __attribute__((aligned(4096)));

/* KVM's forced-emulation prefix: either off (an ordinary #UD at the ud2, how
 * such kernels find out) or on (ttvm, like KVM with force_emulation_prefix:
 * the instruction after it runs once; fep.c checks more). */
static void test_fep(void) {
  report_prefix_push("fep");
  uint32_t n = 0;
  __asm__ volatile(KUT_TRY("ud2; .byte 0x6b, 0x76, 0x6d; incl %0") : "+r"(n) : : "memory");
  unsigned v = exception_vector();
  if (v == UD_VECTOR) {
    report(n == 0, "prefix off: #UD at the ud2, the instruction after it skipped");
  } else {
    report(v == 0 && n == 1, "prefix on: the instruction after it ran once (vector %u, %u)", v, n);
  }
  report_prefix_pop();
}

struct __attribute__((aligned(16))) fxsave_area {
  uint16_t fcw, fsw;
  uint8_t ftw, rsvd;
  uint16_t fop;
  uint64_t fip, fdp;
  uint32_t mxcsr, mxcsr_mask;
  struct {
    uint64_t significand;
    uint16_t exp, pad[3];
  } st[8];
  uint8_t rest[512 - 160];
};
static struct fxsave_area fx;

static void test_mmx(void) {
  report_prefix_push("mmx");
  write_cr0(read_cr0() & ~(ulong_t)6); /* EM, TS */
  __asm__ volatile("fninit");
  uint64_t v = 0x0102030405060708ull, mem = 0;
  __asm__ volatile("movq %1, %%mm3; movq %%mm3, %0" : "=m"(mem) : "m"(v) : "memory");
  report(mem == v, "movq mm3 <-> memory: %#llx", (unsigned long long)mem);
  uint32_t lo = 0;
  __asm__ volatile("movd %%mm3, %0" : "=r"(lo));
  report(lo == 0x05060708, "movd r32, mm3: %#x", lo);
  __asm__ volatile("movd %0, %%mm5" ::"r"(0x89ABCDEFu));
  __asm__ volatile("fxsave %0" : "=m"(fx));
  report(fx.st[3].significand == v, "mm3 is R3's significand");
  /* QEMU's TCG leaves the exponent alone (known failure there). */
  report_prefix_pop();
  report_prefix_push("mmx_exponent");
  report(fx.st[3].exp == 0xFFFF, "a write to mm3 sets R3's exponent to all ones (%#x)",
         fx.st[3].exp);
  report_prefix_pop();
  report_prefix_push("mmx");
  report(fx.st[5].significand == 0x89ABCDEF, "movd zero-extends into mm5");
  report(fx.ftw == 0xFF && ((fx.fsw >> 11) & 7) == 0, "all tags valid, TOP 0 (ftw %#x fsw %#x)",
         fx.ftw, fx.fsw);
  __asm__ volatile("emms");
  __asm__ volatile("fxsave %0" : "=m"(fx));
  report(fx.ftw == 0, "EMMS empties every tag");
  report_prefix_pop();
}

static void test_sse(void) {
  report_prefix_push("sse");
  write_cr4(read_cr4() | 0x600); /* OSFXSR, OSXMMEXCPT */
  static uint32_t buf[8] __attribute__((aligned(16)));
  static uint32_t a[4] = {1, 2, 3, 4}, b[4];
  __asm__ volatile("movups %1, %%xmm1; movaps %%xmm1, %0" : "=m"(buf) : "m"(a));
  __asm__ volatile("movdqu %1, %%xmm2; movupd %%xmm2, %0" : "=m"(b) : "m"(buf));
  report(!memcmp(a, b, 16), "movups/movaps/movdqu/movupd round trip");
  uint8_t* odd = (uint8_t*)buf + 4;
  __asm__ volatile(KUT_TRY("movaps %%xmm1, (%0)")::"r"(odd) : "memory");
  report(exception_vector() == GP_VECTOR, "unaligned movaps: #GP (vector %u)", exception_vector());
  uint8_t* cross = page_pair + 4096 - 8;
  __asm__ volatile("movups %%xmm1, (%0)" ::"r"(cross) : "memory");
  report(!memcmp(cross, a, 16), "unaligned movups across a page boundary");
  report_prefix_pop();
}

static void test_misc(void) {
  report_prefix_push("misc");
  __asm__ volatile(KUT_TRY(".byte 0x8d, 0xc0")::: "memory"); /* lea eax, eax */
  report(exception_vector() == UD_VECTOR, "LEA with a register operand: #UD");

  struct __attribute__((packed)) {
    uint16_t limit;
    ulong_t base;
  } old_gdt, old_idt, t;
  __asm__ volatile("sgdt %0; sidt %1" : "=m"(old_gdt), "=m"(old_idt));
  t.limit = 0x1234;
  t.base = (ulong_t)page_pair;
  __asm__ volatile("lidt %0" ::"m"(t));
  struct __attribute__((packed)) {
    uint16_t limit;
    ulong_t base;
  } r;
  __asm__ volatile("sidt %0" : "=m"(r));
  __asm__ volatile("lidt %0" ::"m"(old_idt));
  report(r.limit == 0x1234 && r.base == (ulong_t)page_pair, "SIDT after LIDT");
  __asm__ volatile("lgdt %1; sgdt %0" : "=m"(r) : "m"(old_gdt));
  report(r.limit == old_gdt.limit && r.base == old_gdt.base, "SGDT after LGDT");

  ulong_t cr0 = read_cr0();
  uint16_t msw = 0;
  __asm__ volatile("lmsw %w0" ::"r"((uint16_t)(cr0 & ~1ul & 0xFFFF)));
  __asm__ volatile("smsw %w0" : "=r"(msw));
  report((read_cr0() & 1) && (msw & 1), "LMSW cannot clear PE");
  write_cr0(cr0);

  /* mov byte [rip + disp], imm; ret - written as data, then called. */
  static volatile uint32_t target;
  target = 0;
  code_page[0] = 0xC6;
  code_page[1] = 0x05;
#ifdef __x86_64__
  int32_t disp = (int32_t)((ulong_t)&target + 2 - ((ulong_t)code_page + 7));
#else
  int32_t disp = (int32_t)((ulong_t)&target + 2); /* absolute in 32-bit mode */
#endif
  memcpy(&code_page[2], &disp, 4);
  code_page[6] = 0x01;
  code_page[7] = 0xC3;
  ((void (*)(void))(ulong_t)code_page)();
  report(target == 0x10000, "store through code written at run time: %#x", target);
  report_prefix_pop();
}

#define TESTDEV_MEM 0xFF000000ul
static void test_mmio(void) {
  report_prefix_push("mmio");
  volatile uint32_t* m = (volatile uint32_t*)TESTDEV_MEM;
  m[0] = 0x11223344;
  m[1] = 0x55667788;
  report(m[0] == 0x11223344 && *(volatile uint16_t*)(TESTDEV_MEM + 1) == 0x2233,
         "32- and 16-bit accesses");
  uint8_t buf[8];
  ulong_t n = 8;
  void* src = (void*)TESTDEV_MEM;
  void* dst = buf;
  __asm__ volatile("cld; rep movsb" : "+S"(src), "+D"(dst), "+c"(n) : : "memory");
  report(*(uint64_t*)buf == 0x5566778811223344ull, "rep movsb from MMIO");
  n = 4;
  dst = (void*)(TESTDEV_MEM + 0x100);
  __asm__ volatile("rep stosb" : "+D"(dst), "+c"(n) : "a"(0xA5) : "memory");
  report(m[0x40] == 0xA5A5A5A5, "rep stosb to MMIO: %#x", m[0x40]);
  *(volatile uint32_t*)(TESTDEV_MEM + 0xFFE) = 0xCAFEBABE;
  report(*(volatile uint16_t*)(TESTDEV_MEM + 0xFFE) == 0xBABE &&
             *(volatile uint16_t*)(TESTDEV_MEM + 0x1000) == 0xCAFE &&
             *(volatile uint32_t*)(TESTDEV_MEM + 0xFFE) == 0xCAFEBABE,
         "4-byte access across an MMIO page boundary");
  report_prefix_pop();
}

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  test_fep();
  test_mmx();
  test_sse();
  test_misc();
  test_mmio();
  return report_summary();
}
