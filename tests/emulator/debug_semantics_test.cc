// Guest-visible debug semantics that the test guests (tests/guests/debug)
// do not reach: instruction breakpoints on the instruction in a MOV SS
// shadow, the order of a single-step trap and an instruction breakpoint on
// the next instruction, and breakpoints armed through DR7's G bits only.
#include <gtest/gtest.h>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

constexpr uint64_t kCode = layout::kCode;
constexpr uint64_t kHandler = layout::kCode + 0x8000;
constexpr uint64_t kB0 = 1, kBs = 1u << 14;

// #DB handler: or $RF,16(%rsp) when B0-B3 report a breakpoint; iretq.
//   push rax; mov %dr6,%rax; test $0xf,%al; jz 1f; orl $0x10000,24(%rsp);
//   1: pop rax; iretq
constexpr const char* kRfHandler = "50 0f 21 f0 a8 0f 74 08 81 4c 24 18 00 00 01 00 58 48 cf";

void setup(Machine& m, const char* code) {
  m.setupLong64(kCode);
  m.setIdt64(1, kHandler);
  m.loadHex(kHandler, kRfHandler);
  m.loadHex(kCode, code);
}

uint64_t frameRip(const Machine& m) {
  return m.get(m.state().reg(Gpr::kRsp), 8);
}

// SDM vol. 3 18.3.1.1: "if a code instruction breakpoint is placed on an
// instruction located immediately after a POP SS/MOV SS instruction, the
// breakpoint may not be triggered"; ttvm's model never triggers it (the
// shadow inhibits debug exceptions, 6.8.3), and after the shadowed
// instruction retired the breakpoint no longer applies.
TEST(DebugSemantics, InstructionBreakpointInMovSsShadowIsNotTriggered) {
  for (const bool tf : {false, true}) {
    SCOPED_TRACE(tf);
    Machine m;
    // mov %eax,%ss (EAX = kernel data selector); nop (breakpoint); nop (breakpoint)
    setup(m, "8e d0 90 90 90");
    m.edit([&](CpuState& s) {
      s.reg(Gpr::kRax) = layout::kData0;
      s.dr[0] = kCode + 2;
      s.dr[1] = kCode + 3;
      s.dr7 = 0x400 | 1 | 4;  // L0, L1: execute
      if (tf) s.rflags |= flags::kTF;
    });
    ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // MOV SS: its trap is deferred
    StepResult r = m.step();                             // NOP in the shadow: no fault
    if (tf) {
      // The single-step owed to MOV SS and the NOP: one #DB after the NOP,
      // BS only (the suppressed breakpoint is not reported).
      ASSERT_EQ(r.outcome, StepOutcome::kException);
      EXPECT_EQ(frameRip(m), kCode + 3);
      EXPECT_EQ(m.state().dr6 & (0xF | kBs), kBs);
      ASSERT_EQ(m.run(6).outcome, StepOutcome::kRetired);  // handler without RF: 6 instructions
    } else {
      ASSERT_EQ(r.outcome, StepOutcome::kRetired);
    }
    EXPECT_EQ(m.state().rip, kCode + 3);
    // The next instruction is outside the shadow: its breakpoint faults.
    r = m.step();
    ASSERT_EQ(r.outcome, StepOutcome::kException);
    EXPECT_EQ(frameRip(m), kCode + 3);
    EXPECT_EQ(m.state().dr6 & 0xF, 2u);
  }
}

// SDM vol. 3 6.9 table 6-2: traps on the previous instruction (class 4)
// before a code breakpoint on the next (class 7). The single-step #DB comes
// first (BS, B0-B3 clear), its IRETQ returns to the breakpoint, which faults
// with B0 (BS stays set: the CPU never clears it); the handler resumes with
// RF and the instruction executes and single-steps again.
TEST(DebugSemantics, SingleStepBeforeInstructionBreakpointOnTheNextInstruction) {
  Machine m;
  setup(m, "90 90 90");
  m.edit([](CpuState& s) {
    s.dr[0] = kCode + 1;
    s.dr7 = 0x400 | 2;  // G0 only: global enable arms it as well
    s.rflags |= flags::kTF;
  });
  StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(frameRip(m), kCode + 1);
  EXPECT_EQ(m.state().dr6 & (0xF | kBs), kBs);
  ASSERT_EQ(m.run(6).outcome, StepOutcome::kRetired);  // handler, no breakpoint bit: no RF
  r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);  // the instruction breakpoint
  EXPECT_EQ(frameRip(m), kCode + 1);
  EXPECT_EQ(m.state().dr6 & (0xF | kBs), kB0 | kBs);
  EXPECT_TRUE(m.get(m.state().reg(Gpr::kRsp) + 16, 8) & flags::kTF);
  ASSERT_EQ(m.run(7).outcome, StepOutcome::kRetired);  // handler sets RF in the image
  EXPECT_EQ(m.state().rip, kCode + 1);
  EXPECT_TRUE(m.state().rflags & flags::kRF);
  m.edit([](CpuState& s) { s.dr6 = 0xFFFF0FF0; });
  r = m.step();  // the NOP runs (RF), then its single-step trap
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(frameRip(m), kCode + 2);
  EXPECT_EQ(m.state().dr6 & (0xF | kBs), kBs);
  // RF was cleared when the NOP retired: the image has RF = 0.
  EXPECT_FALSE(m.get(m.state().reg(Gpr::kRsp) + 16, 8) & flags::kRF);
}

