#include "ttvm/machine/devices/pic_8259.h"

#include <gtest/gtest.h>

namespace ttvm {
using ttvm::machine::Pic8259Pair;
using ttvm::machine::StateReader;
using ttvm::machine::StateWriter;
namespace {

struct PicTest : ::testing::Test {
  Pic8259Pair pic;
  void SetUp() override { pic.biosInit(0x20, 0x28, 0x00, 0x00); }  // everything unmasked
  void out(uint16_t p, uint8_t v) { pic.portWrite(p, 1, v); }
  uint8_t in(uint16_t p) { return static_cast<uint8_t>(pic.portRead(p, 1)); }
};

TEST_F(PicTest, EdgeRequestDeliversVectorSetsIsrUntilEoi) {
  pic.setIrq(3, true);
  EXPECT_TRUE(pic.outputHigh());
  EXPECT_EQ(pic.acknowledge(), 0x23);
  EXPECT_EQ(pic.isr(0), 0x08);
  EXPECT_EQ(pic.irr(0), 0x00);  // edge request consumed
  EXPECT_FALSE(pic.outputHigh());
  // A lower-priority request waits for the EOI; a higher one nests.
  pic.setIrq(5, true);
  EXPECT_FALSE(pic.outputHigh());
  pic.setIrq(1, true);
  EXPECT_TRUE(pic.outputHigh());
  EXPECT_EQ(pic.acknowledge(), 0x21);
  out(0x20, 0x20);  // non-specific EOI clears the highest in service (IRQ 1)
  EXPECT_EQ(pic.isr(0), 0x08);
  out(0x20, 0x63);  // specific EOI for IRQ 3
  EXPECT_EQ(pic.isr(0), 0x00);
  EXPECT_EQ(pic.acknowledge(), 0x25);
}

TEST_F(PicTest, EdgeNeedsARisingEdge) {
  pic.setIrq(4, true);
  EXPECT_EQ(pic.acknowledge(), 0x24);
  out(0x20, 0x20);
  pic.setIrq(4, true);  // still high: no new edge
  EXPECT_FALSE(pic.outputHigh());
  pic.setIrq(4, false);
  pic.setIrq(4, true);
  EXPECT_TRUE(pic.outputHigh());
}

TEST_F(PicTest, LevelTriggeredThroughElcrStaysWhileHigh) {
  out(0x4D1, 0xFF);  // ELCR2: only the writable bits stick
  EXPECT_EQ(in(0x4D1), 0xDE);
  out(0x4D0, 0x20);  // IRQ 5 level
  pic.setIrq(5, true);
  EXPECT_EQ(pic.acknowledge(), 0x25);
  out(0x20, 0x20);
  EXPECT_TRUE(pic.outputHigh());  // still asserted: requested again
  pic.setIrq(5, false);
  EXPECT_FALSE(pic.outputHigh());
}

TEST_F(PicTest, MaskAndReadRegisters) {
  out(0x21, 0xFB);  // only cascade open
  EXPECT_EQ(in(0x21), 0xFB);
  pic.setIrq(0, true);
  EXPECT_FALSE(pic.outputHigh());
  out(0x20, 0x0A);  // OCW3: read IRR
  EXPECT_EQ(in(0x20), 0x01);
  out(0x20, 0x0B);  // OCW3: read ISR
  EXPECT_EQ(in(0x20), 0x00);
}

TEST_F(PicTest, CascadeThroughSlave) {
  pic.setIrq(12, true);
  EXPECT_TRUE(pic.outputHigh());
  EXPECT_EQ(pic.acknowledge(), 0x2C);
  EXPECT_EQ(pic.isr(1), 0x10);
  EXPECT_EQ(pic.isr(0), 0x04);  // cascade line in service on the master
  out(0xA0, 0x20);
  out(0x20, 0x20);
  EXPECT_EQ(pic.isr(0), 0x00);
  EXPECT_EQ(pic.isr(1), 0x00);
}

TEST_F(PicTest, SpuriousWhenNothingIsValid) {
  EXPECT_EQ(pic.acknowledge(), 0x27);  // IRQ 7, no ISR bit
  EXPECT_EQ(pic.isr(0), 0x00);
}

TEST_F(PicTest, AutoEoiAndRotation) {
  // Reinitialise the master with AEOI.
  out(0x20, 0x11);
  out(0x21, 0x40);
  out(0x21, 0x04);
  out(0x21, 0x03);  // 8086 + AEOI
  out(0x21, 0x00);
  pic.setIrq(2 + 4, true);
  EXPECT_EQ(pic.acknowledge(), 0x46);
  EXPECT_EQ(pic.isr(0), 0x00);  // no EOI needed
  // Rotate priorities: make IRQ 6 the lowest (set priority command).
  out(0x20, 0xC6);
  pic.setIrq(0, true);
  pic.setIrq(7, true);
  EXPECT_EQ(pic.acknowledge(), 0x47);  // 7 now beats 0
}

TEST_F(PicTest, PollMode) {
  pic.setIrq(3, true);
  out(0x20, 0x0C);            // OCW3: poll
  EXPECT_EQ(in(0x20), 0x83);  // interrupt present, level 3; acts as INTA
  EXPECT_EQ(pic.isr(0), 0x08);
}

TEST_F(PicTest, StateRoundTrip) {
  pic.setIrq(9, true);
  StateWriter w;
  pic.saveState(w);
  Pic8259Pair other;
  StateReader r(w.data());
  ASSERT_TRUE(other.loadState(r).ok());
  EXPECT_TRUE(other.outputHigh());
  EXPECT_EQ(other.acknowledge(), 0x29);
}

}  // namespace
}  // namespace ttvm
