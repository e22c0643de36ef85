/* The keyboard controller's pulse-reset command (0xFE to port 0x64), how PC
 * kernels reboot: after waiting for the input buffer to drain (status bit 1),
 * the machine resets, which ends the run as a reboot. */
#include "dev.h"

GUEST_NAME("kbd_reset");

void guest_main(void) {
  case_begin("status");
  int waited = 0;
  while ((inb(0x64) & 0x02) && waited < 1000000) waited++;
  CHECK_MSG(!(inb(0x64) & 0x02), "controller input buffer never empties (status %#x)", inb(0x64));
  CHECK_MSG(inb(0x64) != 0xFF, "no keyboard controller at 0x64 (reads 0xFF)");
  if (fail_count) guest_finish();
  printf("RESET-NEXT\n");
  outb(0x64, 0xFE);
  for (volatile int i = 0; i < 1000000; i++) {
  }
  printf("FAIL: status: the run continued after the reset command\n");
  guest_exit(1);
}
