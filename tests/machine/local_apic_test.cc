#include "ttvm/machine/devices/local_apic.h"

#include <gtest/gtest.h>

#include <set>

namespace ttvm {
using ttvm::machine::LocalApic;
using ttvm::machine::VirtualClock;
namespace {

struct ApicTest : ::testing::Test {
  VirtualClock clock;
  LocalApic apic{&clock, 1'000'000'000};
  uint64_t apicBase = 0xFEE00900;  // enabled, BSP, xAPIC
  uint64_t cr8 = 0;
  void SetUp() override {
    apic.bindCpuRegisters(&apicBase, &cr8);
    write(0xF0, 0x1FF);  // software enable, spurious vector 0xFF
  }
  uint32_t read(uint32_t off) { return static_cast<uint32_t>(apic.mmioRead(off, 4)); }
  void write(uint32_t off, uint32_t v) { apic.mmioWrite(off, 4, v); }
  void at(uint64_t ns) {
    clock.setOwnSteps(ns);
    apic.advanceTo(ns);
  }
};

TEST_F(ApicTest, IdentityAndVersion) {
  EXPECT_EQ(read(0x20), 0u);
  EXPECT_EQ(read(0x30) & 0xFF, 0x14u);
  EXPECT_EQ((read(0x30) >> 16) & 0xFF, 5u);  // max LVT index
  EXPECT_EQ(read(0xF0), 0x1FFu);
}

TEST_F(ApicTest, PriorityAndEoi) {
  apic.acceptInterrupt(0x41, false);
  apic.acceptInterrupt(0x62, false);
  EXPECT_TRUE(apic.hasDeliverable());
  EXPECT_EQ(apic.acknowledge(), 0x62);
  EXPECT_EQ(read(0xA0), 0x60u);  // PPR = ISRV class
  // 0x41 is below the in-service class: waits.
  EXPECT_FALSE(apic.hasDeliverable());
  EXPECT_TRUE(read(0x200 + 0x20) & (1u << 1));  // IRR bit 0x41
  EXPECT_TRUE(read(0x100 + 0x30) & (1u << 2));  // ISR bit 0x62
  write(0xB0, 0);                               // EOI
  EXPECT_TRUE(apic.hasDeliverable());
  // TPR blocks the class 4 vector.
  write(0x80, 0x50);
  EXPECT_FALSE(apic.hasDeliverable());
  EXPECT_EQ(read(0xA0), 0x50u);
  write(0x80, 0x30);
  EXPECT_EQ(apic.acknowledge(), 0x41);
}

TEST_F(ApicTest, Cr8DrivesTpr) {
  apic.acceptInterrupt(0x35, false);
  cr8 = 5;
  EXPECT_FALSE(apic.hasDeliverable());
  EXPECT_EQ(read(0x80), 0x50u);
  cr8 = 2;
  EXPECT_TRUE(apic.hasDeliverable());
}

TEST_F(ApicTest, SpuriousWhenNothingDeliverable) {
  EXPECT_EQ(apic.acknowledge(), 0xFF);
}

TEST_F(ApicTest, OneShotAndPeriodicTimer) {
  write(0x3E0, 0x3);   // divide by 16
  write(0x320, 0x30);  // one-shot, vector 0x30
  write(0x380, 1000);  // 16000 ns
  EXPECT_EQ(*apic.nextDeadlineNs(), 16000u);
  clock.setOwnSteps(8000);
  EXPECT_EQ(read(0x390), 500u);
  at(16000);
  EXPECT_EQ(apic.acknowledge(), 0x30);
  EXPECT_FALSE(apic.nextDeadlineNs().has_value());
  EXPECT_EQ(read(0x390), 0u);
  write(0xB0, 0);
  write(0x320, 0x20031);  // periodic, vector 0x31
  write(0x3E0, 0xB);      // divide by 1
  write(0x380, 100);
  at(16100);
  at(16200);
  EXPECT_EQ(*apic.nextDeadlineNs(), 16300u);
  EXPECT_EQ(apic.acknowledge(), 0x31);
}

TEST_F(ApicTest, MaskedTimerCountsButDoesNotInterrupt) {
  write(0x320, 0x10040);
  write(0x3E0, 0xB);
  write(0x380, 10);
  at(10);
  EXPECT_FALSE(apic.hasDeliverable());
}

TEST_F(ApicTest, TscDeadlineMode) {
  write(0x320, 0x40050);  // TSC-deadline, vector 0x50
  EXPECT_TRUE(apic.writeMsr(LocalApic::kMsrTscDeadline, 5000));
  EXPECT_EQ(*apic.readMsr(LocalApic::kMsrTscDeadline), 5000u);
  EXPECT_EQ(*apic.nextDeadlineNs(), 5000u);
  at(5000);
  EXPECT_EQ(apic.acknowledge(), 0x50);
  EXPECT_EQ(*apic.readMsr(LocalApic::kMsrTscDeadline), 0u);  // disarmed after firing
  // Writing the initial count is ignored in this mode.
  write(0x380, 10);
  EXPECT_EQ(read(0x380), 0u);
}

TEST_F(ApicTest, SelfIpiAndIllegalVector) {
  write(0x300, 0x40000 | 0x77);  // shorthand self, fixed
  EXPECT_EQ(apic.acknowledge(), 0x77);
  write(0x300, 0x40000 | 0x05);
  write(0x280, 0);
  EXPECT_EQ(read(0x280) & 0x60, 0x60u);  // send + receive illegal vector
  write(0x310, 0);                       // destination 0 = our ID
  write(0x300, 0x400);                   // NMI by destination
  EXPECT_TRUE(apic.nmiPending());
}

TEST_F(ApicTest, X2ApicThroughMsrs) {
  apicBase |= 1u << 10;                           // x2APIC mode
  EXPECT_EQ(*apic.readMsr(0x802), 0u);            // ID
  EXPECT_EQ(*apic.readMsr(0x803) & 0xFF, 0x14u);  // version
  EXPECT_EQ(*apic.readMsr(0x80D), 1u);            // LDR derived from the ID
  EXPECT_FALSE(apic.readMsr(0x80B).has_value());  // EOI is write-only
  EXPECT_FALSE(apic.writeMsr(0x80B, 1));          // non-zero EOI: #GP
  EXPECT_TRUE(apic.writeMsr(0x83F, 0x66));        // SELF IPI
  EXPECT_EQ(apic.acknowledge(), 0x66);
  EXPECT_TRUE(apic.writeMsr(0x80B, 0));                  // EOI (0x67 is in the same priority class)
  EXPECT_TRUE(apic.writeMsr(0x830, 0x40000ull | 0x67));  // 64-bit ICR
  EXPECT_EQ(apic.acknowledge(), 0x67);
  EXPECT_TRUE(apic.writeMsr(0x80B, 0));
  EXPECT_FALSE(apic.readMsr(0x831).has_value());  // no ICR high in x2APIC
  // xAPIC MMIO is off in x2APIC mode.
  EXPECT_EQ(apic.mmioRead(0x30, 4), 0xFFFFFFFFu);
  apicBase &= ~(1ull << 10);
  EXPECT_FALSE(apic.readMsr(0x802).has_value());  // MSRs are off in xAPIC mode
}

// The x2APIC registers RDMSR reads (SDM vol. 3 table "Local APIC Register
// Address Map Supported by x2APIC"; max LVT entry 5: no CMCI), and
// IA32_TSC_DEADLINE: answersMsrRead says so from the index and
// IA32_APIC_BASE alone, and readMsr answers exactly those.
TEST_F(ApicTest, AnswersMsrReadIsTheSdmsX2apicTableAndWhatReadMsrDoes) {
  std::set<uint32_t> readable = {0x802, 0x803, 0x808, 0x80A, 0x80D, 0x80F, 0x828, 0x830, 0x832,
                                 0x833, 0x834, 0x835, 0x836, 0x837, 0x838, 0x839, 0x83E};
  for (uint32_t i = 0x810; i < 0x828; ++i) readable.insert(i);  // ISR, TMR, IRR
  const uint64_t x2 = apicBase | (1u << 10);
  for (uint32_t index = 0x700; index < 0x900; ++index) {
    SCOPED_TRACE(index);
    const bool want = readable.count(index) != 0 || index == LocalApic::kMsrTscDeadline;
    EXPECT_EQ(LocalApic::answersMsrRead(index, x2), want);
    EXPECT_EQ(LocalApic::answersMsrRead(index, apicBase), index == LocalApic::kMsrTscDeadline);
    EXPECT_EQ(LocalApic::answersMsrRead(index, x2 & ~(1ull << 11)),  // globally disabled
              index == LocalApic::kMsrTscDeadline);
    EXPECT_EQ(apic.readMsr(index).has_value(), index == LocalApic::kMsrTscDeadline);
    apicBase = x2;
    EXPECT_EQ(apic.readMsr(index).has_value(), want);
    apicBase &= ~(1ull << 10);
  }
}

TEST_F(ApicTest, VirtualWireAndGlobalDisable) {
  EXPECT_TRUE(apic.acceptsPicInterrupts());  // LINT0 = ExtINT at reset
  write(0x350, 0x10700);                     // mask LINT0
  EXPECT_FALSE(apic.acceptsPicInterrupts());
  apicBase &= ~(1ull << 11);  // globally disabled: the PIC goes straight in
  EXPECT_TRUE(apic.acceptsPicInterrupts());
  apic.acceptInterrupt(0x40, false);
  EXPECT_FALSE(apic.hasDeliverable());
}

TEST_F(ApicTest, SoftwareDisableMasksLvts) {
  write(0x320, 0x30);
  write(0xF0, 0x0FF);
  EXPECT_TRUE(read(0x320) & 0x10000);
  apic.acceptInterrupt(0x40, false);
  EXPECT_FALSE(apic.hasDeliverable());
}

TEST_F(ApicTest, LevelEoiNotifiesListener) {
  int eoiVector = -1;
  apic.setEoiListener([&](uint8_t v) { eoiVector = v; });
  apic.acceptInterrupt(0x90, true);
  EXPECT_TRUE(read(0x180 + 0x40) & (1u << 16));  // TMR bit 0x90
  EXPECT_EQ(apic.acknowledge(), 0x90);
  write(0xB0, 0);
  EXPECT_EQ(eoiVector, 0x90);
}

}  // namespace
}  // namespace ttvm
