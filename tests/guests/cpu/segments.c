/* Protected-mode segmentation (32-bit guest). SDM vol. 3, 5.3 "Limit
 * Checking" (expand-up: valid offsets 0..limit; expand-down: limit+1..FFFFh or
 * FFFFFFFFh by the B flag; G scales the limit to limit*4K + FFFh), 5.4-5.6
 * (type and privilege checks on segment loads), 3.4.5.1 "Code- and
 * Data-Segment Descriptor Types"; vol. 2 "MOV" (loading DS/ES: NULL is allowed,
 * not present -> #NP(sel), execute-only code or DPL < max(CPL,RPL) ->
 * #GP(sel); loading SS: NULL, non-writable -> #GP), "LSL", "LAR", "VERR".
 * Data accesses beyond the limit raise #GP(0), through SS #SS(0). */
#include "guest.h"

GUEST_NAME("segments");

static uint8_t buf[0x2000] __attribute__((aligned(4096)));

#define SEL(i) ((i) * 8)
enum { D_BYTE = 12, D_GRAN, D_XDOWN, D_XDOWN16, S_FLAT_LIM, S_XDOWN, D_NP, C_XONLY, C_READ, D_RO,
       C_SMALL, D_DPL0, C_CONF, G_CALL, S_LDT };
/* The LDT: entry 0 unused, 1 = data (base buf + 0x100, limit 0xFF), 2 = not present. */
static uint64_t ldt[4] __attribute__((aligned(8)));

/* Probes load ES (or SS) and touch memory; the lib's trap_resume is written
 * through SS so that it works whatever ES/DS hold. Return 1 when it faulted. */
static uint32_t probe_val;
static int read_es8(uint32_t off) {
  trap_log_clear();
  uint32_t v = 0;
  __asm__ volatile("movl $1f, %%ss:trap_resume\n movzbl %%es:(%1), %0\n movl $0, %%ss:trap_resume\n1:"
                   : "+r"(v)
                   : "r"(off)
                   : "memory");
  probe_val = v;
  return trap_count;
}
static int read_es16(uint32_t off) {
  trap_log_clear();
  uint32_t v = 0;
  __asm__ volatile("movl $1f, %%ss:trap_resume\n movzwl %%es:(%1), %0\n movl $0, %%ss:trap_resume\n1:"
                   : "+r"(v)
                   : "r"(off)
                   : "memory");
  probe_val = v;
  return trap_count;
}
static int read_es32(uint32_t off) {
  trap_log_clear();
  uint32_t v = 0;
  __asm__ volatile("movl $1f, %%ss:trap_resume\n movl %%es:(%1), %0\n movl $0, %%ss:trap_resume\n1:"
                   : "+r"(v)
                   : "r"(off)
                   : "memory");
  probe_val = v;
  return trap_count;
}
static int load_es(uint16_t sel) {
  trap_log_clear();
  __asm__ volatile("movl $1f, %%ss:trap_resume\n mov %0, %%es\n movl $0, %%ss:trap_resume\n1:"
                   ::"r"(sel)
                   : "memory");
  return trap_count;
}
static void restore_es(void) { __asm__ volatile("mov %0, %%es" ::"r"((uint16_t)SEL_DATA)); }
/* Loads SS, reads SS:off, restores SS = SEL_DATA. */
static int ss_probe(uint16_t sel, uint32_t off) {
  trap_log_clear();
  __asm__ volatile(
      "movl $1f, %%ss:trap_resume\n"
      "mov %0, %%ss\n"
      "movzbl %%ss:(%1), %%eax\n"
      "movl $0, %%ss:trap_resume\n"
      "1: mov %2, %%ss\n"
      ::"r"(sel), "r"(off), "r"((uint16_t)SEL_DATA)
      : "eax", "memory");
  return trap_count;
}

