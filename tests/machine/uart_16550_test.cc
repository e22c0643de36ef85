#include "ttvm/machine/devices/uart_16550.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace ttvm {
using ttvm::machine::IrqLine;
using ttvm::machine::StateReader;
using ttvm::machine::StateWriter;
using ttvm::machine::Uart16550;
using ttvm::machine::VirtualClock;
namespace {

constexpr uint16_t kBase = 0x3F8;
enum : uint16_t {
  THR = kBase,
  IER = kBase + 1,
  IIR = kBase + 2,
  FCR = kBase + 2,
  LCR = kBase + 3,
  MCR = kBase + 4,
  LSR = kBase + 5,
  MSR = kBase + 6,
  SCR = kBase + 7
};

struct UartTest : ::testing::Test {
  test::RecordingIrqs irqs;
  test::StringConsole console;
  VirtualClock clock;
  Uart16550 uart{"com1", &console, IrqLine(&irqs, 4), &clock};
  uint8_t in(uint16_t p) { return static_cast<uint8_t>(uart.portRead(p, 1)); }
  void out(uint16_t p, uint8_t v) { uart.portWrite(p, 1, v); }
};

TEST_F(UartTest, ResetStateAsDriversProbeIt) {
  EXPECT_EQ(in(IIR), 0x01);  // no interrupt pending
  EXPECT_EQ(in(LSR), 0x60);  // THRE | TEMT
  out(SCR, 0x5A);            // scratch register probe
  EXPECT_EQ(in(SCR), 0x5A);
}

TEST_F(UartTest, DivisorLatchAndLineControl) {
  out(LCR, 0x80);  // DLAB
  out(THR, 0x01);  // DLL: 115200 baud
  out(IER, 0x00);  // DLM
  EXPECT_EQ(in(THR), 0x01);
  EXPECT_EQ(in(IER), 0x00);
  out(LCR, 0x03);  // 8N1
  EXPECT_EQ(in(LCR), 0x03);
  out(THR, 'A');  // with DLAB clear this transmits
  EXPECT_EQ(console.text, "A");
}

TEST_F(UartTest, ThreInterruptFollowsTheDatasheet) {
  out(LCR, 0x03);
  out(IER, 0x02);  // enable THRE interrupt while THR is empty: pending at once
  EXPECT_TRUE(irqs.level[4]);
  EXPECT_EQ(in(IIR)&0x0F, 0x02);
  // Reading IIR acknowledged it.
  EXPECT_FALSE(irqs.level[4]);
  EXPECT_EQ(in(IIR)&0x0F, 0x01);
  // A transmitted byte makes THR empty again: pending again.
  out(THR, 'x');
  EXPECT_TRUE(irqs.level[4]);
  EXPECT_EQ(console.text, "x");
  // Clearing ETBEI withdraws it.
  out(IER, 0x00);
  EXPECT_FALSE(irqs.level[4]);
  EXPECT_EQ(in(IIR), 0x01);
}

TEST_F(UartTest, ReceiveFifoTriggerLevelAndTimeout) {
  out(FCR, 0x81);                 // FIFO on, trigger level 8
  out(IER, 0x01);                 // RDA
  EXPECT_EQ(in(IIR)&0xC0, 0xC0);  // FIFOs enabled
  for (int i = 0; i < 3; ++i) uart.receive(static_cast<uint8_t>('a' + i));
  EXPECT_TRUE(in(LSR)&0x01);    // data ready
  EXPECT_FALSE(irqs.level[4]);  // below the trigger level
  // Four character times later: character timeout interrupt.
  auto deadline = uart.nextDeadlineNs();
  ASSERT_TRUE(deadline.has_value());
  clock.setOwnSteps(*deadline);
  uart.advanceTo(clock.nowNs());
  EXPECT_TRUE(irqs.level[4]);
  EXPECT_EQ(in(IIR)&0x0F, 0x0C);
  EXPECT_EQ(in(THR), 'a');
  EXPECT_EQ(in(THR), 'b');
  EXPECT_EQ(in(THR), 'c');
  EXPECT_FALSE(in(LSR)&0x01);
  EXPECT_FALSE(irqs.level[4]);
  for (int i = 0; i < 8; ++i) uart.receive('z');
  EXPECT_TRUE(irqs.level[4]);  // trigger level reached
  EXPECT_EQ(in(IIR)&0x0F, 0x04);
}

TEST_F(UartTest, OverrunSetsLineStatusInterrupt) {
  out(IER, 0x05);  // RDA + RLS, FIFO off: a 1-byte holding register
  EXPECT_TRUE(uart.receive('1'));
  EXPECT_FALSE(uart.receive('2'));
  EXPECT_EQ(in(IIR)&0x0F, 0x06);  // line status has priority
  EXPECT_EQ(in(LSR)&0x03, 0x03);  // OE | DR; reading clears OE
  EXPECT_EQ(in(LSR)&0x02, 0x00);
  EXPECT_EQ(in(IIR)&0x0F, 0x04);
}

TEST_F(UartTest, LoopbackEchoesAndMirrorsModemLines) {
  out(MCR, 0x10);  // loopback
  out(THR, 0xAE);
  EXPECT_EQ(console.text, "");  // nothing leaves the chip
  EXPECT_EQ(in(THR), 0xAE);
  out(MCR, 0x1F);  // DTR RTS OUT1 OUT2 + loop
  uint8_t msr = in(MSR);
  EXPECT_EQ(msr & 0xF0, 0xF0);    // CTS DSR RI DCD
  EXPECT_EQ(msr & 0x0B, 0x0B);    // delta CTS, DSR, DCD
  EXPECT_EQ(in(MSR)&0x0F, 0x00);  // deltas clear on read
  out(MCR, 0x1B);                 // drop OUT1: trailing edge of RI
  EXPECT_EQ(in(MSR)&0x04, 0x04);
}

TEST_F(UartTest, LineInputArrivesOnlyWhenTheGuestCanTakeIt) {
  uart.setLineInput({'h', 'i', '!'});
  // RTS low: the far end waits.
  EXPECT_EQ(in(LSR)&0x01, 0x00);
  out(MCR, 0x10 | 0x02);  // RTS, but in loopback: the line is disconnected
  EXPECT_EQ(in(LSR)&0x01, 0x00);
  out(IER, 0x01);  // RDA interrupt on
  out(MCR, 0x0B);  // DTR RTS OUT2: the first byte arrives in this write
  EXPECT_TRUE(irqs.level[4]);
  EXPECT_EQ(in(LSR)&0x01, 0x01);
  EXPECT_EQ(uart.lineInputLeft(), 3u);
  // One byte at a time: the next arrives in the read that takes the last.
  EXPECT_EQ(in(THR), 'h');
  EXPECT_EQ(in(LSR)&0x01, 0x01);
  EXPECT_TRUE(irqs.level[4]);
  // A FIFO reset before the guest read it: the byte is sent again.
  out(FCR, 0x07);
  EXPECT_EQ(in(THR), 'i');
  EXPECT_EQ(uart.lineInputLeft(), 1u);
  out(FCR, 0x00);  // FIFO off: changing the enable clears the FIFO, '!' comes back
  EXPECT_EQ(uart.lineInputLeft(), 1u);
  EXPECT_EQ(in(THR), '!');
  EXPECT_EQ(uart.lineInputLeft(), 0u);
  EXPECT_EQ(in(LSR)&0x01, 0x00);
  EXPECT_FALSE(irqs.level[4]);
  // Dropping RTS stops the far end between bytes.
  uart.setLineInput({'a', 'b'});
  out(MCR, 0x08);
  EXPECT_EQ(in(THR), 'a');
  EXPECT_EQ(in(LSR)&0x01, 0x00);
  out(MCR, 0x0A);
  EXPECT_EQ(in(THR), 'b');
  EXPECT_EQ(console.text, "");
}

TEST_F(UartTest, StateRoundTrip) {
  out(FCR, 0x01);
  out(IER, 0x03);
  uart.receive('q');
  StateWriter w;
  uart.saveState(w);
  test::StringConsole c2;
  Uart16550 other("com1", &c2, IrqLine(), &clock);
  StateReader r(w.data());
  ASSERT_TRUE(other.loadState(r).ok());
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(other.portRead(IER, 1), 0x03u);
  EXPECT_EQ(other.portRead(THR, 1), static_cast<uint32_t>('q'));
  StateReader shortReader(std::span<const uint8_t>(w.data()).first(5));
  EXPECT_FALSE(other.loadState(shortReader).ok());
}

}  // namespace
}  // namespace ttvm
