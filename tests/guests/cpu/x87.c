/* The x87 FPU as a guest sees it, checked against the values IEEE 754 and
 * the SDM define (vol. 1 ch. 4 and 8, vol. 2 per instruction): 1/3 in each
 * precision and rounding mode, FSW flags and C1, FIST rounding, FBSTP/FBLD,
 * the stack overflow response, FCOMI flags, FPREM's C2 loop, FXAM, the
 * transcendentals against correctly rounded values (within 1 ulp), and an
 * unmasked exception delivered as #MF (vector 16, CR0.NE) by the next
 * waiting instruction, with the destination kept. */
#include "guest.h"

GUEST_NAME("x87");

struct f80 {
  uint64_t sig;
  uint16_t se;
} __attribute__((packed));

/* FSW bits. */
#define IE 0x0001u
#define DE 0x0002u
#define ZE 0x0004u
#define PE 0x0020u
#define SF 0x0040u
#define ES 0x0080u
#define C0 0x0100u
#define C1 0x0200u
#define C2 0x0400u
#define C3 0x4000u
#define B 0x8000u

static uint16_t fsw(void) {
  uint16_t s;
  __asm__ volatile("fnstsw %0" : "=m"(s));
  return s;
}

/* a / b with control word cw; returns the 80-bit result and the FSW. */
static struct f80 divide(struct f80 a, struct f80 b, uint16_t cw, uint16_t* status) {
  struct f80 r;
  __asm__ volatile("fninit\n fldcw %3\n fldt %1\n fldt %2\n fdivrp\n fnstsw %4\n fstpt %0"
                   : "=m"(r)
                   : "m"(a), "m"(b), "m"(cw), "m"(*status)
                   : "memory");
  return r;
}

static const struct f80 kOne = {0x8000000000000000ull, 0x3FFF};
static const struct f80 kThree = {0xC000000000000000ull, 0x4000};

static void rounding(void) {
  case_begin("third_each_precision_and_rounding");
  /* 1/3 rounded to 64, 53 and 24 bits, RC nearest, down, up, zero. */
  static const struct {
    uint16_t pc;
    uint64_t sig[4];
  } want[] = {
      {3, {0xAAAAAAAAAAAAAAABull, 0xAAAAAAAAAAAAAAAAull, 0xAAAAAAAAAAAAAAABull,
           0xAAAAAAAAAAAAAAAAull}},
      {2, {0xAAAAAAAAAAAAA800ull, 0xAAAAAAAAAAAAA800ull, 0xAAAAAAAAAAAAB000ull,
           0xAAAAAAAAAAAAA800ull}},
      {0, {0xAAAAAB0000000000ull, 0xAAAAAA0000000000ull, 0xAAAAAB0000000000ull,
           0xAAAAAA0000000000ull}},
  };
  uint16_t status[3][4];
  for (unsigned p = 0; p < 3; ++p)
    for (unsigned rc = 0; rc < 4; ++rc) {
      const uint16_t cw = (uint16_t)(0x007F | want[p].pc << 8 | rc << 10);
      const struct f80 r = divide(kOne, kThree, cw, &status[p][rc]);
      CHECK_EQ(r.se, 0x3FFD);
      CHECK_EQ(r.sig, want[p].sig[rc]);
      CHECK_EQ(status[p][rc] & (PE | IE | ZE), PE);
    }

  case_begin("c1_round_up");
  /* C1 = 1 when the magnitude was rounded up (here: the results above
   * that end in ...AB, ...B000, ...AB00..). */
  for (unsigned p = 0; p < 3; ++p)
    for (unsigned rc = 0; rc < 4; ++rc) {
      const uint64_t sig = want[p].sig[rc];
      const int up = (sig & 0xFF) == 0xAB || sig == 0xAAAAAAAAAAAAB000ull ||
                     sig == 0xAAAAAB0000000000ull;
      CHECK_EQ(status[p][rc] & C1, up ? C1 : 0);
    }

  case_begin("fist_rounding");
  static const struct {
    uint16_t rc;
    int16_t half, neg_half; /* 2.5, -2.5 */
  } fist[] = {{0, 2, -2}, {1, 2, -3}, {2, 3, -2}, {3, 2, -2}};
  for (unsigned k = 0; k < 4; ++k) {
    int16_t a, b;
    const uint16_t cw = (uint16_t)(0x037F | fist[k].rc << 10);
    const double h = 2.5, nh = -2.5;
    __asm__ volatile("fninit\n fldcw %2\n fldl %3\n fistps %0\n fldl %4\n fistps %1"
                     : "=m"(a), "=m"(b)
                     : "m"(cw), "m"(h), "m"(nh));
    CHECK_EQ(a, fist[k].half);
    CHECK_EQ(b, fist[k].neg_half);
  }
  /* FISTTP truncates whatever RC says; out of range is the integer indefinite. */
  int32_t t, big;
  const double x = -7.9, huge = 3e9;
  __asm__ volatile("fninit\n fldl %2\n fisttpl %0\n fldl %3\n fistpl %1"
                   : "=m"(t), "=m"(big)
                   : "m"(x), "m"(huge));
  CHECK_EQ(t, -7);
  CHECK_EQ((uint32_t)big, 0x80000000u);
  CHECK_EQ(fsw() & IE, IE);
}