static void expect_fault(const char* what, int faulted, uint32_t vec, uint32_t err) {
  CHECK_MSG(faulted == 1, "%s: %d trap(s), expected one", what, faulted);
  if (faulted < 1) return;
  CHECK_MSG(trap_log[0].vector == vec && trap_log[0].error == err,
            "%s: vector %u error %#x, expected vector %u error %#x", what, trap_log[0].vector,
            trap_log[0].error, vec, err);
}
#define OK(what, faulted)                                                                       \
  CHECK_MSG((faulted) == 0, "%s: unexpected vector %u error %#x", what, trap_log[0].vector, \
            trap_log[0].error)

ureg user_load_dpl0(ureg);
extern char ul_mov[];
__asm__(".text\n"
        "user_load_dpl0: mov $0x10, %ax\n"
        "ul_mov: mov %ax, %es\n"
        "ul_after: ret\n");
extern char ul_after[];
static void skip2(struct trap_frame* f) { f->rip = (ureg)ul_after; }

/* Far calls from CPL 3: into a conforming DPL-0 code segment (allowed; CPL
 * stays 3, so CS.RPL = 3 — SDM vol. 3 5.8.1.2 "Accessing Conforming Code
 * Segments") and into a non-conforming DPL-0 one (#GP(selector), 5.8.1.1). */
ureg user_lcall_conf(ureg);
ureg user_lcall_dpl0(ureg);
extern char ulc_call[], ulc_after[];
__asm__(".text\n"
        "user_lcall_conf: lcall $0xC0, $conf_target\n" /* SEL(C_CONF) */
        "  ret\n"
        "conf_target: mov %cs, %eax\n"
        "  lret\n"
        "user_lcall_dpl0: \n"
        "ulc_call: lcall $0x08, $conf_target\n"
        "ulc_after: xor %eax, %eax\n"
        "  ret\n");
static void gp_to_ulc_after(struct trap_frame* f) { f->rip = (ureg)ulc_after; }

/* CPL 3 -> CPL 0 through a 32-bit call gate (DPL 3) with one parameter: SDM
 * vol. 3 5.8.5 "Stack Switching" (figure 5-13: the new stack, from TSS.SS0:
 * ESP0, holds the caller's SS, ESP, the copied parameter, CS, EIP), 5.8.6
 * "Returning from a Called Procedure" (RET imm16 releases the parameter on both
 * stacks and switches back). The target reports what it saw. */
volatile uint32_t cg_seen[6];
ureg user_callgate(ureg);
__asm__(".text\n"
        "user_callgate: push %ebx\n"
        "  mov %esp, %ebx\n"
        "  pushl $0x1234\n"
        "  lcall $0xCB, $0\n" /* SEL(G_CALL) | RPL 3; the offset is ignored */
        "  sub %esp, %ebx\n"  /* 0 when RET 4 released the parameter */
        "  mov %ebx, %eax\n"
        "  pop %ebx\n"
        "  ret\n"
        "cg_fault: add $4, %esp\n" /* a runner without call gates: #GP resumes here */
        "  mov $-1, %eax\n"
        "  pop %ebx\n"
        "  ret\n"
        "cg_target: mov %cs, %eax\n"
        "  mov %eax, cg_seen\n"
        "  mov %ss, %eax\n"
        "  mov %eax, cg_seen+4\n"
        "  mov 8(%esp), %eax\n"
        "  mov %eax, cg_seen+8\n"  /* the parameter */
        "  mov 4(%esp), %eax\n"
        "  mov %eax, cg_seen+12\n" /* caller CS */
        "  mov 16(%esp), %eax\n"
        "  mov %eax, cg_seen+16\n" /* caller SS */
        "  mov %esp, cg_seen+20\n"
        "  lret $4\n");
extern char cg_target[], cg_fault[];
static void gp_to_cg_fault(struct trap_frame* f) { f->rip = (ureg)cg_fault; }

