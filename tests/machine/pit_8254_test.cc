#include "ttvm/machine/devices/pit_8254.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace ttvm {
using ttvm::machine::IrqLine;
using ttvm::machine::Pit8254;
using ttvm::machine::StateReader;
using ttvm::machine::StateWriter;
using ttvm::machine::VirtualClock;
namespace {

struct PitTest : ::testing::Test {
  test::RecordingIrqs irqs;
  VirtualClock clock;  // 1 ns per step, steps set by the test
  Pit8254 pit{IrqLine(&irqs, 0), &clock};
  void out(uint16_t p, uint8_t v) { pit.portWrite(p, 1, v); }
  uint8_t in(uint16_t p) { return static_cast<uint8_t>(pit.portRead(p, 1)); }
  void at(uint64_t ns) {
    clock.setOwnSteps(ns);
    pit.advanceTo(ns);
  }
  static uint64_t ticksToNs(uint64_t t) { return (t * 1'000'000'000 + 1193181) / 1193182; }
};

TEST_F(PitTest, Mode2PeriodicIrqAtEveryPeriod) {
  out(0x43, 0x34);  // ch0, lobyte/hibyte, mode 2
  out(0x40, 1193 & 0xFF);
  out(0x40, 1193 >> 8);
  auto d = pit.nextDeadlineNs();
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, ticksToNs(1193));
  at(*d - 1);
  EXPECT_EQ(irqs.rises[0], 0);
  for (int i = 1; i <= 3; ++i) {
    at(*pit.nextDeadlineNs());
    EXPECT_EQ(irqs.rises[0], i);
  }
  EXPECT_EQ(*pit.nextDeadlineNs(), ticksToNs(4 * 1193));
}

TEST_F(PitTest, Mode0OneShotThenSilent) {
  out(0x43, 0x30);  // mode 0
  out(0x40, 100);
  out(0x40, 0);
  EXPECT_FALSE(pit.output(0));
  at(*pit.nextDeadlineNs());
  EXPECT_EQ(irqs.rises[0], 1);
  EXPECT_TRUE(pit.output(0));
  EXPECT_FALSE(pit.nextDeadlineNs().has_value());
}

TEST_F(PitTest, CounterLatchReadsAFrozenValue) {
  out(0x43, 0x34);
  out(0x40, 0x00);
  out(0x40, 0x10);  // 4096
  clock.setOwnSteps(ticksToNs(100));
  out(0x43, 0x00);  // latch channel 0
  clock.setOwnSteps(ticksToNs(500));
  uint16_t latched = static_cast<uint16_t>(in(0x40) | (in(0x40) << 8));
  EXPECT_EQ(latched, 4096 - 100);
  uint16_t live = static_cast<uint16_t>(in(0x40) | (in(0x40) << 8));
  EXPECT_EQ(live, 4096 - 500);
}

TEST_F(PitTest, Mode3SquareWaveCountsByTwo) {
  out(0x43, 0x36);
  out(0x40, 0xE8);
  out(0x40, 0x03);  // 1000
  clock.setOwnSteps(ticksToNs(100));
  out(0x43, 0x00);
  uint16_t c = static_cast<uint16_t>(in(0x40) | (in(0x40) << 8));
  EXPECT_EQ(c, 1000 - 200);
  EXPECT_TRUE(pit.output(0));  // first half of the period
  clock.setOwnSteps(ticksToNs(600));
  EXPECT_FALSE(pit.output(0));
}

TEST_F(PitTest, ReadBackStatusAndLobyteAccess) {
  out(0x43, 0x94);  // ch2, lobyte only, mode 2
  out(0x42, 50);
  out(0x43, 0xE8);  // read-back: status only, channel 2
  uint8_t status = in(0x42);
  EXPECT_EQ(status & 0x3F, 0x14);  // access 1, mode 2, binary
  EXPECT_EQ(in(0x42), 50);         // then the count (lobyte)
}

TEST_F(PitTest, Port61GateAndOut2) {
  out(0x61, 0x00);  // gate 2 low
  out(0x43, 0xB0);  // ch2, lo/hi, mode 0
  out(0x42, 10);
  out(0x42, 0);
  clock.setOwnSteps(ticksToNs(50));
  EXPECT_EQ(in(0x61) & 0x20, 0);  // not counting while the gate is low
  out(0x61, 0x01);
  clock.setOwnSteps(ticksToNs(50) + ticksToNs(20));
  EXPECT_EQ(in(0x61) & 0x20, 0x20);  // OUT2 high after terminal count
  EXPECT_EQ(in(0x61) & 0x03, 0x01);
  // The refresh bit toggles every ~15 us.
  clock.setOwnSteps(0);
  uint8_t a = in(0x61) & 0x10;
  clock.setOwnSteps(15085);
  EXPECT_NE(in(0x61) & 0x10, a);
}

TEST_F(PitTest, BiosInitRuns18Hz) {
  pit.biosInit();
  auto d = pit.nextDeadlineNs();
  ASSERT_TRUE(d);
  EXPECT_NEAR(static_cast<double>(*d), 1e9 / 18.2065, 1e4);
}

TEST_F(PitTest, StateRoundTrip) {
  pit.biosInit();
  StateWriter w;
  pit.saveState(w);
  Pit8254 other(IrqLine(), &clock);
  StateReader r(w.data());
  ASSERT_TRUE(other.loadState(r).ok());
  EXPECT_EQ(other.nextDeadlineNs(), pit.nextDeadlineNs());
  EXPECT_EQ(other.currentCount(0), pit.currentCount(0));
}

}  // namespace
}  // namespace ttvm