static void bcd(void) {
  case_begin("fbstp_fbld");
  uint8_t p[10];
  const double v = -1234567890123.0;
  __asm__ volatile("fninit\n fldl %1\n fbstp %0" : "=m"(p) : "m"(v));
  static const uint8_t want[10] = {0x23, 0x01, 0x89, 0x67, 0x45, 0x23, 0x01, 0, 0, 0x80};
  for (int k = 0; k < 10; ++k) CHECK_EQ(p[k], want[k]);
  uint64_t back, bits;
  __asm__ volatile("fbld %1\n fstpl %0" : "=m"(back) : "m"(p));
  memcpy(&bits, &v, 8);
  CHECK_EQ(back, bits);
}

static void stack(void) {
  case_begin("stack_overflow_masked");
  struct f80 top;
  uint16_t s;
  __asm__ volatile(
      "fninit\n fld1\n fld1\n fld1\n fld1\n fld1\n fld1\n fld1\n fld1\n"
      "fld1\n fnstsw %1\n fstpt %0\n fninit"
      : "=m"(top), "=m"(s));
  CHECK_EQ(s & (IE | SF | C1), IE | SF | C1);
  CHECK_EQ(top.se, 0xFFFF); /* QNaN indefinite */
  CHECK_EQ(top.sig, 0xC000000000000000ull);

  case_begin("fxam_and_tags");
  uint16_t empty, zero, inf;
  __asm__ volatile(
      "fninit\n fxam\n fnstsw %0\n fldz\n fxam\n fnstsw %1\n"
      "fld1\n fldz\n fdivrp\n fxam\n fnstsw %2\n fninit"
      : "=m"(empty), "=m"(zero), "=m"(inf));
  CHECK_EQ(empty & (C3 | C2 | C0), C3 | C0);
  CHECK_EQ(zero & (C3 | C2 | C0), C3);
  CHECK_EQ(inf & (C3 | C2 | C0), C2 | C0);
  CHECK_EQ(inf & ZE, ZE); /* 1 / 0 */
}

static void compares(void) {
  case_begin("fcomi_flags");
  uint64_t lt, un;
  __asm__ volatile(
      "fninit\n fld1\n fld1\n fadd %%st(0)\n fld1\n fcomip %%st(1)\n pushf\n pop %0\n"
      "fninit\n fldz\n fldz\n fdivrp\n fld1\n fucomip %%st(1)\n pushf\n pop %1\n fninit"
      : "=r"(lt), "=r"(un));
  CHECK_EQ(lt & 0x45, 0x01);  /* 1 < 2: CF */
  CHECK_EQ(un & 0x45, 0x45);  /* 0/0 is a NaN: unordered, ZF PF CF */

  case_begin("fprem_loop");
  /* 2^100 mod 3 = 1: FPREM needs more than one step (C2 = 1 until done). */
  const struct f80 big = {0x8000000000000000ull, 0x3FFF + 100};
  struct f80 r;
  int steps = 0;
  uint16_t s;
  __asm__ volatile("fninit\n fldt %0\n fldt %1" ::"m"(kThree), "m"(big));
  do {
    __asm__ volatile("fprem\n fnstsw %0" : "=m"(s));
    ++steps;
  } while ((s & C2) && steps < 10);
  __asm__ volatile("fstpt %0\n fninit" : "=m"(r));
  CHECK(steps > 1);
  CHECK_EQ(s & C2, 0);
  CHECK_EQ(r.se, 0x3FFF);
  CHECK_EQ(r.sig, 0x8000000000000000ull);
}

