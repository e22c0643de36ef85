/* Self-modifying and freshly written code. SDM vol. 3, 8.1.3 "Handling Self-
 * and Cross-Modifying Code": on P6 and later processors a write to a code
 * address is detected even for instructions already fetched/decoded, so the
 * modified instruction executes in its new form — including the instruction
 * that immediately follows the store. A decode cache keyed by physical
 * address must be invalidated by every write to a page it decoded from. */
#include "guest.h"

GUEST_NAME("smc");

/* ret_imm: mov $imm32, %eax; ret — the immediate sits at ret_imm + 1. */
__asm__(".text\n"
        "ret_imm: mov $0x11111111, %eax\n"
        "  ret\n"
        /* patch_next: the store rewrites the immediate of the very next instruction */
        "patch_next: movl %edi, 1f+1(%rip)\n"
        "1: mov $0x22222222, %eax\n"
        "  ret\n"
        /* patch_opcode: turn the next instruction from INC into DEC */
        "patch_opcode: xor %eax, %eax\n"
        "  movb $0xC8, 2f+1(%rip)\n" /* ff c0 (inc eax) -> ff c8 (dec eax) */
        "2: inc %eax\n"
        "  ret\n"
        "ret_imm_end:\n");
extern uint8_t ret_imm[], ret_imm_end[];
uint32_t patch_next(uint32_t v);
uint32_t patch_opcode(void);

static uint8_t fresh[2][4096] __attribute__((aligned(4096)));

typedef uint32_t (*fn0)(void);

void guest_main(void) {
  case_begin("patch_ahead");
  CHECK_EQ(((fn0)ret_imm)(), 0x11111111);
  *(volatile uint32_t*)(ret_imm + 1) = 0x33333333;
  CHECK_EQ(((fn0)ret_imm)(), 0x33333333);

  case_begin("patch_loop");
  /* The same instruction, executed and rewritten 200 times. */
  for (uint32_t i = 0; i < 200; i++) {
    *(volatile uint32_t*)(ret_imm + 1) = i * 7919u;
    uint32_t got = ((fn0)ret_imm)();
    if (got != i * 7919u) {
      CHECK_EQ(got, i * 7919u);
      break;
    }
  }

  case_begin("patch_next_insn");
  CHECK_EQ(patch_next(0x44444444), 0x44444444);
  CHECK_EQ(patch_next(0x55555555), 0x55555555);

  case_begin("patch_opcode");
  CHECK_EQ(patch_opcode(), 0xFFFFFFFFu); /* DEC of 0 */

  case_begin("fresh_page");
  /* Copy code to a page never executed before, run it, overwrite, run again. */
  uint8_t* p = fresh[0];
  static const uint8_t code1[] = {0xB8, 0x78, 0x56, 0x34, 0x12, 0xC3}; /* mov $0x12345678,%eax; ret */
  static const uint8_t code2[] = {0x31, 0xC0, 0xFF, 0xC8, 0xC3};       /* xor; dec; ret */
  memcpy(p, code1, sizeof(code1));
  CHECK_EQ(((fn0)p)(), 0x12345678);
  memcpy(p, code2, sizeof(code2));
  CHECK_EQ(((fn0)p)(), 0xFFFFFFFFu);
  /* A copy of a compiled function with its relocations intact is callable anywhere
   * it is position independent: ret_imm is. */
  memcpy(fresh[1] + 100, ret_imm, 6);
  CHECK_EQ(((fn0)(fresh[1] + 100))(), *(uint32_t*)(ret_imm + 1));

  case_begin("page_straddle");
  /* mov $imm32, %eax; ret with the immediate split over two pages: patch the
   * bytes that lie in the second page only. */
  uint8_t* s = fresh[0] + 4096 - 3; /* B8 xx xx | xx xx C3 */
  uint8_t* q = s;
  q[0] = 0xB8;
  q[1] = 0x01;
  q[2] = 0x02;
  q[3] = 0x03;
  q[4] = 0x04;
  q[5] = 0xC3;
  CHECK_EQ(((fn0)s)(), 0x04030201);
  *(volatile uint8_t*)(q + 4) = 0x99; /* second page only */
  CHECK_EQ(((fn0)s)(), 0x99030201);
  *(volatile uint8_t*)(q + 1) = 0x77; /* first page only */
  CHECK_EQ(((fn0)s)(), 0x99030277);
}
