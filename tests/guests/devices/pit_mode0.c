/* PIT channel 2 in mode 0 (interrupt on terminal count), observed as a
 * driver calibrating a delay does: through port 0x61 (bit 0 gates channel 2,
 * bit 1 enables the speaker, bit 5 reads OUT2, bit 4 toggles with DRAM
 * refresh). OUT2 goes low when the count is written and high at terminal
 * count, and mode 0 does not reload. */
#include "dev.h"

GUEST_NAME("pit_mode0");

void guest_main(void) {
  cli();

  case_begin("port61_gate");
  uint8_t p61 = inb(0x61);
  outb(0x61, (uint8_t)((p61 & ~0x02) | 0x01)); /* gate 2 on, speaker off */
  CHECK_MSG((inb(0x61) & 0x03) == 0x01, "port 0x61 reads %#x, expected bits 1:0 = 01", inb(0x61));

  case_begin("mode0_out2");
  pit_program(2, 0, 2000); /* ~1.7 ms */
  uint8_t low = inb(0x61) & 0x20;
  uint16_t c1 = pit_read_count(2);
  uint64_t spins = 0;
  while (!(inb(0x61) & 0x20) && spins < WAIT_LIMIT) spins++;
  uint8_t high = inb(0x61) & 0x20;
  CHECK_MSG(low == 0, "OUT2 high right after writing the mode-0 count");
  CHECK_MSG(c1 <= 2000, "count %u read after loading 2000", c1);
  CHECK_MSG(high, "OUT2 never went high (terminal count not reached in %lu reads)",
            (unsigned long)spins);
  CHECK_MSG(spins > 0, "OUT2 was already high on the first poll");

  case_begin("mode0_no_reload");
  for (volatile int i = 0; i < 200000; i++) {
  }
  CHECK_MSG(inb(0x61) & 0x20, "OUT2 dropped again after terminal count (mode 0 must not reload)");
  /* The counter keeps decrementing (wrapping) after terminal count. */
  uint16_t a1 = pit_read_count(2);
  for (volatile int i = 0; i < 20000; i++) {
  }
  uint16_t a2 = pit_read_count(2);
  CHECK_MSG(a1 != a2, "counter stopped after terminal count (%u, %u)", a1, a2);

  case_begin("reload_restarts");
  pit_program(2, 0, 0xFFFF);
  CHECK_MSG(!(inb(0x61) & 0x20), "OUT2 still high after writing a new count");

  case_begin("refresh_toggle");
  uint8_t first = inb(0x61) & 0x10;
  int toggled = 0;
  for (int i = 0; i < 1000000 && !toggled; i++) toggled = (inb(0x61) & 0x10) != first;
  CHECK_MSG(toggled, "port 0x61 bit 4 (refresh) never toggled");

  outb(0x61, p61 & ~0x03);
}
