#include "ttvm/machine/devices/cmos_rtc.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace ttvm {
using ttvm::machine::CmosRtc;
using ttvm::machine::IrqLine;
using ttvm::machine::VirtualClock;
namespace {

// 2024-02-29 23:59:58 UTC, a Thursday.
constexpr int64_t kStart = 1709251198ll * 1'000'000'000;

struct RtcTest : ::testing::Test {
  test::RecordingIrqs irqs;
  VirtualClock clock;
  CmosRtc rtc{IrqLine(&irqs, 8), &clock, kStart, 256ull << 20};
  uint8_t reg(uint8_t r) {
    rtc.portWrite(0x70, 1, r);
    return static_cast<uint8_t>(rtc.portRead(0x71, 1));
  }
  void setReg(uint8_t r, uint8_t v) {
    rtc.portWrite(0x70, 1, r);
    rtc.portWrite(0x71, 1, v);
  }
};

TEST_F(RtcTest, BcdTimeFromTheStartClock) {
  EXPECT_EQ(reg(0x00), 0x58);
  EXPECT_EQ(reg(0x02), 0x59);
  EXPECT_EQ(reg(0x04), 0x23);
  EXPECT_EQ(reg(0x07), 0x29);
  EXPECT_EQ(reg(0x08), 0x02);
  EXPECT_EQ(reg(0x09), 0x24);
  EXPECT_EQ(reg(0x32), 0x20);
  EXPECT_EQ(reg(0x06), 0x05);  // Thursday (1 = Sunday)
  // Two virtual seconds later it is March 1st.
  clock.setOwnSteps(2'000'000'000);
  EXPECT_EQ(reg(0x00), 0x00);
  EXPECT_EQ(reg(0x07), 0x01);
  EXPECT_EQ(reg(0x08), 0x03);
}

TEST_F(RtcTest, BinaryAnd12HourModes) {
  setReg(0x0B, 0x04);  // binary, 12-hour
  EXPECT_EQ(reg(0x00), 58);
  EXPECT_EQ(reg(0x04), 0x80 | 11);  // 11 PM
}

TEST_F(RtcTest, StatusRegistersAndNmiMask) {
  EXPECT_EQ(reg(0x0D), 0x80);  // valid RAM and time
  EXPECT_EQ(reg(0x0A) & 0x7F, 0x26);
  rtc.portWrite(0x70, 1, 0x80 | 0x00);
  EXPECT_TRUE(rtc.nmiMasked());
  // UIP during the last 244 us of a second.
  clock.setOwnSteps(999'900'000);
  EXPECT_EQ(reg(0x0A) & 0x80, 0x80);
  clock.setOwnSteps(500'000'000);
  EXPECT_EQ(reg(0x0A) & 0x80, 0x00);
}

TEST_F(RtcTest, PeriodicInterruptAndRegisterC) {
  setReg(0x0A, 0x26);  // 1024 Hz
  setReg(0x0B, 0x42);  // PIE, 24h
  auto d = rtc.nextDeadlineNs();
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, 976562u);
  clock.setOwnSteps(*d);
  rtc.advanceTo(*d);
  EXPECT_TRUE(irqs.level[8]);
  EXPECT_EQ(reg(0x0C) & 0xC0, 0xC0);  // IRQF | PF
  EXPECT_FALSE(irqs.level[8]);        // reading C drops the request
  EXPECT_EQ(reg(0x0C), 0x00);
}

TEST_F(RtcTest, UpdateEndedAndAlarm) {
  setReg(0x01, 0x00);  // alarm at hh:mm:00 with don't-care minute/hour
  setReg(0x03, 0xC0);
  setReg(0x05, 0xC0);
  setReg(0x0B, 0x32);  // AIE | UIE | 24h
  auto d = rtc.nextDeadlineNs();
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, 1'000'000'000u);  // next second boundary
  clock.setOwnSteps(*d);
  rtc.advanceTo(*d);
  EXPECT_EQ(reg(0x0C) & 0xB0, 0x90);  // IRQF | UF (second 59: no alarm)
  clock.setOwnSteps(2'000'000'000);
  rtc.advanceTo(2'000'000'000);
  EXPECT_EQ(reg(0x0C) & 0xB0, 0xB0);  // second 00: alarm too
}

TEST_F(RtcTest, TheUpdateCycleIsADeadlineWithItsInterruptsOff) {
  // Register B as at reset: no interrupt enabled. The update cycle still
  // sets UF, so it is a deadline, and advancing to any time before it
  // changes nothing: a replay that calls advanceTo at other boundaries than
  // the recording (a checkpoint, a debugger's stop) keeps the same state.
  auto saved = [&] {
    machine::StateWriter w;
    rtc.saveState(w);
    return w.take();
  };
  auto d = rtc.nextDeadlineNs();
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, 1'000'000'000u);
  const auto before = saved();
  clock.setOwnSteps(*d - 1);
  rtc.advanceTo(*d - 1);
  EXPECT_EQ(saved(), before);
  clock.setOwnSteps(*d);
  rtc.advanceTo(*d);
  EXPECT_NE(saved(), before);
  EXPECT_EQ(rtc.nextDeadlineNs(), 2'000'000'000u);
  EXPECT_FALSE(irqs.level[8]);
  EXPECT_EQ(reg(0x0C), 0x10);  // UF alone: no IRQF without UIE
}

TEST_F(RtcTest, GuestSetsTheClock) {
  setReg(0x0B, 0x82);  // SET
  setReg(0x04, 0x08);  // 08 h
  setReg(0x0B, 0x02);
  EXPECT_EQ(reg(0x04), 0x08);
  EXPECT_EQ(reg(0x02), 0x59);
}

TEST_F(RtcTest, CmosMemorySizes) {
  EXPECT_EQ(reg(0x15) | (reg(0x16) << 8), 640);
  EXPECT_EQ(reg(0x17) | (reg(0x18) << 8), 0xFFFF);  // 255 MiB above 1 MiB caps at 64 MiB-1 KiB
  EXPECT_EQ(reg(0x34) | (reg(0x35) << 8), (256 - 16) * 16);
}

}  // namespace
}  // namespace ttvm
