/* SSE/SSE2 floating point and MMX as a guest sees them, checked against the
 * values IEEE 754 and the SDM define (vol. 1 ch. 4, 10, 11; vol. 2 per
 * instruction): results in each rounding mode, MXCSR flags, DAZ and FTZ,
 * NaN propagation, the x86 MIN/MAX operand rule, COMIS flags, the integer
 * indefinite, an unmasked exception delivered as #XM (vector 19) with
 * CR4.OSXMMEXCPT and as #UD without it (MXCSR flag set, destination kept),
 * and the MMX state switch (TOP = 0, all tags valid). */
#include "guest.h"

GUEST_NAME("sse_fp");

/* In/out block of the probes below: XMM0, XMM1, MXCSR, a scratch MXCSR. */
struct io {
  uint64_t x0[2], x1[2];
  uint32_t mxcsr, scratch;
  uint64_t r; /* a GPR result */
};

/* Each probe: MXCSR = io->mxcsr, XMM0/XMM1 from io, the instruction, then
 * XMM0, RAX and MXCSR back to io and MXCSR = 0x1F80. A trap resumes at the
 * store, so a faulting instruction reports what it left behind. */
#define PROBE(label, insn)                                                          \
  __asm__(".text\n" #label                                                          \
          ":\n"                                                                     \
          "  ldmxcsr 32(%rdi)\n  movdqu (%rdi), %xmm0\n  movdqu 16(%rdi), %xmm1\n"  \
          "  xor %eax, %eax\n  lea 9f(%rip), %rcx\n  mov %rcx, trap_resume(%rip)\n" \
          "  " insn                                                                 \
          "\n  movq $0, trap_resume(%rip)\n"                                        \
          "9: movdqu %xmm0, (%rdi)\n  mov %rax, 40(%rdi)\n  stmxcsr 32(%rdi)\n"     \
          "  movl $0x1F80, 36(%rdi)\n  ldmxcsr 36(%rdi)\n  ret\n");                 \
  void label##_fn(struct io* io) __asm__(#label)

PROBE(p_addsd, "addsd %xmm1, %xmm0");
PROBE(p_divsd, "divsd %xmm1, %xmm0");
PROBE(p_sqrtsd, "sqrtsd %xmm1, %xmm0");
PROBE(p_mulss, "mulss %xmm1, %xmm0");
PROBE(p_addss, "addss %xmm1, %xmm0");
PROBE(p_divss, "divss %xmm1, %xmm0");
PROBE(p_minsd, "minsd %xmm1, %xmm0");
PROBE(p_maxps, "maxps %xmm1, %xmm0");
PROBE(p_cmpltpd, "cmpltpd %xmm1, %xmm0");
PROBE(p_ucomisd, "ucomisd %xmm1, %xmm0\n  pushf\n  pop %rax");
PROBE(p_comisd, "comisd %xmm1, %xmm0\n  pushf\n  pop %rax");
PROBE(p_cvttsd2si, "cvttsd2si %xmm1, %rax");
PROBE(p_cvtsd2si, "cvtsd2si %xmm1, %rax");
PROBE(p_cvtsd2si32, "cvtsd2si %xmm1, %eax");
PROBE(p_cvtsi2ss, "cvtsi2ss %rax, %xmm0");
PROBE(p_cvtsd2ss, "cvtsd2ss %xmm1, %xmm0");
PROBE(p_cvtps2pd, "cvtps2pd %xmm1, %xmm0");

#define F64_1_5 0x3FF8000000000000ull
#define F64_2_25 0x4002000000000000ull
#define F64_3_75 0x400E000000000000ull
#define F64_1 0x3FF0000000000000ull
#define F64_2 0x4000000000000000ull
#define F64_3 0x4008000000000000ull
#define MXCSR_IE 0x01u
#define MXCSR_DE 0x02u
#define MXCSR_ZE 0x04u
#define MXCSR_UE 0x10u
#define MXCSR_PE 0x20u
#define MXCSR_DAZ 0x40u
#define MXCSR_FTZ 0x8000u
#define RC_DOWN 0x2000u
#define RC_UP 0x4000u
#define RC_ZERO 0x6000u