/* |a - b| in ulps for two values with the same sign and exponent. */
static int near(struct f80 a, uint16_t se, uint64_t sig) {
  if (a.se != se) return 0;
  const uint64_t d = a.sig > sig ? a.sig - sig : sig - a.sig;
  return d <= 1;
}

static void transcendental(void) {
  case_begin("transcendental_values");
  struct f80 s, c, t, one, l;
  const double half = 0.5, eight = 8.0, three = 3.0;
  __asm__ volatile("fninit\n fldl %2\n fsincos\n fstpt %1\n fstpt %0" : "=m"(s), "=m"(c) : "m"(half));
  CHECK(near(s, 0x3FFD, 0xF57743A2582F7F44ull)); /* sin 0.5 */
  CHECK(near(c, 0x3FFE, 0xE0A94032DBEA7CEEull)); /* cos 0.5 */
  __asm__ volatile("fldl %2\n fptan\n fstpt %1\n fstpt %0" : "=m"(t), "=m"(one) : "m"(half));
  CHECK(near(t, 0x3FFE, 0x8BDA7ADF9A3A5219ull)); /* tan 0.5 */
  CHECK_EQ(one.se, 0x3FFF);
  CHECK_EQ(one.sig, 0x8000000000000000ull);
  __asm__ volatile("fldl %1\n fldl %2\n fyl2x\n fstpt %0" : "=m"(l) : "m"(three), "m"(eight));
  CHECK_EQ(l.se, 0x4002); /* 3 * log2(8) = 9 exactly */
  CHECK_EQ(l.sig, 0x9000000000000000ull);

  case_begin("fsin_out_of_range");
  const struct f80 two63 = {0x8000000000000000ull, 0x3FFF + 63};
  struct f80 same;
  uint16_t st;
  __asm__ volatile("fninit\n fldt %2\n fsin\n fnstsw %1\n fstpt %0" : "=m"(same), "=m"(st) : "m"(two63));
  CHECK_EQ(st & C2, C2);
  CHECK_EQ(same.se, two63.se);
  CHECK_EQ(same.sig, two63.sig);
}

static void mf(void) {
  case_begin("mf_delivery");
  set_trap_record_only(16, 1);
  write_cr0((read_cr0() & ~(ureg)0xC) | 0x22); /* EM, TS clear; MP, NE */
  struct f80 kept;
  uint16_t s;
  trap_log_clear();
  /* ZE unmasked: 1/0 leaves ST0 alone and sets ES; the FWAIT after it
   * raises #MF, and the handler resumes after the FWAIT. */
  __asm__ volatile(
      "fninit\n fldcw %2\n fld1\n fldz\n lea 1f(%%rip), %%rax\n mov %%rax, trap_resume(%%rip)\n"
      "fdivr %%st(1), %%st\n fwait\n 1: movq $0, trap_resume(%%rip)\n"
      "fnstsw %1\n fnclex\n fstpt %0\n fninit"
      : "=m"(kept), "=m"(s)
      : "m"((uint16_t){0x037B})
      : "rax", "memory");
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 16);
  CHECK_EQ(s & (ZE | ES | B), ZE | ES | B);
  CHECK_EQ(kept.se, 0); /* ST0 = +0 kept: the division stored nothing */
  CHECK_EQ(kept.sig, 0);
  set_trap_record_only(16, 0);
}

void guest_main(void) {
  write_cr0((read_cr0() & ~(ureg)0xC) | 0x22);
  rounding();
  bcd();
  stack();
  compares();
  transcendental();
  mf();
  guest_finish();
}