void guest_main(void) {
  uint32_t b = (uint32_t)(ureg)buf;
  for (int i = 0; i < 0x2000; i++) buf[i] = (uint8_t)(i ^ (i >> 8));
  gdt_set(D_BYTE, gdt_make(b, 0xFFF, 0x92, 0x4));
  gdt_set(D_GRAN, gdt_make(b, 0x0, 0x92, 0xC));
  gdt_set(D_XDOWN, gdt_make(b - 0x1000, 0xFFF, 0x96, 0x4));
  gdt_set(D_XDOWN16, gdt_make(b - 0x1000, 0xFFF, 0x96, 0x0));
  gdt_set(S_FLAT_LIM, gdt_make(0, 0x7FFFF, 0x92, 0xC));
  gdt_set(S_XDOWN, gdt_make(0, 0xFFFFF, 0x96, 0x4)); /* valid: 0x100000..0xFFFFFFFF */
  gdt_set(D_NP, gdt_make(b, 0xFFF, 0x12, 0x4));
  gdt_set(C_XONLY, gdt_make(0, 0xFFFFF, 0x98, 0xC));
  gdt_set(C_READ, gdt_make(b, 0xFFF, 0x9A, 0x4));
  gdt_set(D_RO, gdt_make(0, 0xFFFFF, 0x90, 0xC));
  gdt_set(C_SMALL, gdt_make(0, 0xFFF, 0x9A, 0x4));
  gdt_set(D_DPL0, gdt_make(0, 0xFFFFF, 0x92, 0xC));
  gdt_set(C_CONF, gdt_make(0, 0xFFFFF, 0x9E, 0xC));
  {
    uint32_t off = (uint32_t)(ureg)cg_target;
    uint64_t g = (off & 0xFFFFu) | ((uint64_t)SEL_CODE32 << 16) | (1ull << 32) /* 1 param */ |
                 (0xCull << 40) /* 32-bit call gate */ | (3ull << 45) | (1ull << 47) |
                 ((uint64_t)(off >> 16) << 48);
    gdt_set(G_CALL, g);
  }

  case_begin("limit_byte");
  OK("load", load_es(SEL(D_BYTE)));
  OK("byte at limit", read_es8(0xFFF));
  CHECK_EQ(probe_val, buf[0xFFF]);
  OK("dword ending at limit", read_es32(0xFFC));
  expect_fault("dword crossing limit", read_es32(0xFFD), 13, 0);
  expect_fault("byte past limit", read_es8(0x1000), 13, 0);
  restore_es();

  case_begin("limit_granular");
  load_es(SEL(D_GRAN)); /* G = 1, limit 0: offsets 0..0xFFF */
  OK("byte at 0xFFF", read_es8(0xFFF));
  expect_fault("byte at 0x1000", read_es8(0x1000), 13, 0);
  restore_es();

  case_begin("expand_down_big");
  load_es(SEL(D_XDOWN)); /* B = 1: offsets 0x1000..0xFFFFFFFF */
  expect_fault("offset = limit", read_es8(0xFFF), 13, 0);
  expect_fault("word straddling limit+1", read_es16(0xFFF), 13, 0);
  OK("offset limit+1", read_es8(0x1000));
  CHECK_EQ(probe_val, buf[0]);
  OK("offset 0x1FFF", read_es8(0x1FFF));
  CHECK_EQ(probe_val, buf[0xFFF]);
  restore_es();

  case_begin("expand_down_small");
  load_es(SEL(D_XDOWN16)); /* B = 0: offsets 0x1000..0xFFFF */
  OK("offset 0xFFFF", read_es8(0xFFFF));
  expect_fault("word at 0xFFFF", read_es16(0xFFFF), 13, 0);
  expect_fault("offset 0x10000", read_es8(0x10000), 13, 0);
  expect_fault("offset 0x800", read_es8(0x800), 13, 0);
  restore_es();

  case_begin("ss_limit");
  OK("SS:0x7FFFFFFF", ss_probe(SEL(S_FLAT_LIM), 0x7FFFFFFF) ? 1 : 0);
  expect_fault("SS:0x80000000", ss_probe(SEL(S_FLAT_LIM), 0x80000000u), 12, 0);

  case_begin("ss_expand_down");
  OK("SS:0x100000", ss_probe(SEL(S_XDOWN), 0x100000));
  expect_fault("SS:0xFFFFF", ss_probe(SEL(S_XDOWN), 0xFFFFF), 12, 0);

  case_begin("null_selector");
  OK("load ES = 0", load_es(0));
  expect_fault("access through NULL ES", read_es8(0), 13, 0);
  restore_es();
  expect_fault("load SS = 0", ss_probe(0, 0), 13, 0);

  case_begin("load_checks");
  expect_fault("not present", load_es(SEL(D_NP)), 11, SEL(D_NP));
  expect_fault("execute-only code", load_es(SEL(C_XONLY)), 13, SEL(C_XONLY));
  OK("readable code", load_es(SEL(C_READ)));
  OK("read through code segment", read_es8(0x10));
  CHECK_EQ(probe_val, buf[0x10]);
  restore_es();
  expect_fault("read-only SS", ss_probe(SEL(D_RO), 0), 13, SEL(D_RO));
  expect_fault("selector past GDT limit", load_es(0x1F8 + 0x200), 13, 0x1F8 + 0x200);

  case_begin("dpl_from_cpl3");
  set_trap_hook(13, skip2);
  trap_log_clear();
  user_call(user_load_dpl0, (ureg)user_stack_top, 0, 0x2);
  set_trap_hook(13, 0);
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 13);
  CHECK_EQ(trap_log[0].error, SEL_DATA);
  CHECK_EQ(trap_log[0].rip, (ureg)ul_mov);

  case_begin("conforming");
  CHECK_EQ(SEL(C_CONF), 0xC0);
  trap_log_clear();
  CHECK_EQ(user_call(user_lcall_conf, (ureg)user_stack_top, 0, 0x2) & 0xFFFF, SEL(C_CONF) | 3);
  CHECK_EQ(trap_count, 0);
  set_trap_hook(13, gp_to_ulc_after);
  trap_log_clear();
  user_call(user_lcall_dpl0, (ureg)user_stack_top, 0, 0x2);
  set_trap_hook(13, 0);
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 13);
  CHECK_EQ(trap_log[0].error, SEL_CODE32);
  CHECK_EQ(trap_log[0].rip, (ureg)ulc_call);

  case_begin("call_gate");
  CHECK_EQ(SEL(G_CALL), 0xC8);
  trap_log_clear();
  set_trap_hook(13, gp_to_cg_fault);
  CHECK_EQ(user_call(user_callgate, (ureg)user_stack_top, 0, 0x2), 0);
  set_trap_hook(13, 0);
  CHECK_MSG(trap_count == 0, "unexpected vector %u error %#x", trap_log[0].vector,
            trap_log[0].error);
  CHECK_EQ(cg_seen[0], SEL_CODE32);          /* CPL 0 code */
  CHECK_EQ(cg_seen[1], SEL_DATA);            /* TSS.SS0 */
  CHECK_EQ(cg_seen[2], 0x1234);              /* parameter copied */
  CHECK_EQ(cg_seen[3], SEL_UCODE32 | 3);     /* caller CS */
  CHECK_EQ(cg_seen[4], SEL_UDATA | 3);       /* caller SS */
  CHECK_EQ(cg_seen[5], (ureg)intr_stack_top - 20); /* TSS.ESP0 minus 5 dwords */

  case_begin("ldt");
  /* SDM vol. 3 3.5.1 "Segment Descriptor Tables" (TI = 1 selects the LDT),
   * vol. 2 "LLDT", "SLDT"; a not-present LDT entry loads with #NP(selector). */
  ldt[1] = gdt_make(b + 0x100, 0xFF, 0x92, 0x4);
  ldt[2] = gdt_make(b, 0xFF, 0x12, 0x4);
  gdt_set(S_LDT, gdt_make((uint32_t)(ureg)ldt, sizeof(ldt) - 1, 0x82, 0x0));
  __asm__ volatile("lldt %w0" ::"r"((uint16_t)SEL(S_LDT)));
  {
    uint16_t cur;
    __asm__ volatile("sldt %w0" : "=r"(cur));
    CHECK_EQ(cur, SEL(S_LDT));
  }
  OK("load ES = LDT entry 1", load_es(1 * 8 | 4));
  OK("read through it", read_es8(0x20));
  CHECK_EQ(probe_val, buf[0x120]);
  restore_es();
  expect_fault("not-present LDT entry", load_es(2 * 8 | 4), 11, 2 * 8 | 4);
  {
    uint32_t lim = 0;
    uint8_t zf;
    __asm__ volatile("lsl %2, %0\n setz %1" : "=r"(lim), "=r"(zf) : "r"((uint32_t)(1 * 8 | 4)));
    CHECK_EQ(zf, 1);
    CHECK_EQ(lim, 0xFF);
  }
  __asm__ volatile("lldt %w0" ::"r"((uint16_t)0)); /* NULL LDT: TI = 1 selectors now #GP */
  expect_fault("LDT selector with a NULL LDTR", load_es(1 * 8 | 4), 13, 1 * 8 | 4);

  case_begin("cs_limit");
  trap_log_clear();
  __asm__ volatile("movl $1f, trap_resume\n ljmp %0, $1f\n1:" ::"i"(SEL(C_SMALL)) : "memory");
  CHECK_EQ(trap_count, 1);
  CHECK_EQ(trap_log[0].vector, 13);
  CHECK_EQ(trap_log[0].error, 0);
  CHECK_EQ(trap_log[0].cs, SEL_CODE32); /* CS not loaded */

  case_begin("lsl_lar_verr");
  {
    uint32_t lim = 0, ar = 0;
    uint8_t zf;
    __asm__ volatile("lsl %2, %0\n setz %1" : "=r"(lim), "=r"(zf) : "r"((uint32_t)SEL(D_GRAN)));
    CHECK_EQ(zf, 1);
    CHECK_EQ(lim, 0xFFF);
    __asm__ volatile("lsl %2, %0\n setz %1" : "+r"(lim), "=r"(zf) : "r"((uint32_t)SEL(D_XDOWN)));
    CHECK_EQ(lim, 0xFFF);
    __asm__ volatile("lar %2, %0\n setz %1" : "=r"(ar), "=r"(zf) : "r"((uint32_t)SEL(D_RO)));
    CHECK_EQ(zf, 1);
    /* LAR masks the second descriptor dword with 00FxFF00H (bits 19:16 undefined). */
    CHECK_EQ(ar & 0x00F0FF00, 0x00C09000);
    __asm__ volatile("lar %2, %0\n setz %1" : "+r"(ar), "=r"(zf) : "r"(0u));
    CHECK_EQ(zf, 0); /* NULL selector */
    __asm__ volatile("verr %1\n setz %0" : "=r"(zf) : "r"((uint16_t)SEL(C_XONLY)));
    CHECK_EQ(zf, 0);
    __asm__ volatile("verr %1\n setz %0" : "=r"(zf) : "r"((uint16_t)SEL(C_READ)));
    CHECK_EQ(zf, 1);
    __asm__ volatile("verw %1\n setz %0" : "=r"(zf) : "r"((uint16_t)SEL(D_RO)));
    CHECK_EQ(zf, 0);
    __asm__ volatile("verw %1\n setz %0" : "=r"(zf) : "r"((uint16_t)SEL(D_BYTE)));
    CHECK_EQ(zf, 1);
  }
}