static struct io io_of(uint64_t a, uint64_t b, uint32_t mxcsr) {
  struct io io;
  memset(&io, 0, sizeof io);
  io.x0[0] = a;
  io.x1[0] = b;
  io.mxcsr = mxcsr;
  return io;
}

static void enable_sse(int osxmmexcpt) {
  ureg cr4 = read_cr4() | (1u << 9); /* OSFXSR */
  cr4 = osxmmexcpt ? (cr4 | (1u << 10)) : (cr4 & ~(ureg)(1u << 10));
  write_cr4(cr4);
  ureg cr0 = read_cr0() & ~(ureg)0xC; /* EM, TS clear */
  write_cr0(cr0 | 0x22);              /* MP, NE */
}

static void arithmetic(void) {
  case_begin("arith_exact");
  struct io io = io_of(F64_1_5, F64_2_25, 0x1F80);
  p_addsd_fn(&io);
  CHECK_EQ(io.x0[0], F64_3_75);
  CHECK_EQ(io.mxcsr, 0x1F80);

  case_begin("arith_rounding");
  static const struct {
    uint32_t rc;
    uint64_t third;
  } rounds[] = {{0, 0x3FD5555555555555ull},
                {RC_DOWN, 0x3FD5555555555555ull},
                {RC_UP, 0x3FD5555555555556ull},
                {RC_ZERO, 0x3FD5555555555555ull}};
  for (unsigned k = 0; k < 4; ++k) {
    io = io_of(F64_1, F64_3, 0x1F80 | rounds[k].rc);
    p_divsd_fn(&io);
    CHECK_EQ(io.x0[0], rounds[k].third);
    CHECK_EQ(io.mxcsr, 0x1F80 | rounds[k].rc | MXCSR_PE);
  }
  io = io_of(0, F64_2, 0x1F80);
  p_sqrtsd_fn(&io);
  CHECK_EQ(io.x0[0], 0x3FF6A09E667F3BCDull);
  io = io_of(0, 0xBFF0000000000000ull, 0x1F80); /* sqrt(-1): QNaN indefinite, IE */
  p_sqrtsd_fn(&io);
  CHECK_EQ(io.x0[0], 0xFFF8000000000000ull);
  CHECK_EQ(io.mxcsr, 0x1F80 | MXCSR_IE);

  case_begin("nan_propagation");
  io = io_of(0x7FF8000000001234ull, F64_1, 0x1F80); /* QNaN first operand: kept, no flag */
  p_addsd_fn(&io);
  CHECK_EQ(io.x0[0], 0x7FF8000000001234ull);
  CHECK_EQ(io.mxcsr, 0x1F80);
  io = io_of(F64_1, 0x7FF0000000001234ull, 0x1F80); /* SNaN: quieted, IE */
  p_addsd_fn(&io);
  CHECK_EQ(io.x0[0], 0x7FF8000000001234ull);
  CHECK_EQ(io.mxcsr, 0x1F80 | MXCSR_IE);

  case_begin("min_max_operand_order");
  io = io_of(0, 0x8000000000000000ull, 0x1F80); /* min(+0, -0) = the second: -0 */
  p_minsd_fn(&io);
  CHECK_EQ(io.x0[0], 0x8000000000000000ull);
  io = io_of(0x8000000000000000ull, 0, 0x1F80);
  p_minsd_fn(&io);
  CHECK_EQ(io.x0[0], 0);
  io = io_of(0x7FC000003F800000ull, 0x400000007FC00000ull, 0x1F80); /* maxps with NaNs */
  p_maxps_fn(&io);
  CHECK_EQ(io.x0[0], 0x400000007FC00000ull); /* a NaN in either: the second operand */
}

