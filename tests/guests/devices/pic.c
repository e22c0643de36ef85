/* The 8259A pair as a driver programs it, with pc-testdev's IRQ-line ports
 * (0x2000 + IRQ) as the interrupt source: edge triggering (one interrupt per
 * rising edge), level triggering selected in the ELCR (0x4D0/0x4D1: the
 * request repeats after EOI while the line stays high), fixed priority
 * between two pending lines, a slave line through the cascade, IRR/ISR reads
 * (OCW3) and specific EOI. */
#include "dev.h"

GUEST_NAME("pic");

static volatile int count3, count5, count14;
static volatile int order[8];
static volatile int taken;
static volatile int level_limit;
static volatile uint8_t slave_isr_seen, master_isr_seen;

static void line(int irq, int level) {
  outb((uint16_t)(0x2000 + irq), (uint8_t)level);
}

static void note(int irq) {
  if (taken < 8) order[taken] = irq;
  taken++;
}
static void irq3(struct trap_frame* f) {
  (void)f;
  note(3);
  count3++;
  line(3, 0);
  outb(0x20, 0x60 | 3); /* specific EOI */
}
static void irq5(struct trap_frame* f) {
  (void)f;
  note(5);
  count5++;
  line(5, 0);
  pic_eoi(5);
}
static void irq14(struct trap_frame* f) {
  (void)f;
  if (count14 == 0) {
    slave_isr_seen = pic_read_isr(0xA0);
    master_isr_seen = pic_read_isr(0x20);
  }
  count14++;
  if (count14 >= level_limit) line(14, 0); /* the device is finally serviced */
  pic_eoi(14);
}

void guest_main(void) {
  cli();
  pic_init();
  line(3, 0);
  line(5, 0);
  line(14, 0);
  set_trap_hook(PIC_MASTER_BASE + 3, irq3);
  set_trap_hook(PIC_MASTER_BASE + 5, irq5);
  set_trap_hook(PIC_SLAVE_BASE + 6, irq14);

  case_begin("edge");
  outb(0x4D0, 0x00);
  outb(0x4D1, 0x00);
  pic_unmask(3);
  line(3, 1);
  uint8_t irr = pic_read_irr(0x20);
  CHECK_MSG(irr & 0x08, "IRR %#x after raising IRQ 3 with IF=0", irr);
  int n = wait_count(&count3, 1, WAIT_LIMIT);
  CHECK_MSG(n == 1, "%d interrupts for one edge on IRQ 3", n);
  CHECK_MSG(pic_read_isr(0x20) == 0, "ISR %#x after a specific EOI", pic_read_isr(0x20));
  line(3, 1); /* handler lowered it: a new edge */
  n = wait_count(&count3, 2, WAIT_LIMIT);
  CHECK_MSG(n == 2, "%d interrupts after a second edge", n);

  case_begin("priority");
  taken = 0;
  pic_unmask(5);
  line(5, 1);
  line(3, 1);
  n = wait_count(&taken, 2, WAIT_LIMIT);
  CHECK_MSG(n == 2, "%d interrupts for IRQ 3 and 5, expected 2", n);
  CHECK_MSG(order[0] == 3 && order[1] == 5, "order IRQ %d, %d; expected 3 then 5", order[0],
            order[1]);

  case_begin("mask");
  pic_mask(3);
  int before = count3;
  line(3, 1);
  spin_sti(200000);
  CHECK_MSG(count3 == before, "masked IRQ 3 delivered");
  pic_unmask(3);
  n = wait_count(&count3, before + 1, WAIT_LIMIT);
  CHECK_MSG(n == before + 1, "the edge latched while masked was not delivered on unmask");
  pic_mask(3);
  pic_mask(5);

  case_begin("slave_edge");
  level_limit = 1;
  pic_unmask(14);
  line(14, 1);
  n = wait_count(&count14, 1, WAIT_LIMIT);
  CHECK_MSG(n == 1, "%d interrupts on IRQ 14 (slave line 6)", n);
  CHECK_MSG(slave_isr_seen & 0x40, "slave ISR %#x in the handler lacks line 6", slave_isr_seen);
  CHECK_MSG(master_isr_seen & 0x04, "master ISR %#x in the handler lacks the cascade (IRQ 2)",
            master_isr_seen);

  case_begin("level_elcr");
  outb(0x4D1, 0x40); /* IRQ 14 level triggered */
  CHECK_EQ(inb(0x4D1) & 0x40, 0x40);
  count14 = 0;
  level_limit = 3;
  line(14, 1);
  n = wait_count(&count14, 3, WAIT_LIMIT);
  spin_sti(200000);
  CHECK_MSG(count14 == 3,
            "%d interrupts from a level line held high for 3 EOIs, expected exactly 3", count14);
  pic_mask(14);
  outb(0x4D1, 0x00);
  (void)n;
}
