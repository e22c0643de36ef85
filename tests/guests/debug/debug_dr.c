/* Issue 4 point 4: the debug registers.
 * SDM vol. 3, 18.2 "Debug Registers" (DR7 L/G, R/W and LEN fields; DR6 B0-B3,
 * BD, BS), 18.2.5 "Breakpoint Field Recognition" (an access hits when any byte
 * it touches lies in [DRn & ~(len-1), +len)), 18.3.1.1 "Instruction-Breakpoint
 * Exception Condition" (fault before execution; RF suppresses it; RF is cleared
 * after the next instruction retires), 18.3.1.2 "Data Memory and I/O Breakpoint
 * Exception Conditions" (traps after the access; for REP string instructions
 * after the iteration that hit, RIP on the string instruction), 18.2.4 GD
 * (general detect: #DB fault on MOV DR with DR6.BD, GD cleared on delivery),
 * 18.2.2 "Debug Registers DR4 and DR5" (aliases of DR6/DR7 with CR4.DE = 0,
 * #UD with CR4.DE = 1), 18.2.4 R/W = 10 with CR4.DE = 1: I/O breakpoints.
 * AMD APM vol. 2, 13.1.1 agrees on all of these. */
#include "dbg_seq.h"

GUEST_NAME("debug_dr");

/* Accessors: the data-breakpoint #DB reports RIP = the RET after the access. */
L(w1); L(w1_end); L(w2); L(w2_end); L(w4); L(w4_end); L(w8); L(w8_end);
L(r1); L(r1_end); L(r8); L(r8_end);
__asm__(".text\n"
        "w1: movb %sil, (%rdi)\n"
        "w1_end: ret\n"
        "w2: movw %si, (%rdi)\n"
        "w2_end: ret\n"
        "w4: movl %esi, (%rdi)\n"
        "w4_end: ret\n"
        "w8: movq %rsi, (%rdi)\n"
        "w8_end: ret\n"
        "r1: movzbl (%rdi), %eax\n"
        "r1_end: ret\n"
        "r8: movq (%rdi), %rax\n"
        "r8_end: ret\n");
typedef void (*wfn)(volatile void*, ureg);
typedef ureg (*rfn)(volatile void*);

static volatile uint8_t buf[64] __attribute__((aligned(64)));

static void set_dr(int n, ureg v) {
  switch (n) {
    case 0: write_dr0(v); break;
    case 1: write_dr1(v); break;
    case 2: write_dr2(v); break;
    default: write_dr3(v); break;
  }
}
/* LEN encoding (18.2.4): 00 = 1 byte, 01 = 2, 11 = 4, 10 = 8. */
static ureg dr7_for(int n, int rw, int len, int global) {
  static const int enc[9] = {0, 0, 1, 0, 3, 0, 0, 0, 2};
  return 0x400 | (1ul << (2 * n + (global ? 1 : 0))) | ((ureg)rw << (16 + 4 * n)) |
         ((ureg)enc[len] << (18 + 4 * n));
}

/* One access with a fresh log; returns how many #DB it raised, and checks the
 * single expected one when hit. */
static void access(const char* what, void* fn, volatile void* p, int is_write, int expect_hit,
                   uint32_t bit, ureg end) {
  write_dr6(DR6_INIT);
  trap_log_clear();
  if (is_write)
    ((wfn)fn)(p, 0x5A);
  else
    ((rfn)fn)(p);
  if (!expect_hit) {
    CHECK_MSG(trap_count == 0, "%s at watched%+ld: %d #DB, expected none", what,
              (long)((ureg)p - (ureg)(buf + 16)), trap_count);
    if (trap_count) trap_log_dump();
    return;
  }
  const struct trap_expect e[] = {{1, end, bit, 0, FL_TF, 0, 0}};
  CHECK_MSG(trap_count == 1, "%s at watched%+ld: %d #DB, expected 1", what,
            (long)((ureg)p - (ureg)(buf + 16)), trap_count);
  if (trap_count == 1) expect_traps(e, 1);
}