static void denormals(void) {
  case_begin("ftz_daz");
  /* 2^-126 * 0.5 = 2^-127: exact denormal, no flag; with FTZ: +0, UE and PE. */
  struct io io = io_of(0x00800000, 0x3F000000, 0x1F80);
  p_mulss_fn(&io);
  CHECK_EQ((uint32_t)io.x0[0], 0x00400000);
  CHECK_EQ(io.mxcsr, 0x1F80);
  io = io_of(0x00800000, 0x3F000000, 0x1F80 | MXCSR_FTZ);
  p_mulss_fn(&io);
  CHECK_EQ((uint32_t)io.x0[0], 0);
  CHECK_EQ(io.mxcsr, 0x1F80 | MXCSR_FTZ | MXCSR_UE | MXCSR_PE);
  /* With DAZ a denormal operand is +0 (and raises no DE). */
  io = io_of(0x00000001, 0, 0x1F80 | MXCSR_DAZ);
  p_addss_fn(&io);
  CHECK_EQ((uint32_t)io.x0[0], 0);
  CHECK_EQ(io.mxcsr, 0x1F80 | MXCSR_DAZ);

  case_begin("denormal_flag");
  io = io_of(0x00000001, 0, 0x1F80); /* a denormal operand: DE */
  p_addss_fn(&io);
  CHECK_EQ((uint32_t)io.x0[0], 1);
  CHECK_EQ(io.mxcsr, 0x1F80 | MXCSR_DE);
}

static void compares_and_conversions(void) {
  case_begin("compares");
  struct io io = io_of(F64_1, F64_2, 0x1F80);
  io.x0[1] = F64_3;
  io.x1[1] = F64_2;
  p_cmpltpd_fn(&io);
  CHECK_EQ(io.x0[0], ~0ull);
  CHECK_EQ(io.x0[1], 0);
  io = io_of(0x7FF8000000000000ull, F64_1, 0x1F80); /* unordered: ZF PF CF */
  p_ucomisd_fn(&io);
  CHECK_EQ(io.r & (FL_ZF | FL_PF | FL_CF), FL_ZF | FL_PF | FL_CF);
  CHECK_EQ(io.mxcsr, 0x1F80); /* UCOMISD: no IE for a QNaN */
  io = io_of(0x7FF8000000000000ull, F64_1, 0x1F80);
  p_comisd_fn(&io);
  CHECK_EQ(io.mxcsr, 0x1F80 | MXCSR_IE); /* COMISD: IE for any NaN */
  io = io_of(F64_1, F64_2, 0x1F80);      /* 1 < 2: CF */
  p_comisd_fn(&io);
  CHECK_EQ(io.r & (FL_ZF | FL_PF | FL_CF), FL_CF);

  case_begin("conversions");
  io = io_of(0, 0xBFF8000000000000ull, 0x1F80); /* cvttsd2si(-1.5) = -1, PE */
  p_cvttsd2si_fn(&io);
  CHECK_EQ(io.r, (uint64_t)-1);
  CHECK_EQ(io.mxcsr, 0x1F80 | MXCSR_PE);
  io = io_of(0, 0x4004000000000000ull, 0x1F80); /* cvtsd2si(2.5) = 2 (to even) */
  p_cvtsd2si_fn(&io);
  CHECK_EQ(io.r, 2);
  io = io_of(0, 0x4004000000000000ull, 0x1F80 | RC_UP);
  p_cvtsd2si_fn(&io);
  CHECK_EQ(io.r, 3);
  io = io_of(0, 0x4415AF1D78B58C40ull, 0x1F80); /* 1e20: the integer indefinite, IE */
  p_cvtsd2si_fn(&io);
  CHECK_EQ(io.r, 0x8000000000000000ull);
  CHECK_EQ(io.mxcsr, 0x1F80 | MXCSR_IE);
  io = io_of(0, 0x41F0000000000000ull, 0x1F80); /* 2^32 to r32: 0x80000000 */
  p_cvtsd2si32_fn(&io);
  CHECK_EQ(io.r, 0x80000000u);
  io = io_of(0x1111111122222222ull, 0, 0x1F80);
  io.r = 16777217; /* 2^24 + 1 -> 2^24 in single precision, PE */
  __asm__ volatile("" ::: "memory");
  {
    /* RAX is an input here: the probe zeroes it, so load it in the block. */
    struct io in = io;
    in.x1[0] = 0;
    __asm__ volatile(
        "ldmxcsr 32(%0)\n movdqu (%0), %%xmm0\n cvtsi2ss %1, %%xmm0\n movdqu %%xmm0, (%0)\n"
        "stmxcsr 32(%0)\n movl $0x1F80, 36(%0)\n ldmxcsr 36(%0)" ::"r"(&in),
        "r"((uint64_t)16777217)
        : "memory");
    CHECK_EQ(in.x0[0], 0x111111114B800000ull);
    CHECK_EQ(in.mxcsr, 0x1F80 | MXCSR_PE);
  }
  io = io_of(0x5555555555555555ull, 0x47EFFFFFE0000000ull, 0x1F80); /* FLT_MAX exactly */
  p_cvtsd2ss_fn(&io);
  CHECK_EQ(io.x0[0], 0x555555557F7FFFFFull);
  CHECK_EQ(io.mxcsr, 0x1F80);
  io = io_of(0, 0xC0000000BF800000ull, 0x1F80); /* {-1.0f, -2.0f} -> doubles */
  p_cvtps2pd_fn(&io);
  CHECK_EQ(io.x0[0], 0xBFF0000000000000ull);
  CHECK_EQ(io.x0[1], 0xC000000000000000ull);
}

