/* PIT channel 0 as the system timer: periodic IRQ 0 through the master 8259
 * (vector 0x20), mode 2 (rate generator) and mode 3 (square wave), EOI in the
 * handler, the PIC's ISR during the handler, masking through the IMR, and the
 * counter-latch command. */
#include "dev.h"

GUEST_NAME("pit_irq0");

#define IRQ0_VECTOR PIC_MASTER_BASE
#define COUNT_4KHZ 298 /* 1193182 Hz / 298 = 4004 Hz */

static volatile int ticks;
static volatile uint8_t isr_in_handler;
static volatile uint8_t irr_in_handler;

static void timer_irq(struct trap_frame* f) {
  (void)f;
  if (ticks == 0) {
    isr_in_handler = pic_read_isr(0x20);
    irr_in_handler = pic_read_irr(0x20);
  }
  ticks++;
  pic_eoi(0);
}

void guest_main(void) {
  cli();
  pic_init();
  set_trap_hook(IRQ0_VECTOR, timer_irq);

  case_begin("latch");
  pit_program(0, 2, 0xFFFF);
  uint16_t c1 = pit_read_count(0);
  for (volatile int i = 0; i < 20000; i++) {
  }
  uint16_t c2 = pit_read_count(0);
  CHECK_MSG(c1 != c2, "counter did not move: %#x then %#x", c1, c2);
  CHECK_MSG(c1 > 0 && c2 > 0, "mode 2 counter read 0 (%#x, %#x): it counts N..1", c1, c2);

  case_begin("mode2_periodic");
  pit_program(0, 2, COUNT_4KHZ);
  pic_unmask(0);
  int n = wait_count(&ticks, 20, WAIT_LIMIT);
  CHECK_MSG(n >= 20, "%d IRQ 0 interrupts, expected 20", n);
  CHECK_MSG(isr_in_handler & 0x01, "PIC ISR %#x in the handler lacks IRQ 0", isr_in_handler);
  CHECK_MSG(pic_read_isr(0x20) == 0, "PIC ISR %#x after EOI, expected 0", pic_read_isr(0x20));

  case_begin("masked");
  pic_mask(0);
  int before = ticks;
  /* Wait (interrupts on) until the next timer edge is latched in IRR. */
  uint8_t irr = 0;
  sti();
  for (uint64_t i = 0; i < WAIT_LIMIT && !(irr & 0x01); i++) irr = pic_read_irr(0x20);
  cli();
  int during = ticks;
  CHECK_MSG(during == before, "%d interrupts while IRQ 0 was masked", during - before);
  CHECK_MSG(irr & 0x01, "PIC IRR %#x: the masked timer edge is not pending", irr);
  pic_unmask(0);
  int unmasked = wait_count(&ticks, during + 1, WAIT_LIMIT);
  CHECK_MSG(unmasked > during, "no interrupt after unmasking IRQ 0");

  case_begin("mode3_square");
  pit_program(0, 3, COUNT_4KHZ);
  int start = ticks;
  n = wait_count(&ticks, start + 20, WAIT_LIMIT);
  CHECK_MSG(n - start >= 20, "%d mode-3 interrupts, expected 20", n - start);

  case_begin("stop");
  pic_mask(0);
  pit_program(0, 0, 0xFFFF); /* one-shot, far away */
  pic_init();
  (void)irr_in_handler;
}
