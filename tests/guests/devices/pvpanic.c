/* pvpanic (ISA port 0x505): a read gives the supported events (bit 0 =
 * "guest panicked"); writing 1 reports a panic, which ends the run as a
 * crash. The run must not continue past the write. */
#include "dev.h"

GUEST_NAME("pvpanic");

void guest_main(void) {
  case_begin("features");
  uint8_t events = inb(0x505);
  CHECK_MSG(events & 1, "port 0x505 reads %#x: PANICKED event not supported", events);
  if (fail_count) guest_finish();
  printf("PANIC-NEXT\n");
  outb(0x505, 1);
  for (volatile int i = 0; i < 1000000; i++) {
  }
  printf("FAIL: features: the run continued after a pvpanic report\n");
  guest_exit(1);
}
