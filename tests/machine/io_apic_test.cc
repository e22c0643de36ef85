#include "ttvm/machine/devices/io_apic.h"

#include <gtest/gtest.h>

namespace ttvm {
using ttvm::machine::IoApic;
using ttvm::machine::LocalApic;
using ttvm::machine::VirtualClock;
namespace {

struct IoApicTest : ::testing::Test {
  VirtualClock clock;
  LocalApic lapic{&clock, 1'000'000'000};
  IoApic io{&lapic};
  uint64_t base = 0xFEE00900, cr8 = 0;
  void SetUp() override {
    lapic.bindCpuRegisters(&base, &cr8);
    lapic.mmioWrite(0xF0, 4, 0x1FF);
    lapic.setEoiListener([this](uint8_t v) { io.endOfInterrupt(v); });
  }
  uint32_t reg(uint32_t r) {
    io.mmioWrite(0x00, 4, r);
    return static_cast<uint32_t>(io.mmioRead(0x10, 4));
  }
  void setReg(uint32_t r, uint32_t v) {
    io.mmioWrite(0x00, 4, r);
    io.mmioWrite(0x10, 4, v);
  }
};

TEST_F(IoApicTest, IdentificationRegisters) {
  EXPECT_EQ(reg(1) & 0xFF, 0x20u);
  EXPECT_EQ((reg(1) >> 16) & 0xFF, 23u);  // 24 entries
  setReg(0, 0x05000000);
  EXPECT_EQ(reg(0), 0x05000000u);
  EXPECT_TRUE(reg(0x10) & 0x10000);  // masked after reset
}

TEST_F(IoApicTest, EdgeRoutingToTheLocalApic) {
  setReg(0x10 + 2 * 4, 0x41);  // pin 4 -> vector 0x41, edge, physical dest 0
  setReg(0x11 + 2 * 4, 0);
  io.setPin(4, true);
  EXPECT_TRUE(lapic.hasDeliverable());
  EXPECT_EQ(lapic.acknowledge(), 0x41);
  io.setPin(4, true);  // no new edge
  EXPECT_FALSE(lapic.hasDeliverable());
}

TEST_F(IoApicTest, LevelRemoteIrrAndRedeliveryAfterEoi) {
  setReg(0x10 + 2 * 9, 0x8000 | 0x59);  // level
  io.setPin(9, true);
  EXPECT_TRUE(reg(0x10 + 2 * 9) & 0x4000);  // remote IRR
  EXPECT_EQ(lapic.acknowledge(), 0x59);
  lapic.mmioWrite(0xB0, 4, 0);  // EOI: line still high -> delivered again
  EXPECT_TRUE(lapic.hasDeliverable());
  EXPECT_EQ(lapic.acknowledge(), 0x59);
  io.setPin(9, false);
  lapic.mmioWrite(0xB0, 4, 0);
  EXPECT_FALSE(reg(0x10 + 2 * 9) & 0x4000);
  EXPECT_FALSE(lapic.hasDeliverable());
}

TEST_F(IoApicTest, MaskedLevelDeliversWhenUnmasked) {
  setReg(0x10 + 2 * 10, 0x18000 | 0x5A);  // masked, level
  io.setPin(10, true);
  EXPECT_FALSE(lapic.hasDeliverable());
  setReg(0x10 + 2 * 10, 0x08000 | 0x5A);
  EXPECT_EQ(lapic.acknowledge(), 0x5A);
}

TEST_F(IoApicTest, OtherDestinationsAreNotDelivered) {
  setReg(0x10, 0x42);
  setReg(0x11, 0x03000000);  // physical destination 3: no such CPU
  io.setPin(0, true);
  EXPECT_FALSE(lapic.hasDeliverable());
}

}  // namespace
}  // namespace ttvm
