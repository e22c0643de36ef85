/* I/O APIC routing (0xFEC00000) to the local APIC, with the 8259s masked:
 * pc-testdev's IRQ-line ports (0x2000 + ISA IRQ) raise and lower ISA IRQ 14
 * on pin 14 (edge, then level with remote IRR and the APIC's TMR), a masked
 * pin, COM1's IRQ 4 on pin 4, and the PIT, whose ISA IRQ 0 arrives on pin 2
 * (the override that ACPI's MADT describes). */
#include "dev.h"

GUEST_NAME("ioapic");

#define TEST_IRQ 14
#define EDGE_VECTOR 0x50
#define LEVEL_VECTOR 0x51
#define PIT_VECTOR 0x52

static volatile int edge_count, level_count, pit_count;
static volatile uint32_t rte_in_handler;
static volatile int tmr_in_handler;

static void set_line(int level) {
  outb(0x2000 + TEST_IRQ, (uint8_t)level);
}

static void edge_irq(struct trap_frame* f) {
  (void)f;
  edge_count++;
  lapic_eoi();
}
static void level_irq(struct trap_frame* f) {
  (void)f;
  if (level_count == 0) {
    rte_in_handler = ioapic_read(IOAPIC_RTE_LO(TEST_IRQ));
    tmr_in_handler = lapic_vector_bit(LAPIC_TMR, LEVEL_VECTOR);
  }
  level_count++;
  set_line(0); /* the "device" is serviced: it drops its request */
  lapic_eoi(); /* broadcast EOI clears remote IRR */
}
#define UART_VECTOR 0x53
static volatile int uart_count;
static volatile uint8_t uart_iir;
static void uart_irq(struct trap_frame* f) {
  (void)f;
  uint8_t iir = inb(0x3F8 + 2); /* clears the THRE source */
  if (uart_count == 0) uart_iir = iir;
  uart_count++;
  lapic_eoi();
}
static void pit_irq(struct trap_frame* f) {
  (void)f;
  pit_count++;
  lapic_eoi();
}

void guest_main(void) {
  cli();
  pic_init(); /* all 8259 lines masked */
  lapic_enable();
  uint8_t apic_id = (uint8_t)(lapic_read(LAPIC_ID) >> 24);
  set_trap_hook(EDGE_VECTOR, edge_irq);
  set_trap_hook(LEVEL_VECTOR, level_irq);
  set_trap_hook(PIT_VECTOR, pit_irq);
  set_trap_hook(UART_VECTOR, uart_irq);

  case_begin("registers");
  uint32_t id = ioapic_read(0x00);
  uint32_t ver = ioapic_read(0x01);
  uint32_t max_entry = (ver >> 16) & 0xFF;
  printf("IOAPIC id %u, version %#x, %u pins\n", id >> 24, ver & 0xFF, max_entry + 1);
  CHECK_MSG((ver & 0xFF) == 0x11 || (ver & 0xFF) == 0x20, "IOAPIC version %#x", ver & 0xFF);
  CHECK_MSG(max_entry >= 23, "%u redirection entries, expected 24", max_entry + 1);
  ioapic_write(IOAPIC_RTE_LO(5), RTE_MASKED | 0x77);
  CHECK_EQ(ioapic_read(IOAPIC_RTE_LO(5)) & 0x1FFFF, RTE_MASKED | 0x77);
  for (uint32_t pin = 0; pin <= max_entry && pin < 24; pin++)
    ioapic_write(IOAPIC_RTE_LO(pin), RTE_MASKED);

  case_begin("edge");
  set_line(0);
  ioapic_route(TEST_IRQ, EDGE_VECTOR, 0, apic_id);
  set_line(1);
  int n = wait_count(&edge_count, 1, WAIT_LIMIT);
  set_line(0);
  CHECK_MSG(n == 1, "%d interrupts for one rising edge on pin %d", n, TEST_IRQ);
  spin_sti(100000);
  set_line(1);
  n = wait_count(&edge_count, 2, WAIT_LIMIT);
  set_line(0);
  CHECK_MSG(n == 2, "%d interrupts after a second edge, expected 2", n);

  case_begin("masked_pin");
  ioapic_route(TEST_IRQ, EDGE_VECTOR, RTE_MASKED, apic_id);
  set_line(1);
  spin_sti(500000);
  set_line(0);
  CHECK_MSG(edge_count == 2, "masked pin delivered (%d interrupts)", edge_count);

  case_begin("level");
  ioapic_route(TEST_IRQ, LEVEL_VECTOR, RTE_LEVEL, apic_id);
  set_line(1);
  n = wait_count(&level_count, 1, WAIT_LIMIT);
  CHECK_MSG(n == 1, "%d level interrupts, expected 1", n);
  CHECK_MSG(rte_in_handler & RTE_REMOTE_IRR, "remote IRR clear in the handler (RTE %#x)",
            rte_in_handler);
  CHECK_MSG(tmr_in_handler, "APIC TMR bit of vector %#x clear for a level interrupt", LEVEL_VECTOR);
  uint32_t rte = ioapic_read(IOAPIC_RTE_LO(TEST_IRQ));
  CHECK_MSG(!(rte & RTE_REMOTE_IRR), "remote IRR still set after EOI (RTE %#x)", rte);

  case_begin("level_unmask_pending");
  /* A level line asserted while masked is delivered when unmasked. */
  level_count = 0;
  ioapic_route(TEST_IRQ, LEVEL_VECTOR, RTE_LEVEL | RTE_MASKED, apic_id);
  set_line(1);
  spin_sti(200000);
  CHECK_MSG(level_count == 0, "masked level pin delivered");
  ioapic_route(TEST_IRQ, LEVEL_VECTOR, RTE_LEVEL, apic_id);
  n = wait_count(&level_count, 1, WAIT_LIMIT);
  CHECK_MSG(n == 1, "%d interrupts after unmasking an asserted level pin, expected 1", n);
  ioapic_write(IOAPIC_RTE_LO(TEST_IRQ), RTE_MASKED);
  set_line(0);

  case_begin("uart_pin4");
  /* COM1's ISA IRQ 4 on pin 4, as an OS with the IOAPIC drives its serial
   * port: the THRE interrupt (IER bit 1) arrives on the routed vector. */
  ioapic_route(4, UART_VECTOR, 0, apic_id);
  outb(0x3F8 + 4, 0x0B);
  outb(0x3F8 + 1, 0x02);
  n = wait_count(&uart_count, 1, WAIT_LIMIT);
  outb(0x3F8 + 1, 0x00);
  ioapic_write(IOAPIC_RTE_LO(4), RTE_MASKED);
  CHECK_MSG(n >= 1, "no COM1 THRE interrupt through IOAPIC pin 4");
  CHECK_MSG((uart_iir & 0x0F) == 0x02, "IIR %#x in the handler, expected 0x2", uart_iir);

  case_begin("pit_pin2");
  ioapic_route(2, PIT_VECTOR, 0, apic_id);
  pit_program(0, 2, 1193); /* 1 kHz */
  n = wait_count(&pit_count, 10, WAIT_LIMIT);
  CHECK_MSG(n >= 10, "%d PIT interrupts through IOAPIC pin 2, expected 10", n);
  ioapic_write(IOAPIC_RTE_LO(2), RTE_MASKED);
  pit_program(0, 0, 0xFFFF);
}