// DR6 B0-B3 report only breakpoints whose conditions were met; an I/O
// breakpoint and a data breakpoint on one instruction (INS: port read +
// memory write) are reported together in one trap.
TEST(DebugSemantics, IoAndDataBreakpointOnOneInstructionGiveOneTrap) {
  Machine m;
  setup(m, "6c 90");  // insb (%dx),%es:(%rdi)
  m.edit([](CpuState& s) {
    s.cr4 |= cr4::kDE;
    s.reg(Gpr::kRdx) = 0x71;
    s.reg(Gpr::kRdi) = layout::kData + 5;
    s.dr[1] = 0x71;
    s.dr[3] = layout::kData + 4;                          // 2 bytes: covers +5
    s.dr7 = 0x400 | (1u << 2) | (1u << 6) | (2u << 20) |  // L1: I/O, 1 byte
            (1u << 28) | (1u << 30);                      // L3: write, 2 bytes
  });
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 1);
  EXPECT_EQ(frameRip(m), kCode + 1);
  EXPECT_EQ(m.state().dr6 & (0xF | kBs), 0xAu);
  EXPECT_EQ(m.env.portLog.size(), 1u);
}

// MOV SS followed by INT3: the debug traps owed to MOV SS (its single-step,
// or a data breakpoint hit by its own read) survive the #BP delivery and are
// taken before the #BP handler's first instruction (saved RIP = the #BP
// handler's entry) - the hardware behaviour that CVE-2018-8897 is about.
TEST(DebugSemantics, MovSsDebugTrapsPendingAcrossInt3AreTakenAtHandlerEntry) {
  constexpr uint64_t kBpHandler = layout::kCode + 0x9000;
  for (const bool tf : {true, false}) {
    SCOPED_TRACE(tf);
    Machine m;
    setup(m, "8e 10 cc 90 90");  // mov (%rax),%ss; int3; nop; nop
    m.setIdt64(3, kBpHandler);
    m.loadHex(kBpHandler, "48 cf");
    m.put(layout::kData, layout::kData0, 2);
    m.edit([&](CpuState& s) {
      s.reg(Gpr::kRax) = layout::kData;
      if (tf) {
        s.rflags |= flags::kTF;
      } else {
        s.dr[0] = layout::kData;
        s.dr7 = 0x400 | 1 | (3u << 16) | (1u << 18);  // L0, read/write, 2 bytes
      }
    });
    ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // MOV SS: traps deferred
    const StepResult r = m.step();                       // INT3: #BP, then the owed #DB
    ASSERT_EQ(r.outcome, StepOutcome::kException);
    EXPECT_EQ(int(r.vector), 1);
    EXPECT_EQ(m.state().rip, kHandler);
    EXPECT_EQ(frameRip(m), kBpHandler);
    EXPECT_EQ(m.state().dr6 & (0xF | kBs), tf ? kBs : kB0);
    EXPECT_FALSE(m.get(m.state().reg(Gpr::kRsp) + 16, 8) & flags::kTF);
    EXPECT_EQ(m.get(m.state().reg(Gpr::kRsp) + 48, 8), kCode + 3);  // #BP frame (16-aligned)
    EXPECT_EQ(m.state().steps, 2u);
    // #DB handler (7 instructions when it sets RF for B0), then #BP's IRETQ.
    ASSERT_EQ(m.run(tf ? 7 : 8).outcome, StepOutcome::kRetired);
    EXPECT_EQ(m.state().rip, kCode + 3);
    const StepResult after = m.step();  // the NOP: single-step again only with TF
    EXPECT_EQ(after.outcome, tf ? StepOutcome::kException : StepOutcome::kRetired);
  }
}

// SDM vol. 3 18.3.1.1: the RF pushed for a fault is 1, except for a #DB
// raised by an instruction breakpoint. General detect is a #DB fault that is
// not an instruction breakpoint: RF = 1 in its image, GD cleared, DR6.BD.
TEST(DebugSemantics, RfImageOfDebugFaults) {
  constexpr uint64_t kBd = 1u << 13;
  {
    Machine m;
    setup(m, "0f 23 c0 90");  // mov %rax,%dr0
    m.edit([](CpuState& s) { s.dr7 = 0x400 | (1u << 13); });
    const StepResult r = m.step();
    ASSERT_EQ(r.outcome, StepOutcome::kException);
    EXPECT_EQ(int(r.vector), 1);
    EXPECT_EQ(frameRip(m), kCode);
    EXPECT_EQ(m.state().dr6 & (0xF | kBd | kBs), kBd);
    EXPECT_FALSE(m.state().dr7 & (1u << 13));
    EXPECT_TRUE(m.get(m.state().reg(Gpr::kRsp) + 16, 8) & flags::kRF);
  }
  {
    Machine m;
    setup(m, "90 90");
    m.edit([](CpuState& s) {
      s.dr[0] = kCode;
      s.dr7 = 0x400 | 1;
    });
    const StepResult r = m.step();
    ASSERT_EQ(r.outcome, StepOutcome::kException);
    EXPECT_EQ(m.state().dr6 & (0xF | kBd | kBs), kB0);
    EXPECT_FALSE(m.get(m.state().reg(Gpr::kRsp) + 16, 8) & flags::kRF);
  }
}

}  // namespace
}  // namespace ttvm::cputest