static void data_breakpoints(void) {
  static const int lens[4] = {1, 2, 4, 8};
  volatile uint8_t* a = buf + 16;
  for (int n = 0; n < 4; n++) {
    for (int li = 0; li < 4; li++) {
      int len = lens[li];
      uint32_t bit = 1u << n;
      for (int k = 0; k < 4; k++) set_dr(k, 0);
      set_dr(n, (ureg)a);
      /* write-only (R/W = 01), local enable for even n, global for odd n */
      write_dr7(dr7_for(n, 1, len, n & 1));
      access("write1 last byte", w1, a + len - 1, 1, 1, bit, (ureg)w1_end);
      access("write1 first byte", w1, a, 1, 1, bit, (ureg)w1_end);
      access("write1 past end", w1, a + len, 1, 0, 0, 0);
      access("write1 before", w1, a - 1, 1, 0, 0, 0);
      access("read1 (write-only bp)", r1, a, 0, 0, 0, 0);
      access("write8 overlapping start", w8, a - 4, 1, 1, bit, (ureg)w8_end);
      access("write2 straddling end", w2, a + len - 1, 1, 1, bit, (ureg)w2_end);
      access("write4 just below", w4, a - 4, 1, 0, 0, 0);
      /* read/write (R/W = 11) */
      write_dr7(dr7_for(n, 3, len, n & 1));
      access("rw: read1", r1, a + len - 1, 0, 1, bit, (ureg)r1_end);
      access("rw: read8 overlapping", r8, a - 7, 0, 1, bit, (ureg)r8_end);
      access("rw: write1", w1, a, 1, 1, bit, (ureg)w1_end);
      access("rw: read1 past end", r1, a + len, 0, 0, 0, 0);
      /* disabled: same registers, L = G = 0 */
      write_dr7(0x400 | ((ureg)3 << (16 + 4 * n)));
      access("disabled: write1", w1, a, 1, 0, 0, 0);
    }
  }
  write_dr7(0x400);
  for (int k = 0; k < 4; k++) set_dr(k, 0);
}

/* Instruction breakpoints on two consecutive instructions: the first faults
 * (RIP = xb_a, RF clear in the image); the handler sets RF, the instruction
 * runs without re-triggering, RF is cleared after it, so the breakpoint on the
 * next instruction fires too. */
L(xb_start); L(xb_a); L(xb_b); L(xb_end);
__asm__(".text\n"
        "xb_start: nop\n"
        "xb_a: nop\n"
        "xb_b: nop\n"
        "xb_end: ret\n");

static volatile ureg handler_dr7;
static void db_set_rf(struct trap_frame* f) {
  handler_dr7 = read_dr7();
  if (trap_log[trap_count - 1].dr6 & 0xF) f->rflags |= FL_RF;
  if (trap_count > 8) write_dr7(0x400); /* runaway guard */
}

/* REP MOVSB over a data breakpoint: #DB after the iteration that wrote the
 * watched byte, RIP still on the REP MOVSB, RCX = iterations left. */
L(rm_start); L(rm_rep); L(rm_end);
__asm__(".text\n"
        "rm_start: mov %rdx, %rcx\n"
        "rm_rep: rep movsb\n"
        "rm_end: ret\n");

/* GD: each MOV DR with DR7.GD = 1 faults (RIP = the MOV DR, DR6.BD); the
 * delivery clears GD, so the MOV DR re-executes normally. */
L(gd_start); L(gd_mov); L(gd_read); L(gd_end);
__asm__(".text\n"
        "gd_start: mov $0x2400, %eax\n"
        "  mov %rax, %dr7\n"
        "  mov $0x1234, %ecx\n"
        "gd_mov: mov %rcx, %dr0\n"
        "  mov %rax, %dr7\n"
        "gd_read: mov %dr7, %rax\n"
        "gd_end: ret\n");

L(io_start); L(io_out); L(io_out_end); L(io_other); L(io_in); L(io_in_end);
static volatile uint8_t io_value;
__asm__(".text\n"
        "io_start: mov $0x3FF, %edx\n"
        "  mov $0xA5, %al\n"
        "io_out: outb %al, %dx\n"
        "io_out_end: mov $0x3FC, %edx\n"
        "  mov $0x03, %al\n"
        "io_other: outb %al, %dx\n"
        "  mov $0x3FF, %edx\n"
        "io_in: inb %dx, %al\n"
        "io_in_end: movb %al, io_value(%rip)\n"
        "  ret\n");

