/* String instructions with REP prefixes and DF (SDM vol. 2B "MOVS", "STOS",
 * "CMPS", "SCAS", "LODS", "REP/REPE/REPZ/REPNE/REPNZ"): each iteration moves
 * RSI/RDI by the operand size, forward with DF = 0 and backward with DF = 1;
 * RCX counts down; REPE/REPNE also stop on ZF; with RCX = 0 nothing is
 * accessed and no flag changes. */
#include "guest.h"

GUEST_NAME("string_ops");

struct regs {
  uint64_t rsi, rdi, rcx, rflags;
};

static uint8_t a[64], b[64];

static void fill(void) {
  for (int i = 0; i < 64; i++) {
    a[i] = (uint8_t)(i + 1);
    b[i] = 0xEE;
  }
}

#define STR_OP(name, insn)                                                            \
  static struct regs name(void* src, void* dst, uint64_t count, int df) {            \
    struct regs r;                                                                    \
    uint64_t s = (uint64_t)src, d = (uint64_t)dst, c = count, f;                      \
    __asm__ volatile("test %[df], %[df]\n jz 1f\n std\n1: " insn "\n pushfq\n pop %[f]\n cld" \
                     : "+S"(s), "+D"(d), "+c"(c), [f] "=r"(f)                         \
                     : [df] "r"(df), "a"(0)                                           \
                     : "memory", "cc");                                               \
    r.rsi = s;                                                                        \
    r.rdi = d;                                                                        \
    r.rcx = c;                                                                        \
    r.rflags = f;                                                                     \
    return r;                                                                         \
  }
STR_OP(rep_movsb, "rep movsb")
STR_OP(rep_movsw, "rep movsw")
STR_OP(rep_movsd, "rep movsl")
STR_OP(rep_movsq, "rep movsq")
STR_OP(repe_cmpsb, "repe cmpsb")
STR_OP(repne_cmpsb, "repne cmpsb")

