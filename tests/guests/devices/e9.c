/* Port 0xE9, the Bochs/QEMU debug console: a read returns 0xE9 (how guests
 * detect it), and bytes written to it are output. */
#include "dev.h"

GUEST_NAME("e9");

void guest_main(void) {
  case_begin("readback");
  uint8_t v = inb(0xE9);
  CHECK_MSG(v == 0xE9, "port 0xE9 reads %#x, expected 0xE9 (debug console present)", v);

  case_begin("write");
  const char* s = "e9: debug console output\n";
  for (const char* p = s; *p; p++) outb(0xE9, (uint8_t)*p);
  __asm__ volatile("mov $0xE9, %%dx; mov $0x3f3f, %%ax; outw %%ax, %%dx" ::: "ax", "dx");
  outb(0xE9, '\n');
}