void guest_main(void) {
  set_trap_record_only(1, 1);
  write_dr7(0x400);

  case_begin("data_len_type");
  data_breakpoints();

  case_begin("two_breakpoints");
  /* DR0 = a (write, 1 byte), DR1 = a+4 (write, 4 bytes), both enabled: an
   * access hitting one reports only its Bn; one access hitting both reports
   * B0|B1 in a single #DB (18.2.3: Bn for every enabled condition met). */
  {
    volatile uint8_t* a = buf + 16;
    write_dr0((ureg)a);
    write_dr1((ureg)(a + 4));
    write_dr7(dr7_for(0, 1, 1, 0) | dr7_for(1, 1, 4, 0));
    access("write1 hits DR0 only", w1, a, 1, 1, DR6_B0, (ureg)w1_end);
    access("write1 hits DR1 only", w1, a + 7, 1, 1, DR6_B1, (ureg)w1_end);
    access("write8 hits both", w8, a, 1, 1, DR6_B0 | DR6_B1, (ureg)w8_end);
    access("write1 between", w1, a + 2, 1, 0, 0, 0);
    write_dr7(0x400);
    write_dr0(0);
    write_dr1(0);
  }

  case_begin("exec_rf");
  set_trap_hook(1, db_set_rf);
  write_dr0((ureg)xb_a);
  write_dr1((ureg)xb_b);
  write_dr7(0x400 | 1 | 4); /* L0, L1; R/W = 00 exec, LEN = 00 */
  RUN(xb_start);
  write_dr7(0x400);
  {
    const struct trap_expect e[] = {{1, (ureg)xb_a, DR6_B0, 0, FL_RF | FL_TF, 0, 0},
                                    {1, (ureg)xb_b, DR6_B1, 0, FL_RF | FL_TF, 0, 0}};
    expect_traps(e, 2);
  }

  case_begin("dr6_bs_sticky");
  /* B0-B3 reflect the breakpoints that hit; BS set earlier by software is not
   * cleared by the CPU (18.2.3). */
  trap_reset_dr6 = 0;
  write_dr6(DR6_INIT | DR6_BS);
  trap_log_clear();
  write_dr7(0x400 | 1);
  ((void (*)(void))xb_start)();
  write_dr7(0x400);
  trap_reset_dr6 = 1;
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].dr6 & DR6_MASK, DR6_BS | DR6_B0);
  write_dr6(DR6_INIT);
  set_trap_hook(1, 0);

  case_begin("rep_movsb_databp");
  {
    static volatile uint8_t src[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    static volatile uint8_t dst[16];
    write_dr0((ureg)&dst[5]);
    write_dr7(dr7_for(0, 1, 1, 0));
    write_dr6(DR6_INIT);
    trap_log_clear();
    __asm__ volatile("call rm_start" ::"S"(src), "D"(dst), "d"(10) : "rcx", "memory");
    write_dr7(0x400);
    const struct trap_expect e[] = {{1, (ureg)rm_rep, DR6_B0, 0, FL_TF, 1, 4}};
    expect_traps(e, 1);
    for (int i = 0; i < 10; i++) CHECK_EQ(dst[i], src[i]);
  }

  case_begin("general_detect");
  set_trap_hook(1, db_set_rf);
  write_dr0(0);
  {
    write_dr6(DR6_INIT);
    trap_log_clear();
    ureg dr7_read;
    __asm__ volatile("call gd_start" : "=a"(dr7_read)::"rcx", "memory");
    const struct trap_expect e[] = {{1, (ureg)gd_mov, DR6_BD, 0, FL_TF, 0, 0},
                                    {1, (ureg)gd_read, DR6_BD, 0, FL_TF, 0, 0}};
    expect_traps(e, 2);
    CHECK_EQ(handler_dr7 & 0x2000, 0); /* GD clear inside the handler */
    CHECK_EQ(dr7_read & 0x2000, 0);
    CHECK_EQ(read_dr0(), 0x1234);
  }
  set_trap_hook(1, 0);
  write_dr7(0x400);

  case_begin("io_breakpoint");
  write_cr4(read_cr4() | 8); /* CR4.DE */
  write_dr0(0x3FF);
  write_dr7(dr7_for(0, 2, 1, 0));
  RUN(io_start);
  write_dr7(0x400);
  {
    const struct trap_expect e[] = {{1, (ureg)io_out_end, DR6_B0, 0, FL_TF, 0, 0},
                                    {1, (ureg)io_in_end, DR6_B0, 0, FL_TF, 0, 0}};
    expect_traps(e, 2);
  }
  CHECK_EQ(io_value, 0xA5); /* COM1 scratch register reads back */
  write_cr4(read_cr4() & ~(ureg)8);

  case_begin("dr4_dr5_alias");
  {
    ureg v4, v5;
    write_dr6(DR6_INIT | DR6_B2);
    __asm__ volatile(".byte 0x0f, 0x21, 0xe0" : "=a"(v4)); /* mov %dr4, %rax */
    CHECK_EQ(v4 & 0xFFFFFFFF, DR6_INIT | DR6_B2);
    __asm__ volatile(".byte 0x0f, 0x23, 0xe0" ::"a"((ureg)DR6_INIT)); /* mov %rax, %dr4 */
    CHECK_EQ(read_dr6() & DR6_MASK, 0);
    write_dr0(0);
    __asm__ volatile(".byte 0x0f, 0x23, 0xe8" ::"a"((ureg)0x402)); /* mov %rax, %dr5 */
    CHECK_EQ(read_dr7() & 0xFFFF, 0x402);
    __asm__ volatile(".byte 0x0f, 0x21, 0xe8" : "=a"(v5)); /* mov %dr5, %rax */
    CHECK_EQ(v5 & 0xFFFF, 0x402);
    write_dr7(0x400);
  }

  case_begin("dr4_ud_with_de");
  write_cr4(read_cr4() | 8);
  trap_log_clear();
  __asm__ volatile(
      "lea 1f(%%rip), %%rax\n"
      "mov %%rax, trap_resume(%%rip)\n"
      ".byte 0x0f, 0x21, 0xe0\n"
      "1:\n" ::: "rax", "memory");
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 6);
  write_cr4(read_cr4() & ~(ureg)8);
}