void guest_main(void) {
  struct regs r;
  case_begin("movsb_forward");
  fill();
  r = rep_movsb(a, b, 10, 0);
  CHECK_EQ(r.rsi, (uint64_t)a + 10);
  CHECK_EQ(r.rdi, (uint64_t)b + 10);
  CHECK_EQ(r.rcx, 0);
  for (int i = 0; i < 10; i++) CHECK_EQ(b[i], i + 1);
  CHECK_EQ(b[10], 0xEE);

  case_begin("movsb_backward");
  fill();
  r = rep_movsb(a + 9, b + 9, 10, 1);
  CHECK_EQ(r.rsi, (uint64_t)a - 1);
  CHECK_EQ(r.rdi, (uint64_t)b - 1);
  for (int i = 0; i < 10; i++) CHECK_EQ(b[i], i + 1);

  case_begin("movs_sizes");
  fill();
  r = rep_movsw(a, b, 3, 0);
  CHECK_EQ(r.rdi, (uint64_t)b + 6);
  CHECK_EQ(b[5], 6);
  CHECK_EQ(b[6], 0xEE);
  fill();
  r = rep_movsd(a + 8, b + 8, 2, 1); /* backward: moves a[8..11], then a[4..7] */
  CHECK_EQ(r.rsi, (uint64_t)a);
  CHECK_EQ(b[4], 5);
  CHECK_EQ(b[11], 12);
  CHECK_EQ(b[3], 0xEE);
  CHECK_EQ(b[12], 0xEE);
  fill();
  r = rep_movsq(a, b, 4, 0);
  CHECK_EQ(r.rdi, (uint64_t)b + 32);
  CHECK_EQ(b[31], 32);
  CHECK_EQ(b[32], 0xEE);

  case_begin("overlap_forward");
  /* Byte-at-a-time forward copy onto itself shifted by one replicates a[0]. */
  fill();
  rep_movsb(a, a + 1, 8, 0);
  for (int i = 0; i <= 8; i++) CHECK_EQ(a[i], 1);
  CHECK_EQ(a[9], 10);

  case_begin("count_zero");
  fill();
  uint64_t f0;
  __asm__ volatile("stc\n pushfq\n pop %0" : "=r"(f0)::"cc");
  {
    uint64_t s = (uint64_t)a, d = (uint64_t)b, c = 0, f;
    __asm__ volatile("stc\n rep movsb\n pushfq\n pop %[f]\n clc"
                     : "+S"(s), "+D"(d), "+c"(c), [f] "=r"(f)::"memory", "cc");
    CHECK_EQ(s, (uint64_t)a);
    CHECK_EQ(d, (uint64_t)b);
    CHECK_EQ(f & FL_CF, FL_CF);
    CHECK_EQ(b[0], 0xEE);
    /* REPE CMPSB with RCX = 0 leaves ZF as it was (here: cleared by the CMP). */
    __asm__ volatile("cmp $1, %%al\n repe cmpsb\n pushfq\n pop %[f]"
                     : "+S"(s), "+D"(d), "+c"(c), [f] "=r"(f)
                     : "a"(0)
                     : "memory", "cc");
    CHECK_EQ(f & FL_ZF, 0);
    CHECK_EQ(s, (uint64_t)a);
  }
  (void)f0;

  case_begin("repe_cmpsb");
  fill();
  memcpy(b, a, 64);
  b[5] = 0; /* a[5] = 6 > 0: first difference at index 5 */
  r = repe_cmpsb(a, b, 20, 0);
  CHECK_EQ(r.rcx, 20 - 6);
  CHECK_EQ(r.rsi, (uint64_t)a + 6);
  CHECK_EQ(r.rflags & (FL_ZF | FL_CF), 0); /* 6 - 0: not equal, no borrow */
  r = repe_cmpsb(a, a, 20, 0);             /* all equal: runs out */
  CHECK_EQ(r.rcx, 0);
  CHECK_EQ(r.rflags & FL_ZF, FL_ZF);

  case_begin("repne_cmpsb");
  fill();
  b[3] = 4; /* equal to a[3] */
  r = repne_cmpsb(a, b, 10, 0);
  CHECK_EQ(r.rcx, 10 - 4);
  CHECK_EQ(r.rflags & FL_ZF, FL_ZF);

  case_begin("repne_scasb");
  fill();
  {
    uint64_t d = (uint64_t)a, c = 64, f;
    __asm__ volatile("repne scasb\n pushfq\n pop %[f]"
                     : "+D"(d), "+c"(c), [f] "=r"(f)
                     : "a"(17)
                     : "memory", "cc");
    CHECK_EQ(d, (uint64_t)a + 17); /* a[16] = 17, RDI one past it */
    CHECK_EQ(c, 64 - 17);
    CHECK_EQ(f & FL_ZF, FL_ZF);
    d = (uint64_t)a + 63;
    c = 64;
    __asm__ volatile("std\n repne scasb\n cld\n pushfq\n pop %[f]"
                     : "+D"(d), "+c"(c), [f] "=r"(f)
                     : "a"(1)
                     : "memory", "cc");
    CHECK_EQ(d, (uint64_t)a - 1);
    CHECK_EQ(c, 0); /* found at the last iteration */
    CHECK_EQ(f & FL_ZF, FL_ZF);
  }

  case_begin("stos_lods");
  fill();
  {
    uint64_t d = (uint64_t)b + 1, c = 3;
    __asm__ volatile("rep stosw" : "+D"(d), "+c"(c) : "a"(0xA1B2) : "memory");
    CHECK_EQ(d, (uint64_t)b + 7);
    CHECK_EQ(b[1], 0xB2);
    CHECK_EQ(b[2], 0xA1);
    CHECK_EQ(b[6], 0xA1);
    CHECK_EQ(b[7], 0xEE);
    uint64_t s = (uint64_t)a + 4, v;
    __asm__ volatile("lodsl" : "+S"(s), "=a"(v) : : "memory");
    CHECK_EQ(v & 0xFFFFFFFF, 0x08070605);
    CHECK_EQ(s, (uint64_t)a + 8);
    __asm__ volatile("std\n lodsq\n cld" : "+S"(s), "=a"(v) : : "memory");
    CHECK_EQ(v, 0x100F0E0D0C0B0A09ull);
    CHECK_EQ(s, (uint64_t)a);
  }

  case_begin("addr32_wrap");
  /* 0x67 prefix: ESI/EDI/ECX are the 32-bit registers; the upper halves of
   * RSI/RDI are cleared by the 32-bit updates. */
  fill();
  {
    uint64_t s = (uint64_t)a | 0xABCD00000000ull, d = (uint64_t)b, c = 2;
    __asm__ volatile("addr32 rep movsb" : "+S"(s), "+D"(d), "+c"(c) : : "memory");
    CHECK_EQ(s, (uint64_t)a + 2);
    CHECK_EQ(b[1], 2);
  }
}
