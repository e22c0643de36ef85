/* COM1 transmitter-empty interrupts, as an interrupt-driven 16550 driver uses
 * them: IER bit 1 raises IRQ 4 (8259 master, vector 0x24) whenever THR is
 * empty; IIR reports 0x2 ("THR empty") and reading IIR clears that source
 * until the next write to THR. No output is printed while IER is set, so the
 * only THR writes are the test's own. */
#include "dev.h"

GUEST_NAME("uart_thre");

#define COM1 0x3F8
#define IRQ4_VECTOR (PIC_MASTER_BASE + 4)

static volatile int irq_count;
static volatile uint8_t iir_seen[8];
static volatile uint8_t isr_seen[8];

static void com1_irq(struct trap_frame* f) {
  (void)f;
  int n = irq_count;
  if (n < 8) {
    isr_seen[n] = pic_read_isr(0x20);
    iir_seen[n] = inb(COM1 + 2); /* identifies and (for THRE) clears the source */
  } else {
    (void)inb(COM1 + 2);
  }
  irq_count = n + 1;
  pic_eoi(4);
}

static void wait_thr_empty(void) {
  for (int i = 0; i < 1000000 && !(inb(COM1 + 5) & 0x20); i++) {
  }
}

void guest_main(void) {
  cli();
  pic_init();
  set_trap_hook(IRQ4_VECTOR, com1_irq);

  case_begin("iir_idle");
  wait_thr_empty();
  outb(COM1 + 4, 0x0B); /* DTR, RTS, OUT2 (gates the IRQ on a real PC) */
  uint8_t iir = inb(COM1 + 2);
  CHECK_MSG((iir & 0x0F) == 0x01, "IIR %#x with IER=0, expected no interrupt pending (0x1)", iir);
  CHECK_MSG((iir & 0xC0) == 0xC0, "IIR %#x: FIFO-enabled bits 7:6 not set after FCR=0xC7", iir);

  case_begin("thre_on_enable");
  pic_unmask(4);
  outb(COM1 + 1, 0x02); /* ETBEI: THR is empty, so this raises the interrupt */
  int n = wait_count(&irq_count, 1, WAIT_LIMIT);
  /* The IIR read in the handler cleared the THRE source: no more interrupts. */
  spin_sti(200000);
  int after = irq_count;

  case_begin("thre_after_write");
  outb(COM1 + 0, 'x'); /* transmits; THR empty again raises the next one */
  int n2 = wait_count(&irq_count, after + 1, WAIT_LIMIT);
  spin_sti(200000);
  int after2 = irq_count;
  outb(COM1 + 1, 0x00);
  wait_thr_empty();
  outb(COM1 + 0, '\n');
  wait_thr_empty();

  current_case = "thre_on_enable";
  CHECK_MSG(n >= 1, "no IRQ 4 after enabling the THRE interrupt");
  CHECK_MSG(after == 1, "%d interrupts after one IIR read, expected exactly 1", after);
  CHECK_MSG((iir_seen[0] & 0x0F) == 0x02, "IIR in the handler %#x, expected 0x2 (THR empty)",
            iir_seen[0]);
  CHECK_MSG(isr_seen[0] & 0x10, "PIC ISR %#x in the handler lacks IRQ 4", isr_seen[0]);
  current_case = "thre_after_write";
  CHECK_MSG(n2 == after + 1, "no THRE interrupt after writing THR (%d interrupts)", n2);
  CHECK_MSG(after2 == after + 1, "%d interrupts after one more write, expected %d", after2,
            after + 1);
  if (after >= 1 && after < 8)
    CHECK_MSG((iir_seen[after] & 0x0F) == 0x02, "IIR %#x, expected 0x2", iir_seen[after]);

  case_begin("iir_polled");
  /* With IRQ 4 masked: a pending THRE is visible in IIR and cleared by the read. */
  pic_mask(4);
  outb(COM1 + 1, 0x02);
  uint8_t first = inb(COM1 + 2);
  uint8_t second = inb(COM1 + 2);
  outb(COM1 + 1, 0x00);
  uint8_t idle = inb(COM1 + 2);
  CHECK_MSG((first & 0x0F) == 0x02, "IIR %#x with THRE pending, expected 0x2", first);
  CHECK_MSG((second & 0x0F) == 0x01, "IIR %#x after reading it once, expected 0x1", second);
  CHECK_MSG((idle & 0x0F) == 0x01, "IIR %#x with IER=0, expected 0x1", idle);
  CHECK_MSG((inb(COM1 + 1) & 0x0F) == 0x00, "IER reads %#x after writing 0", inb(COM1 + 1));
  outb(COM1 + 4, 0x03);
}
