/* COM1 input as an interrupt-driven driver receives it: the harness feeds
 * "ttvm-input\n" to the runner's stdin (QEMU -serial stdio; ttvm's terminal
 * input, which ttvm records), typed once the guest says it is waiting. With FIFOs at the 14-byte trigger, 11 bytes
 * raise the character-timeout interrupt (IIR 0xC, or 0x4 if the trigger was
 * reached); the handler drains LSR.DR and RBR. */
#include "dev.h"

GUEST_NAME("uart_input");

#define COM1 0x3F8
#define IRQ4_VECTOR (PIC_MASTER_BASE + 4)

static const char kExpected[] = "ttvm-input\n";
static volatile char received[32];
static volatile int count;
static volatile int irqs;
static volatile uint8_t iir_seen, lsr_errors;

static void com1_irq(struct trap_frame* f) {
  (void)f;
  uint8_t iir = inb(COM1 + 2);
  if (irqs == 0) iir_seen = iir;
  irqs++;
  for (;;) {
    uint8_t lsr = inb(COM1 + 5);
    lsr_errors |= lsr & 0x1E; /* OE, PE, FE, BI */
    if (!(lsr & 0x01)) break;
    uint8_t c = inb(COM1 + 0);
    if (count < (int)sizeof received) received[count] = (char)c;
    count++;
  }
  pic_eoi(4);
}

void guest_main(void) {
  cli();
  pic_init();
  set_trap_hook(IRQ4_VECTOR, com1_irq);
  printf("waiting for %d bytes of serial input\n", (int)sizeof kExpected - 1);
  outb(COM1 + 2, 0xC1); /* FIFOs on, 14-byte trigger; no clear: input may be waiting */
  outb(COM1 + 4, 0x0B); /* OUT2 */
  pic_unmask(4);
  outb(COM1 + 1, 0x01); /* received-data interrupts */
  int want = (int)sizeof kExpected - 1;
  /* Bounded by the TSC, not by iterations (PAUSE is slow under QEMU TCG):
   * 1e9 cycles, under a second on a host TSC, 1 s of ttvm's virtual time. */
  uint64_t start = rdtsc();
  sti();
  while (count < want && rdtsc() - start < 1000000000ull) __asm__ volatile("pause");
  cli();
  outb(COM1 + 1, 0x00);
  pic_mask(4);

  case_begin("received");
  CHECK_MSG(count == want, "received %d bytes, expected %d", count, want);
  int same = count == want;
  for (int i = 0; i < want && i < count; i++) same &= received[i] == kExpected[i];
  CHECK_MSG(same, "received bytes differ from \"ttvm-input\\n\"");
  CHECK_MSG(irqs >= 1, "no receive interrupt");
  CHECK_MSG((iir_seen & 0x0F) == 0x0C || (iir_seen & 0x0F) == 0x04,
            "IIR %#x in the first handler, expected 0xC (timeout) or 0x4", iir_seen);
  CHECK_MSG(lsr_errors == 0, "LSR error bits %#x while receiving", lsr_errors);
}
