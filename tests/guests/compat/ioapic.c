/* The I/O APIC as the unit-test kernels' I/O APIC test drives it on one CPU,
 * with pc-testdev's IRQ-line ports (0x2000 + line) as the interrupt source:
 * the read-only version and arbitration registers, the 4-bit ID, edge and
 * level delivery taken at the instruction after the line changes, two edges
 * pending at once delivered back to back at the same instruction, level
 * interrupts coalesced while Remote IRR is set, sequential, and raised again
 * after an EOI while the line stays high (with and without masking), masked
 * edges lost and masked levels delivered once unmasked, and the local APIC's
 * TMR after edge and level vectors. */
#include "kut.h"

#define LINE 0x0E

static void toggle(unsigned line) {
  set_irq_line(line, 1);
  set_irq_line(line, 0);
}

static void test_registers(void) {
  report_prefix_push("registers");
  uint32_t v = ioapic_read_reg(1);
  ioapic_write_reg(1, v ^ 0xFFFFFFFF);
  report(ioapic_read_reg(1) == v, "version register read-only (%#x)", v);
  uint32_t id = ioapic_read_reg(0);
  ioapic_write_reg(0, id ^ 0xFFFFFFFF);
  report((id ^ ioapic_read_reg(0)) == 0x0F000000, "ID: only bits 27:24 writable");
  ioapic_write_reg(0, 0x0F000000);
  report(ioapic_read_reg(2) == 0x0F000000, "arbitration ID follows the ID");
  ioapic_write_reg(2, 0);
  report(ioapic_read_reg(2) == 0x0F000000, "arbitration register read-only");
  ioapic_write_reg(0, id);
  report_prefix_pop();
}

static volatile int count;
static volatile ulong_t rip_a, rip_b;
static volatile int b_after_a, tmr_seen = -1;

static void isr_count(struct ex_regs* r) {
  (void)r;
  count++;
  eoi();
}
static void isr_count_lower(struct ex_regs* r) {
  (void)r;
  count++;
  set_irq_line(LINE, 0);
  eoi();
}

static void test_edge_level(void) {
  report_prefix_push("delivery");
  handle_irq(0x76, isr_count);
  ioapic_set_redir(LINE, 0x76, TRIGGER_EDGE);
  count = 0;
  toggle(LINE);
  __asm__ volatile("nop");
  report(count == 1, "edge-triggered interrupt (%d)", count);

  handle_irq(0x77, isr_count_lower);
  ioapic_set_redir(LINE, 0x77, TRIGGER_LEVEL);
  count = 0;
  set_irq_line(LINE, 1);
  __asm__ volatile("nop");
  report(count == 1, "level-triggered interrupt (%d)", count);
  report_prefix_pop();
}

static void isr_a(struct ex_regs* r) {
  rip_a = r->rip;
  eoi();
}
static void isr_b(struct ex_regs* r) {
  if (rip_a) b_after_a = 1;
  rip_b = r->rip;
  eoi();
}

static void test_simultaneous(void) {
  handle_irq(0x78, isr_a);
  handle_irq(0x66, isr_b);
  ioapic_set_redir(LINE, 0x78, TRIGGER_EDGE);
  ioapic_set_redir(0x0F, 0x66, TRIGGER_EDGE);
  rip_a = rip_b = 0;
  irq_disable();
  toggle(0x0F);
  toggle(LINE);
  irq_enable();
  __asm__ volatile("nop");
  report(rip_a && rip_b && b_after_a && rip_a == rip_b,
         "simultaneous: higher vector first, both at the same instruction (%#lx, %#lx)",
         (unsigned long)rip_a, (unsigned long)rip_b);
}

static void isr_coalesce(struct ex_regs* r) {
  (void)r;
  if (++count == 1) {
    set_irq_line(LINE, 0);
    set_irq_line(LINE, 1);
  }
  set_irq_line(LINE, 0);
  eoi();
}
static void isr_retrigger(struct ex_regs* r) {
  (void)r;
  if (++count == 2) set_irq_line(LINE, 0);
  eoi();
}
static void isr_mask_self(struct ex_regs* r) {
  (void)r;
  count++;
  ioapic_set_mask(LINE, 1);
  eoi();
}