static void exceptions(void) {
  set_trap_record_only(19, 1);
  set_trap_record_only(6, 1);
  case_begin("xm_delivery");
  enable_sse(1);
  struct io io = io_of(0x40000000, 0, 0x1F80 & ~0x200u); /* divss 2/0 with ZM clear */
  io.x0[1] = 0x1234;
  trap_log_clear();
  p_divss_fn(&io);
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 19);
  CHECK_EQ(io.x0[0], 0x40000000); /* destination kept */
  CHECK_EQ(io.x0[1], 0x1234);
  CHECK_EQ(io.mxcsr, (0x1F80 & ~0x200u) | MXCSR_ZE);

  case_begin("ud_without_osxmmexcpt");
  enable_sse(0);
  io = io_of(0x40000000, 0, 0x1F80 & ~0x200u);
  trap_log_clear();
  p_divss_fn(&io);
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 6);
  CHECK_EQ(io.x0[0], 0x40000000);
  CHECK_EQ(io.mxcsr, (0x1F80 & ~0x200u) | MXCSR_ZE);
  enable_sse(1);
  set_trap_record_only(19, 0);
  set_trap_record_only(6, 0);
}

static void mmx(void) {
  case_begin("mmx");
  uint64_t a = 0x80FF7F0102030405ull, b = 0x80017F01FEFDFC05ull, sum = 0, fsw = 0;
  __asm__ volatile(
      "fninit\n fld1\n" /* TOP = 7, one register valid */
      "movq %2, %%mm0\n movq %3, %%mm1\n paddusb %%mm1, %%mm0\n movq %%mm0, %0\n"
      "fnstsw %%ax\n movzwl %%ax, %%eax\n mov %%rax, %1\n emms"
      : "=m"(sum), "=m"(fsw)
      : "m"(a), "m"(b)
      : "rax", "memory");
  CHECK_EQ(sum, 0xFFFFFE02FFFFFF0Aull);
  CHECK_EQ((fsw >> 11) & 7, 0); /* TOP = 0 */
}

void guest_main(void) {
  enable_sse(1);
  arithmetic();
  denormals();
  compares_and_conversions();
  exceptions();
  mmx();
  guest_finish();
}
