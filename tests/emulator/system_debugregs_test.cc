// Guest debug registers: DR0-DR3 instruction, data and I/O breakpoints,
// DR6 reporting, RF, and their interaction with TF and REP iterations.
#include <gtest/gtest.h>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

constexpr uint64_t kCode = layout::kCode;
constexpr uint64_t kData = layout::kData;
constexpr uint64_t kHandler = layout::kCode + 0x8000;
constexpr uint64_t kB0 = 1, kBs = 1u << 14;

// DR7 for breakpoint 0: L0, R/W0, LEN0.
uint64_t dr7For0(unsigned rw, unsigned lenCode) {
  return 0x400 | 1 | (uint64_t{rw} << 16) | (uint64_t{lenCode} << 18);
}

void setup(Machine& m, const char* code, uint64_t dr0, uint64_t dr7) {
  m.setupLong64(kCode);
  m.setIdt64(1, kHandler);
  // or dword [rsp+16],0x10000 (set RF in the image); iretq
  m.loadHex(kHandler, "81 4c 24 10 00 00 01 00 48 cf");
  m.loadHex(kCode, code);
  m.edit([&](CpuState& s) {
    s.dr[0] = dr0;
    s.dr7 = dr7;
    s.dr6 = 0xFFFF0FF0;
  });
}

uint64_t sp(const Machine& m) {
  return m.state().reg(Gpr::kRsp);
}

TEST(DebugRegisters, InstructionBreakpointFaultsAndRfResumes) {
  Machine m;
  setup(m, "90 b0 05 90", kCode + 1, dr7For0(0, 0));
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 1);
  EXPECT_EQ(m.get(sp(m), 8), kCode + 1);  // fault: before the instruction
  EXPECT_EQ(m.state().dr6 & (0xF | kBs), kB0);
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 0u);
  const StepResult h = m.run(2);  // handler: or; iretq with RF=1
  ASSERT_EQ(h.outcome, StepOutcome::kRetired)
      << int(h.vector) << " " << h.errorCode << " rip " << std::hex << m.state().rip;
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // RF suppresses the breakpoint once
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 5u);
  EXPECT_FALSE(m.state().rflags & flags::kRF);  // cleared after the instruction
}

// KVM's forced-emulation prefix: the hardware checks the prefix's address
// (the ud2 it intercepts), KVM's emulator then the instruction's, as if the
// instruction started after the prefix; the #DB fault is reported there and
// RF=1 from the handler lets it run.
TEST(DebugRegisters, InstructionBreakpointAfterKvmForcedEmulationPrefix) {
  Machine m;
  setup(m, "0f 0b 6b 76 6d b0 05 90", kCode + 5, dr7For0(0, 0));
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 1);
  EXPECT_EQ(m.get(sp(m), 8), kCode + 5);
  EXPECT_EQ(m.state().dr6 & (0xF | kBs), kB0);
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 0u);
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);  // handler: or; iretq with RF=1
  EXPECT_EQ(m.state().rip, kCode + 5);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 5u);
  EXPECT_EQ(m.state().rip, kCode + 7);
}

TEST(DebugRegisters, InstructionBreakpointOnKvmForcedEmulationPrefix) {
  Machine m;
  setup(m, "0f 0b 6b 76 6d b0 05 90", kCode, dr7For0(0, 0));
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 1);
  EXPECT_EQ(m.get(sp(m), 8), kCode);
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);  // RF=1: neither address fires again
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 5u);
  EXPECT_EQ(m.state().rip, kCode + 7);
  EXPECT_FALSE(m.state().rflags & flags::kRF);
}

TEST(DebugRegisters, DataWriteBreakpointTrapsAfterTheAccess) {
  Machine m;
  setup(m, "8b 03 89 03 90", kData + 4, dr7For0(1, 3));  // write, 4 bytes
  m.put(kData + 6, 0xAB, 4);  // loaded by the first instruction, stored by the second
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = kData + 6; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // a read does not hit a write breakpoint
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 1);
  EXPECT_EQ(m.get(sp(m), 8), kCode + 4);  // trap: after the write
  EXPECT_EQ(m.get(kData + 6, 4), 0xABu);
  EXPECT_EQ(m.state().dr6 & (0xF | kBs), kB0);
}

TEST(DebugRegisters, ReadWriteBreakpointWithTfGivesOneDebugException) {
  Machine m;
  setup(m, "8b 03 90", kData + 8, dr7For0(3, 2));  // read/write, 8 bytes
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRbx) = kData + 12;
    s.rflags |= flags::kTF;
  });
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(m.state().dr6 & (0xF | kBs), kB0 | kBs);
  EXPECT_EQ(m.state().steps, 1u);
}

TEST(DebugRegisters, IoBreakpointNeedsCr4De) {
  for (const bool de : {false, true}) {
    SCOPED_TRACE(de);
    Machine m;
    setup(m, "e6 80 90", 0x80, dr7For0(2, 0));
    m.edit([&](CpuState& s) {
      if (de) s.cr4 |= cr4::kDE;
    });
    const StepResult r = m.step();
    EXPECT_EQ(r.outcome, de ? StepOutcome::kException : StepOutcome::kRetired);
    EXPECT_EQ(m.env.portLog.size(), 1u);  // the OUT completed before the trap
  }
}

TEST(DebugRegisters, RepMovsbDataBreakpointTrapsAfterTheIterationThatHit) {
  Machine m;
  setup(m, "f3 a4 90", kData + 0x101, dr7For0(1, 0));
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRsi) = kData;
    s.reg(Gpr::kRdi) = kData + 0x100;
    s.reg(Gpr::kRcx) = 4;
  });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(m.get(sp(m), 8), kCode);  // RIP still on the REP instruction
  EXPECT_EQ(m.state().reg(Gpr::kRcx), 2u);
  EXPECT_TRUE(m.get(sp(m) + 16, 8) & flags::kRF);
}

TEST(DebugRegisters, DisabledBreakpointsDoNothing) {
  Machine m;
  setup(m, "90 89 03", kCode + 1, 0x400);  // no enable bits
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = kData; });
  EXPECT_EQ(m.run(2).outcome, StepOutcome::kRetired);
}

}  // namespace
}  // namespace ttvm::cputest
