#include "ttvm/machine/bus.h"

#include <gtest/gtest.h>

#include <optional>

namespace ttvm {
using ttvm::machine::MmioBus;
using ttvm::machine::MmioDevice;
using ttvm::machine::MovableMmioDevice;
using ttvm::machine::PortBus;
using ttvm::machine::PortDevice;
namespace {

struct Latch final : PortDevice, MmioDevice {
  uint16_t lastPort = 0;
  unsigned lastSize = 0;
  uint64_t value = 0;
  uint64_t lastOffset = 0;
  uint32_t portRead(uint16_t port, unsigned size) override {
    lastPort = port;
    lastSize = size;
    return static_cast<uint32_t>(value);
  }
  void portWrite(uint16_t port, unsigned size, uint32_t v) override {
    lastPort = port;
    lastSize = size;
    value = v;
  }
  uint64_t mmioRead(uint64_t offset, unsigned) override {
    lastOffset = offset;
    return value;
  }
  void mmioWrite(uint64_t offset, unsigned, uint64_t v) override {
    lastOffset = offset;
    value = v;
  }
};

struct Window final : MovableMmioDevice {
  std::optional<uint64_t> base;
  uint64_t lastOffset = ~0ull;
  std::optional<uint64_t> mmioWindow() const override { return base; }
  uint64_t mmioRead(uint64_t offset, unsigned) override {
    lastOffset = offset;
    return 0x77;
  }
  void mmioWrite(uint64_t offset, unsigned, uint64_t) override { lastOffset = offset; }
};

TEST(MmioBus, MovableWindowFollowsTheDeviceAndComesFirst) {
  MmioBus bus;
  bus.setReportStream(nullptr);
  Latch fixed;
  Window w;
  ASSERT_TRUE(bus.map(0x1000, 0x1000, &fixed, "fixed").ok());
  ASSERT_TRUE(bus.mapMovable(0x1000, &w, "movable").ok());
  fixed.value = 0x11;
  EXPECT_EQ(bus.read(0x5000, 4), 0xFFFFFFFFu);  // window off: unclaimed
  EXPECT_EQ(bus.read(0x1008, 4), 0x11u);
  w.base = 0x5000;
  EXPECT_EQ(bus.read(0x5FFC, 4), 0x77u);
  EXPECT_EQ(w.lastOffset, 0xFFCu);
  EXPECT_EQ(bus.read(0x6000, 4), 0xFFFFFFFFu);
  w.base = 0x1000;  // over the fixed range: the window answers
  bus.write(0x1010, 4, 0x99);
  EXPECT_EQ(w.lastOffset, 0x10u);
  EXPECT_EQ(fixed.value, 0x11u);
  EXPECT_EQ(bus.ownerOf(0x1010), "movable");
  w.base.reset();
  EXPECT_EQ(bus.ownerOf(0x1010), "fixed");
  EXPECT_EQ(bus.unclaimedAccesses(), 2u);
}

TEST(PortBus, DispatchesByRangeWithAbsolutePort) {
  PortBus bus;
  Latch a, b;
  ASSERT_TRUE(bus.map(0x3F8, 8, &a, "a").ok());
  ASSERT_TRUE(bus.map(0x80, 1, &b, "b").ok());
  bus.write(0x3FB, 1, 0x83);
  EXPECT_EQ(a.lastPort, 0x3FB);
  EXPECT_EQ(a.value, 0x83u);
  EXPECT_EQ(bus.read(0x3FB, 1), 0x83u);
  bus.write(0x80, 2, 0x1234);
  EXPECT_EQ(b.lastSize, 2u);
  EXPECT_EQ(bus.ownerOf(0x3FF), "a");
  EXPECT_EQ(bus.ownerOf(0x400), "");
}

TEST(PortBus, RejectsOverlapsNamingBothDevices) {
  PortBus bus;
  Latch a, b;
  ASSERT_TRUE(bus.map(0x60, 5, &a, "kbd").ok());
  Status s = bus.map(0x64, 1, &b, "other");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("kbd"), std::string::npos);
  EXPECT_NE(s.error().message.find("other"), std::string::npos);
}

TEST(PortBus, UnclaimedReadsAllOnesAndIsReportedOnce) {
  PortBus bus;
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* mem = open_memstream(&buf, &len);
  bus.setReportStream(mem);
  EXPECT_EQ(bus.read(0x1234, 1), 0xFFu);
  EXPECT_EQ(bus.read(0x1234, 2), 0xFFFFu);
  EXPECT_EQ(bus.read(0x1234, 4), 0xFFFFFFFFu);
  bus.write(0x1234, 1, 0);
  bus.write(0x1235, 1, 0);
  std::fclose(mem);
  std::string report(buf, len);
  free(buf);
  EXPECT_EQ(bus.unclaimedAccesses(), 5u);
  // One line per port, not per access.
  EXPECT_EQ(std::count(report.begin(), report.end(), '\n'), 2);
  EXPECT_NE(report.find("0x1234"), std::string::npos);
}

TEST(MmioBus, DispatchesWithOffsetsAndRejectsOverlap) {
  MmioBus bus;
  Latch a;
  ASSERT_TRUE(bus.map(0xFEC00000, 0x1000, &a, "ioapic").ok());
  bus.write(0xFEC00010, 4, 0xAB);
  EXPECT_EQ(a.lastOffset, 0x10u);
  EXPECT_EQ(bus.read(0xFEC00010, 4), 0xABu);
  Latch b;
  EXPECT_FALSE(bus.map(0xFEC00800, 0x1000, &b, "x").ok());
  bus.setReportStream(nullptr);
  EXPECT_EQ(bus.read(0xFEB00000, 8), ~0ull);
  EXPECT_EQ(bus.read(0xFEB00000, 1), 0xFFull);
  EXPECT_EQ(bus.unclaimedAccesses(), 2u);
}

}  // namespace
}  // namespace ttvm