static void test_level(void) {
  report_prefix_push("level");
  handle_irq(0x98, isr_coalesce);
  ioapic_set_redir(LINE, 0x98, TRIGGER_LEVEL);
  count = 0;
  set_irq_line(LINE, 1);
  __asm__ volatile("nop");
  report(count == 1, "re-asserted while Remote IRR is set: coalesced (%d)", count);

  handle_irq(0x99, isr_count_lower);
  ioapic_set_redir(LINE, 0x99, TRIGGER_LEVEL);
  count = 0;
  set_irq_line(LINE, 1);
  set_irq_line(LINE, 1);
  __asm__ volatile("nop");
  report(count == 2, "sequential level interrupts (%d)", count);

  handle_irq(0x9A, isr_retrigger);
  ioapic_set_redir(LINE, 0x9A, TRIGGER_LEVEL);
  count = 0;
  irq_disable();
  set_irq_line(LINE, 1);
  for (int i = 0; i < 10 && count < 2; i++) __asm__ volatile("sti; hlt; cli");
  irq_enable();
  report(count == 2, "line still high after EOI: delivered again (%d)", count);

  handle_irq(0x83, isr_mask_self);
  ioapic_set_redir(LINE, 0x83, TRIGGER_LEVEL);
  count = 0;
  set_irq_line(LINE, 1);
  __asm__ volatile("nop");
  ioapic_set_mask(LINE, 0);
  __asm__ volatile("nop");
  report(count == 2, "masked in the handler, unmasked while high: delivered again (%d)", count);
  set_irq_line(LINE, 0);
  ioapic_set_mask(LINE, 0);
  report_prefix_pop();
}

static void test_mask(void) {
  report_prefix_push("mask");
  handle_irq(0x81, isr_count_lower);
  ioapic_set_redir(LINE, 0x81, TRIGGER_EDGE);
  ioapic_set_mask(LINE, 1);
  count = 0;
  set_irq_line(LINE, 1);
  set_irq_line(LINE, 0);
  __asm__ volatile("nop");
  report(count == 0, "masked edge not delivered");
  ioapic_set_mask(LINE, 0);
  set_irq_line(LINE, 1);
  __asm__ volatile("nop");
  report(count == 1, "unmasked edge delivered");

  handle_irq(0x82, isr_count_lower);
  ioapic_set_redir(LINE, 0x82, TRIGGER_LEVEL);
  ioapic_set_mask(LINE, 1);
  count = 0;
  set_irq_line(LINE, 1);
  __asm__ volatile("nop");
  report(count == 0, "masked level not delivered");
  ioapic_set_mask(LINE, 0);
  __asm__ volatile("nop");
  report(count == 1, "level delivered once unmasked");
  report_prefix_pop();
}

static void isr_tmr(struct ex_regs* r) {
  (void)r;
  tmr_seen = apic_read_bit(APIC_TMR, 0x79);
  set_irq_line(LINE, 0);
  eoi();
}

static void tmr_case(int level, int expected_before) {
  handle_irq(0x79, isr_tmr);
  ioapic_set_redir(LINE, 0x79, level ? TRIGGER_LEVEL : TRIGGER_EDGE);
  int before = apic_read_bit(APIC_TMR, 0x79);
  tmr_seen = -1;
  if (level)
    set_irq_line(LINE, 1);
  else
    toggle(LINE);
  __asm__ volatile("nop");
  report(before == expected_before && tmr_seen == level,
         "%s vector: TMR %d before (expected %d), %d in the handler", level ? "level" : "edge",
         before, expected_before, tmr_seen);
}

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  mask_pic_interrupts();
  irq_enable();
  test_registers();
  test_edge_level();
  test_simultaneous();
  test_level();
  test_mask();
  report_prefix_push("tmr");
  tmr_case(0, 0);
  tmr_case(1, 0);
  tmr_case(1, 1); /* TMR stays set after the EOI of a level vector... */
  tmr_case(0, 1); /* ...until an edge-triggered one is accepted */
  report_prefix_pop();
  return report_summary();
}
