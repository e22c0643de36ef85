/* COM1 in loopback mode (MCR bit 4): transmitted bytes come back through the
 * receive FIFO, and the modem outputs appear on the modem-status inputs
 * (DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD). Also the received-data
 * interrupt (IER bit 0, IIR 0x4) with a 1-byte FIFO trigger. Nothing is
 * printed while loopback is on (it would loop back, not leave the UART). */
#include "dev.h"

GUEST_NAME("uart_loopback");

#define COM1 0x3F8
#define IRQ4_VECTOR (PIC_MASTER_BASE + 4)

static volatile int irq_count;
static volatile uint8_t iir_seen;
static volatile uint8_t rx_seen;

static void com1_irq(struct trap_frame* f) {
  (void)f;
  uint8_t iir = inb(COM1 + 2);
  if (irq_count == 0) iir_seen = iir;
  if (inb(COM1 + 5) & 0x01) rx_seen = inb(COM1 + 0);
  irq_count++;
  pic_eoi(4);
}

/* Waits for the transmitter to be idle; returns every LSR bit seen on the way
 * (reading LSR clears OE, so a driver accumulates it). */
static uint8_t wait_thr_empty(void) {
  uint8_t seen = 0;
  for (int i = 0; i < 1000000; i++) {
    uint8_t lsr = inb(COM1 + 5);
    seen |= lsr;
    if (lsr & 0x40) break;
  }
  return seen;
}

/* Waits for LSR.DR; returns -1 if nothing arrives. */
static int read_byte(void) {
  for (int i = 0; i < 1000000; i++)
    if (inb(COM1 + 5) & 0x01) return inb(COM1 + 0);
  return -1;
}

void guest_main(void) {
  cli();
  pic_init();
  set_trap_hook(IRQ4_VECTOR, com1_irq);
  wait_thr_empty();

  /* Drain anything the receiver holds (terminal input before the test). */
  while (inb(COM1 + 5) & 0x01) (void)inb(COM1 + 0);

  static const uint8_t kMsr[4][2] = {{0x01, 0x20}, {0x02, 0x10}, {0x04, 0x40}, {0x08, 0x80}};
  uint8_t msr_got[4];
  for (int i = 0; i < 4; i++) {
    outb(COM1 + 4, 0x10 | kMsr[i][0]);
    msr_got[i] = inb(COM1 + 6) & 0xF0;
  }
  outb(COM1 + 4, 0x10);
  uint8_t msr_none = inb(COM1 + 6) & 0xF0;

  const char kText[] = "ttvm loop";
  int got[sizeof kText - 1];
  for (unsigned i = 0; i < sizeof kText - 1; i++) outb(COM1 + 0, (uint8_t)kText[i]);
  wait_thr_empty();
  uint8_t lsr_full = inb(COM1 + 5);
  for (unsigned i = 0; i < sizeof kText - 1; i++) got[i] = read_byte();
  uint8_t lsr_empty = inb(COM1 + 5);

  /* Overrun: 20 bytes into a 16-byte receive FIFO without reading. LSR.OE
   * is set and cleared by reading LSR; the first 16 bytes survive. */
  uint8_t lsr_overrun = 0;
  for (int i = 0; i < 20; i++) {
    outb(COM1 + 0, (uint8_t)('a' + i));
    lsr_overrun |= wait_thr_empty();
  }
  uint8_t lsr_after = inb(COM1 + 5);
  int kept = 0, first_kept = read_byte();
  while (first_kept >= 0 && kept < 40) {
    kept++;
    if (!(inb(COM1 + 5) & 0x01)) break;
    (void)inb(COM1 + 0);
  }

  /* Modem-status changes: delta bits in MSR[3:0] (cleared by reading MSR)
   * and the modem-status interrupt source (IIR 0x0) when IER bit 3 is set. */
  outb(COM1 + 4, 0x10);
  (void)inb(COM1 + 6);
  outb(COM1 + 4, 0x10 | 0x02); /* RTS -> CTS rises */
  uint8_t msr_delta = inb(COM1 + 6);
  uint8_t msr_cleared = inb(COM1 + 6);
  outb(COM1 + 1, 0x08);
  outb(COM1 + 4, 0x10); /* CTS falls: DCTS again */
  uint8_t iir_modem = inb(COM1 + 2);
  (void)inb(COM1 + 6);
  uint8_t iir_modem_after = inb(COM1 + 2);
  outb(COM1 + 1, 0x00);

  /* Received-data interrupt: FIFO trigger level 1 byte (FCR bits 7:6 = 00). */
  outb(COM1 + 2, 0x07);
  pic_unmask(4);
  outb(COM1 + 1, 0x01);
  outb(COM1 + 0, 'Z');
  int n = wait_count(&irq_count, 1, WAIT_LIMIT);
  outb(COM1 + 1, 0x00);
  pic_mask(4);
  outb(COM1 + 2, 0xC7);
  outb(COM1 + 4, 0x03); /* loopback off: output goes out again */

  case_begin("modem_status");
  for (int i = 0; i < 4; i++)
    CHECK_MSG(msr_got[i] == kMsr[i][1], "MCR %#x in loopback: MSR[7:4] %#x, expected %#x",
              0x10 | kMsr[i][0], msr_got[i], kMsr[i][1]);
  CHECK_MSG(msr_none == 0, "MCR 0x10: MSR[7:4] %#x, expected 0", msr_none);

  case_begin("data");
  CHECK_MSG(lsr_full & 0x01, "LSR %#x after looping bytes back: DR clear", lsr_full);
  for (unsigned i = 0; i < sizeof kText - 1; i++)
    CHECK_MSG(got[i] == kText[i], "byte %u: received %d, sent %d", i, got[i], kText[i]);
  CHECK_MSG(!(lsr_empty & 0x01), "LSR %#x after reading every byte: DR still set", lsr_empty);
  CHECK_MSG((lsr_empty & 0x60) == 0x60, "LSR %#x: THRE/TEMT not set when idle", lsr_empty);

  case_begin("overrun");
  CHECK_MSG(lsr_overrun & 0x02, "LSR %#x after 20 bytes into the FIFO: OE clear", lsr_overrun);
  CHECK_MSG(!(lsr_after & 0x02), "LSR %#x: OE not cleared by reading LSR", lsr_after);
  CHECK_MSG(first_kept == 'a' && kept == 16, "kept %d bytes starting with %d, expected 16 from 'a'",
            kept, first_kept);

  case_begin("modem_delta");
  CHECK_MSG((msr_delta & 0x11) == 0x11, "MSR %#x after CTS rose: CTS and DCTS expected", msr_delta);
  CHECK_MSG((msr_cleared & 0x0F) == 0, "MSR %#x: delta bits not cleared by the read", msr_cleared);
  CHECK_MSG((iir_modem & 0x0F) == 0x00, "IIR %#x with DCTS pending and IER bit 3, expected 0x0",
            iir_modem);
  CHECK_MSG((iir_modem_after & 0x0F) == 0x01, "IIR %#x after reading MSR, expected 0x1",
            iir_modem_after);

  case_begin("rx_interrupt");
  CHECK_MSG(n >= 1, "no IRQ 4 for received data");
  /* 0x4 (data available) or, if the handler ran more than four character
   * times later, 0xC (character timeout): both are the receive source. */
  CHECK_MSG((iir_seen & 0x0F) == 0x04 || (iir_seen & 0x0F) == 0x0C,
            "IIR %#x in the handler, expected 0x4 (data available) or 0xC (timeout)", iir_seen);
  CHECK_MSG(rx_seen == 'Z', "handler read %#x, expected 'Z'", rx_seen);
}
