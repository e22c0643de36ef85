/* Checks the results of mode_switch_asm.asm (see there for the SDM sections). */
#include "guest.h"

GUEST_NAME("mode_switch");

extern volatile uint32_t ms_result[16];
void mode_switch_run(void);
#define SCRATCH ((volatile uint8_t*)0x6000)

static void check_round(int round) {
  printf("round %d\n", round);
  case_begin(round ? "long_mode_again" : "long_mode");
  CHECK_EQ(ms_result[0] & 0x500, 0x500); /* EFER.LME | LMA */
  CHECK_EQ(ms_result[1], SEL_CODE64);
  CHECK_EQ(((uint64_t)ms_result[3] << 32) | ms_result[2], 0x100000001ull);
  CHECK_EQ(ms_result[4], 8); /* PUSH imm in 64-bit mode is 8 bytes */

  case_begin(round ? "compat_mode_again" : "compat_mode");
  CHECK_EQ(ms_result[5], SEL_CODE32);
  CHECK_EQ(ms_result[6] & 0x500, 0x500); /* still IA-32e */

  case_begin(round ? "leave_long_mode_again" : "leave_long_mode");
  CHECK_EQ(ms_result[7] & 0x500, 0);
  CHECK_EQ(ms_result[8] & 0x80000001u, 1);

  case_begin(round ? "real_mode_again" : "real_mode");
  CHECK_EQ(*(volatile uint16_t*)(SCRATCH + 0), 0);     /* CS */
  CHECK_EQ(*(volatile uint32_t*)(SCRATCH + 4) & 1, 0); /* CR0.PE */
  CHECK_EQ(*(volatile uint16_t*)(SCRATCH + 8), 0xBEEF);
  CHECK_EQ(SCRATCH[0x21], 0x5A);

  case_begin(round ? "real_mode_int_again" : "real_mode_int");
  CHECK_EQ(*(volatile uint16_t*)(SCRATCH + 12), 0x4040);
  CHECK_EQ(*(volatile uint16_t*)(SCRATCH + 16), *(volatile uint16_t*)(SCRATCH + 20)); /* IP */
  CHECK_EQ(*(volatile uint16_t*)(SCRATCH + 18), 0);                                  /* CS */
  CHECK_EQ(*(volatile uint16_t*)(SCRATCH + 14), 0x6F00); /* IRET popped all three */

  case_begin(round ? "back_to_protected_again" : "back_to_protected");
  CHECK_EQ(ms_result[9], 1);
  CHECK_EQ(read_cr0() & 0x80000001u, 1);
  trap_log_clear();
  __asm__ volatile("movl $1f, trap_resume\n ud2\n1:" ::: "memory"); /* IDT works again */
  CHECK_EQ(trap_count, 1);
}

/* Two rounds: the second starts from the protected mode that the first
 * entered from real mode, so real -> protected -> long is covered too. */
void guest_main(void) {
  for (int round = 0; round < 2; round++) {
    memset((void*)SCRATCH, 0, 64);
    for (int i = 0; i < 16; i++) ms_result[i] = 0;
    mode_switch_run();
    check_round(round);
  }
}
