/* The PIIX reset control register at port 0xCF9: bit 1 selects a hard
 * reset, and setting bit 2 performs it, which ends the run as a reboot. */
#include "dev.h"

GUEST_NAME("cf9_reset");

void guest_main(void) {
  case_begin("reset");
  printf("RESET-NEXT\n");
  outb(0xCF9, 0x02);
  outb(0xCF9, 0x06);
  for (volatile int i = 0; i < 1000000; i++) {
  }
  printf("FAIL: reset: the run continued after writing 0x06 to port 0xCF9\n");
  guest_exit(1);
}
