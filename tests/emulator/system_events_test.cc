// Exceptions and interrupts: IDT delivery with privilege change and IST,
// IRETQ back to user mode, double and triple fault, SYSCALL/SYSRET,
// interrupt shadows (STI, MOV SS), HLT wake-up, REP interrupted between
// iterations, single-step (TF), INT3/INT1, NMI, the real-mode IVT, and
// 32-bit protected-mode delivery through a 32-bit TSS.
#include <gtest/gtest.h>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

constexpr uint64_t kHandler = layout::kCode + 0x8000;
constexpr uint64_t kCode = layout::kCode;
constexpr uint64_t kData = layout::kData;

uint64_t sp(const Machine& m) {
  return m.state().reg(Gpr::kRsp);
}

TEST(Events, UserToKernelInterruptGateAndIretqBack) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(0x30, kHandler, /*dpl=*/3);
  m.loadHex(kCode, "cd 30 90");  // int 0x30; nop
  m.loadHex(kHandler, "48 cf");  // iretq
  m.enterUser64();
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRsp) = 0x50000;
    s.rflags = flags::kFixed1 | flags::kIF | flags::kCF;
  });
  StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 0x30);
  const CpuState k = m.state();
  EXPECT_EQ(k.rip, kHandler);
  EXPECT_EQ(currentPrivilegeLevel(k), 0);
  EXPECT_EQ(k.segment(SegReg::kCs).selector, layout::kCode64);
  EXPECT_EQ(k.segment(SegReg::kSs).selector, 0);  // null SS with RPL 0
  EXPECT_EQ(sp(m), layout::kRsp0 - 5 * 8);
  EXPECT_EQ(m.get(sp(m) + 0, 8), kCode + 2);                 // RIP after INT
  EXPECT_EQ(m.get(sp(m) + 8, 8), layout::kUserCode64 | 3u);  // CS
  EXPECT_EQ(m.get(sp(m) + 16, 8), flags::kFixed1 | flags::kIF | flags::kCF);
  EXPECT_EQ(m.get(sp(m) + 24, 8), 0x50000u);                // RSP
  EXPECT_EQ(m.get(sp(m) + 32, 8), layout::kUserData | 3u);  // SS
  EXPECT_FALSE(k.rflags & flags::kIF);                      // interrupt gate
  r = m.step();                                             // iretq
  ASSERT_EQ(r.outcome, StepOutcome::kRetired);
  const CpuState u = m.state();
  EXPECT_EQ(u.rip, kCode + 2);
  EXPECT_EQ(currentPrivilegeLevel(u), 3);
  EXPECT_EQ(u.reg(Gpr::kRsp), 0x50000u);
  EXPECT_EQ(u.segment(SegReg::kSs).selector, layout::kUserData | 3);
  EXPECT_EQ(u.rflags, flags::kFixed1 | flags::kIF | flags::kCF);
  EXPECT_EQ(cpuMode(u), CpuMode::kLong64);
  EXPECT_EQ(u.steps, 2u);
}

TEST(Events, SoftwareInterruptChecksGateDpl) {
  Machine m;
  m.setupLong64(kCode);
  m.setAllIdt64(kHandler);
  m.setIdt64(0x30, kHandler, /*dpl=*/0);
  m.loadHex(kCode, "cd 30");
  m.loadHex(kHandler, "f4");
  m.enterUser64();
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 13);
  EXPECT_EQ(r.errorCode, 0x30u * 8 + 2);
  EXPECT_EQ(m.get(sp(m) + 8, 8), kCode);  // #GP is a fault: RIP of the INT
}

TEST(Events, IstStackSwitchEvenWithoutPrivilegeChange) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(0x31, kHandler, 0, /*ist=*/1);
  m.loadHex(kCode, "cd 31");
  m.loadHex(kHandler, "f4");
  m.edit([](CpuState& s) { s.reg(Gpr::kRsp) = 0x50008; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kException);
  EXPECT_EQ(sp(m), layout::kIst1 - 5 * 8);
  EXPECT_EQ(m.get(sp(m) + 24, 8), 0x50008u);
  // The old SS is pushed and a null SS (RPL 0) loaded, as on a privilege
  // change (SDM vol. 3 6.14.5; QEMU's TCG does the same).
  EXPECT_EQ(m.get(sp(m) + 32, 8), layout::kData0);
  EXPECT_EQ(m.state().segment(SegReg::kSs).selector, 0);
}

TEST(Events, StackAlignedTo16OnDelivery) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(0x32, kHandler);
  m.loadHex(kCode, "cd 32");
  m.loadHex(kHandler, "f4");
  m.edit([](CpuState& s) { s.reg(Gpr::kRsp) = 0x50008; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kException);
  EXPECT_EQ(sp(m), 0x50000u - 5 * 8);
}

TEST(Events, ContributoryDuringDeliveryBecomesDoubleFault) {
  Machine m;
  m.setupLong64(kCode);
  m.setAllIdt64(kHandler);
  m.put(layout::kIdt + 13 * 16 + 5, 0x0E, 1);  // #GP gate not present -> #NP
  m.loadHex(kCode, "48 8b 03");                // mov rax,[rbx] (non-canonical -> #GP)
  m.loadHex(kHandler, "f4");
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = 0x8000000000000000ull; });
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 8);
  EXPECT_EQ(r.errorCode, 0u);
  EXPECT_EQ(m.get(sp(m), 8), 0u);         // #DF error code
  EXPECT_EQ(m.get(sp(m) + 8, 8), kCode);  // faulting RIP
}

TEST(Events, PageFaultDuringPageFaultDeliveryIsDoubleFault) {
  Machine m;
  m.setupLong64(kCode);
  m.setAllIdt64(kHandler);
  m.loadHex(kCode, "48 8b 03");
  m.loadHex(kHandler, "f4");
  // The #PF handler's stack is unmapped (IST1 points into the unmapped window).
  m.setIdt64(14, kHandler, 0, 1);
  m.put(layout::kTss + 0x24, 0x40001000, 8);
  m.map4k(0x40000000, 0x300000, 0);  // not present
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = 0x40000000; });
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 8);
}

TEST(Events, BenignThenContributoryIsDeliveredSerially) {
  Machine m;
  m.setupLong64(kCode);
  m.setAllIdt64(kHandler);
  m.put(layout::kIdt + 3 * 16 + 5, 0x6E, 1);  // #BP gate DPL3 but not present -> #NP
  m.loadHex(kCode, "cc");
  m.loadHex(kHandler, "f4");
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 11);
  EXPECT_EQ(r.errorCode, 3u * 8 + 2);  // IDT, not external (INT3 is software)
}

TEST(Events, TripleFaultFreezesState) {
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "90 48 8b 03");  // nop; mov rax,[rbx] -> #GP, no IDT entries
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = 0x8000000000000000ull; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  CpuState before = m.state();
  EXPECT_EQ(m.step().outcome, StepOutcome::kTripleFault);
  // Entering shutdown is a step (a position replay reaches); RIP stays at the
  // faulting instruction and nothing else moved (#GP leaves no trace).
  ++before.steps;
  EXPECT_EQ(m.state(), before);
  EXPECT_EQ(m.step().outcome, StepOutcome::kTripleFault);
  EXPECT_EQ(m.run(100).outcome, StepOutcome::kTripleFault);
  EXPECT_EQ(m.state(), before);  // frozen
}

TEST(Events, TripleFaultAfterAPageFaultKeepsCr2AndCountsAStep) {
  // A #PF whose delivery fails (no IDT) escalates to a triple fault; CR2 was
  // set by the #PF on the way, so the shutdown state differs from the state
  // before the instruction and must have a step number of its own.
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "48 8b 03");  // mov rax,[rbx]
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRbx) = 0x7FFFFFFFF000ull;  // canonical, not mapped
    s.idtr.limit = 0;
  });
  const CpuState before = m.state();
  EXPECT_EQ(m.step().outcome, StepOutcome::kTripleFault);
  EXPECT_EQ(m.state().steps, before.steps + 1);
  EXPECT_EQ(m.state().cr2, 0x7FFFFFFFF000ull);
  EXPECT_EQ(m.state().rip, before.rip);
  EXPECT_EQ(m.run(10).outcome, StepOutcome::kTripleFault);
  EXPECT_EQ(m.state().steps, before.steps + 1);
}

TEST(Events, SyscallSysretRoundTrip) {
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "0f 05 90");     // syscall; nop
  m.loadHex(kHandler, "48 0f 07");  // o64 sysret
  m.edit([](CpuState& s) {
    s.msr.star = (uint64_t{layout::kUserCode32} << 48) | (uint64_t{layout::kCode64} << 32);
    s.msr.lstar = kHandler;
    s.msr.sfmask = flags::kIF | flags::kTF | flags::kDF;
    s.rflags = flags::kFixed1 | flags::kIF | flags::kDF | flags::kCF;
  });
  m.enterUser64();
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  CpuState k = m.state();
  EXPECT_EQ(k.rip, kHandler);
  EXPECT_EQ(k.reg(Gpr::kRcx), kCode + 2);
  EXPECT_EQ(k.reg(Gpr::kR11), flags::kFixed1 | flags::kIF | flags::kDF | flags::kCF);
  EXPECT_EQ(k.rflags, flags::kFixed1 | flags::kCF);
  EXPECT_EQ(k.segment(SegReg::kCs).selector, layout::kCode64);
  EXPECT_EQ(k.segment(SegReg::kSs).selector, layout::kData0);
  EXPECT_EQ(currentPrivilegeLevel(k), 0);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  CpuState u = m.state();
  EXPECT_EQ(u.rip, kCode + 2);
  EXPECT_EQ(u.segment(SegReg::kCs).selector, layout::kUserCode64 | 3);
  EXPECT_EQ(u.segment(SegReg::kSs).selector, layout::kUserData | 3);
  EXPECT_EQ(currentPrivilegeLevel(u), 3);
  EXPECT_EQ(cpuMode(u), CpuMode::kLong64);
  EXPECT_EQ(u.rflags, flags::kFixed1 | flags::kIF | flags::kDF | flags::kCF);
}

TEST(Events, SysretToCompatibilityMode) {
  Machine m;
  m.setupLong64(kHandler);
  m.loadHex(kHandler, "0f 07");  // sysret (32-bit)
  m.edit([](CpuState& s) {
    s.msr.star = uint64_t{layout::kUserCode32} << 48;
    s.reg(Gpr::kRcx) = 0xFFFFFFFF00401000ull;
    s.reg(Gpr::kR11) = flags::kIF;
  });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().rip, 0x401000u);
  EXPECT_EQ(cpuMode(m.state()), CpuMode::kCompatibility32);
  EXPECT_EQ(m.state().segment(SegReg::kCs).selector, layout::kUserCode32 | 3);
}

TEST(Events, SyscallUndefinedWithoutSce) {
  Machine m;
  m.setupLong64(kCode);
  m.setAllIdt64(kHandler);
  m.loadHex(kCode, "0f 05");
  m.edit([](CpuState& s) { s.msr.efer &= ~efer::kSCE; });
  const StepResult r = m.step();
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 6);
}

// An interrupt is pending throughout; IF is 0 until STI.
TEST(Events, StiShadowDefersInterruptByOneInstruction) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(0x40, kHandler);
  m.loadHex(kCode, "fb 90 90");  // sti; nop; nop
  m.loadHex(kHandler, "f4");
  m.env.interrupts.push_back(0x40);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // sti
  EXPECT_EQ(m.state().pending.shadow, InterruptShadow::kSti);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // nop in the shadow
  EXPECT_EQ(m.state().rip, kCode + 2);
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kInterrupt);
  EXPECT_EQ(int(r.vector), 0x40);
  EXPECT_EQ(m.get(sp(m), 8), kCode + 2);
  EXPECT_EQ(m.state().steps, 3u);
}

TEST(Events, MovSsShadowDefersInterrupt) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(0x40, kHandler);
  m.loadHex(kCode, "8e d0 90 90");  // mov ss, ax; nop; nop
  m.loadHex(kHandler, "f4");
  m.edit([](CpuState& s) {
    s.rflags |= flags::kIF;
    s.reg(Gpr::kRax) = layout::kData0;
  });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().pending.shadow, InterruptShadow::kMovSs);
  m.env.interrupts.push_back(0x40);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // blocked by the shadow
  EXPECT_EQ(m.step().outcome, StepOutcome::kInterrupt);
  EXPECT_EQ(m.get(sp(m), 8), kCode + 3);
}

TEST(Events, InterruptsMaskedByIf) {
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "90 90");
  m.env.interrupts.push_back(0x40);
  EXPECT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.env.interrupts.size(), 1u);
}

// Cpu::run's fast loop drops the hint's maskable-only bit while IF=0: the
// interrupt that waits there must still be taken at the first boundary where
// IF=1 and no shadow blocks it, and an "anything" hint must still reach an NMI
// with IF=0.
TEST(Events, MaskableOnlyHintWaitsForIfInTheFastLoop) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(0x40, kHandler);
  m.loadHex(kCode, "90 90 90 fb 90 90 90 90");  // nop x3; sti; nop x4
  m.loadHex(kHandler, "f4");
  m.env.useHint = true;
  m.env.hint = kEventHintMaskableOnly;
  m.env.interrupts.push_back(0x40);
  EXPECT_EQ(m.run(3).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.env.interruptQueries, 0);  // IF=0: nothing to ask
  EXPECT_EQ(m.env.nmiQueries, 0);
  // STI, the NOP in its shadow, then the interrupt before the next NOP.
  const StepResult r = m.run(10);
  ASSERT_EQ(r.outcome, StepOutcome::kInterrupt);
  EXPECT_EQ(int(r.vector), 0x40);
  EXPECT_EQ(m.get(sp(m), 8), kCode + 5);
  EXPECT_EQ(m.state().steps, 6u);

  // The same with IF=0 throughout and the hint at "anything": the NMI is taken.
  Machine n;
  n.setupLong64(kCode);
  n.setAllIdt64(kHandler);
  n.loadHex(kCode, "90 90 90 90");
  n.loadHex(kHandler, "f4");
  n.env.useHint = true;
  n.env.hint = 0;
  n.env.nmis = 1;
  EXPECT_EQ(n.run(2).outcome, StepOutcome::kRetired);  // hint 0: not asked
  EXPECT_EQ(n.env.nmiQueries, 0);
  n.env.hint = 1;
  const StepResult s = n.run(10);
  ASSERT_EQ(s.outcome, StepOutcome::kNmi);
  EXPECT_EQ(n.get(sp(n), 8), kCode + 2);
  EXPECT_EQ(n.env.interruptQueries, 0);  // IF=0
}

TEST(Events, HltWakesOnInterrupt) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(0x40, kHandler);
  m.loadHex(kCode, "f4 90");  // hlt; nop
  m.loadHex(kHandler, "48 cf");
  m.edit([](CpuState& s) { s.rflags |= flags::kIF; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_TRUE(m.state().pending.halted);
  EXPECT_EQ(m.state().rip, kCode + 1);
  const uint64_t steps = m.state().steps;
  EXPECT_EQ(m.step().outcome, StepOutcome::kHalted);
  EXPECT_EQ(m.run(10).outcome, StepOutcome::kHalted);
  EXPECT_EQ(m.state().steps, steps);  // halted steps do not count
  m.env.interrupts.push_back(0x40);
  ASSERT_EQ(m.step().outcome, StepOutcome::kInterrupt);
  EXPECT_FALSE(m.state().pending.halted);
  EXPECT_EQ(m.get(sp(m), 8), kCode + 1);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // iretq
  EXPECT_EQ(m.state().rip, kCode + 1);
}

TEST(Events, HltRequiresCpl0) {
  Machine m;
  m.setupLong64(kCode);
  m.setAllIdt64(kHandler);
  m.loadHex(kCode, "f4");
  m.enterUser64();
  const StepResult r = m.step();
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 13);
}

TEST(Events, RepStringInterruptedBetweenIterations) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(0x40, kHandler);
  m.loadHex(kCode, "f3 aa 90");  // rep stosb; nop
  m.loadHex(kHandler, "48 cf");  // iretq
  m.edit([](CpuState& s) {
    s.rflags |= flags::kIF;
    s.reg(Gpr::kRcx) = 4;
    s.reg(Gpr::kRdi) = layout::kData;
    s.reg(Gpr::kRax) = 0xEE;
  });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().rip, kCode);  // still on the REP instruction
  EXPECT_EQ(m.state().reg(Gpr::kRcx), 2u);
  m.env.interrupts.push_back(0x40);
  ASSERT_EQ(m.step().outcome, StepOutcome::kInterrupt);
  EXPECT_EQ(m.get(sp(m), 8), kCode);                   // returns to the REP instruction
  EXPECT_TRUE(m.get(sp(m) + 16, 8) & flags::kRF);      // mid-REP: RF=1 in the image
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // iretq
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().rip, kCode + 2);
  EXPECT_EQ(m.state().reg(Gpr::kRcx), 0u);
  EXPECT_EQ(m.get(layout::kData, 4), 0xEEEEEEEEu);
  EXPECT_EQ(m.get(layout::kData + 4, 1), 0u);
  EXPECT_EQ(m.state().steps, 6u);
}

TEST(Events, SingleStepTrapAfterInstructionOnlyWhenTfWasSetBefore) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(1, kHandler);
  // pushfq; or qword [rsp],0x100; popfq; nop; nop
  m.loadHex(kCode, "9c 48 81 0c 24 00 01 00 00 9d 90 90");
  m.loadHex(kHandler, "48 cf");
  ASSERT_EQ(m.run(3).outcome, StepOutcome::kRetired);  // POPF that sets TF does not trap
  EXPECT_TRUE(m.state().rflags & flags::kTF);
  const StepResult r = m.step();  // nop, then #DB delivered in the same step
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 1);
  EXPECT_EQ(m.state().rip, kHandler);
  EXPECT_FALSE(m.state().rflags & flags::kTF);
  EXPECT_TRUE(m.state().dr6 & (1u << 14));  // BS
  EXPECT_EQ(m.get(sp(m), 8), kCode + 11);   // after the nop
  EXPECT_TRUE(m.get(sp(m) + 16, 8) & flags::kTF);
  EXPECT_EQ(m.state().steps, 4u);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // iretq restores TF: no trap on it
  const StepResult r2 = m.step();                      // the second nop traps
  EXPECT_EQ(r2.outcome, StepOutcome::kException);
  EXPECT_EQ(m.get(sp(m), 8), kCode + 12);
}

TEST(Events, SingleStepOverRepPushesRfExceptAfterLastIteration) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(1, kHandler);
  m.loadHex(kCode, "f3 6e 90");  // rep outsb; nop
  m.loadHex(kHandler, "48 cf");  // iretq
  m.edit([](CpuState& s) {
    s.rflags |= flags::kTF;
    s.reg(Gpr::kRcx) = 3;
    s.reg(Gpr::kRsi) = kData;
    s.reg(Gpr::kRdx) = 0x3F8;
  });
  for (int iteration = 1; iteration <= 3; ++iteration) {
    SCOPED_TRACE(iteration);
    const StepResult r = m.step();
    ASSERT_EQ(r.outcome, StepOutcome::kException);
    EXPECT_EQ(int(r.vector), 1);
    EXPECT_EQ(m.env.portLog.size(), static_cast<size_t>(iteration));  // trap after the access
    EXPECT_EQ(m.get(sp(m), 8), iteration < 3 ? kCode : kCode + 2);
    EXPECT_EQ((m.get(sp(m) + 16, 8) & flags::kRF) != 0, iteration < 3);
    ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // iretq (TF back on, no trap on it)
  }
}

TEST(Events, Int3AndInt1AreTraps) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(3, kHandler, 3);
  m.setIdt64(1, kHandler + 0x10, 0);
  m.loadHex(kCode, "cc f1");
  m.loadHex(kHandler, "48 cf");
  m.loadHex(kHandler + 0x10, "48 cf");
  StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 3);
  EXPECT_EQ(m.get(sp(m), 8), kCode + 1);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 1);
  EXPECT_EQ(m.get(sp(m), 8), kCode + 2);
}

TEST(Events, Int1IgnoresGateDplButInt3ChecksIt) {
  Machine m;
  m.setupLong64(kCode);
  m.setAllIdt64(kHandler);
  m.loadHex(kCode, "f1");
  m.loadHex(kHandler, "f4");
  m.enterUser64();
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 1);  // DPL 0 gate, still delivered
}

TEST(Events, NmiBlockedUntilIret) {
  Machine m;
  m.setupLong64(kCode);
  m.setIdt64(2, kHandler);
  m.loadHex(kCode, "90 90 90");
  m.loadHex(kHandler, "90 48 cf");
  m.env.nmis = 2;
  ASSERT_EQ(m.step().outcome, StepOutcome::kNmi);
  EXPECT_TRUE(m.state().pending.nmiBlocked);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // nop in the handler, 2nd NMI blocked
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // iretq unblocks
  EXPECT_FALSE(m.state().pending.nmiBlocked);
  EXPECT_EQ(m.step().outcome, StepOutcome::kNmi);
  EXPECT_EQ(m.env.nmis, 0);
}

TEST(Events, RealModeIvtInterruptAndIret) {
  Machine m;
  m.setupReal(0, 0x7C00);
  m.loadHex(0x7C00, "cd 21 90");
  m.put(0x21 * 4, 0x00009000, 4);    // 0000:9000
  m.loadHex(0x9000, "b8 34 12 cf");  // mov ax,0x1234; iret
  m.edit([](CpuState& s) { s.rflags = flags::kFixed1 | flags::kIF | flags::kCF; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kException);
  EXPECT_EQ(m.state().rip, 0x9000u);
  EXPECT_EQ(sp(m), 0x7000u - 6);
  EXPECT_EQ(m.get(0x7000 - 2, 2), flags::kFixed1 | flags::kIF | flags::kCF);
  EXPECT_EQ(m.get(0x7000 - 6, 2), 0x7C02u);
  EXPECT_FALSE(m.state().rflags & flags::kIF);
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().rip, 0x7C02u);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0x1234u);
  EXPECT_EQ(sp(m), 0x7000u);
  EXPECT_TRUE(m.state().rflags & flags::kIF);
}

// 32-bit protected mode: ring 3 -> ring 0 through a 32-bit TSS, IRETD back.
TEST(Events, Protected32PrivilegeChangeThroughTss) {
  Machine m;
  m.setupFlat32(kCode);
  constexpr uint64_t kTss32 = 0x4000;
  constexpr uint16_t kTssSel = 0x58;
  m.put(layout::kGdt + kTssSel, descriptor(kTss32, 0x67, 0x89, 0), 8);
  m.put(kTss32 + 4, 0x70000, 4);         // ESP0
  m.put(kTss32 + 8, layout::kData0, 2);  // SS0
  m.setIdt32(0x30, static_cast<uint32_t>(kHandler), 3);
  m.loadHex(kCode, "cd 30 90");
  m.loadHex(kHandler, "cf");  // iretd
  m.edit([&](CpuState& s) {
    s.gdtr.limit = 0x5F;
    s.tr = SegmentRegister{kTssSel, kTss32, 0x67, 0x8B};
    s.segment(SegReg::kCs) = SegmentRegister{layout::kUserCode32 | 3, 0, 0xFFFFFFFF, 0xCFFB};
    s.segment(SegReg::kSs) = SegmentRegister{layout::kUserData | 3, 0, 0xFFFFFFFF, 0xCFF3};
    s.reg(Gpr::kRsp) = 0x50000;
  });
  ASSERT_EQ(m.step().outcome, StepOutcome::kException);
  CpuState k = m.state();
  EXPECT_EQ(currentPrivilegeLevel(k), 0);
  EXPECT_EQ(k.reg(Gpr::kRsp), 0x70000u - 20);
  EXPECT_EQ(k.segment(SegReg::kSs).selector, layout::kData0);
  EXPECT_EQ(m.get(0x70000 - 20, 4), kCode + 2);
  EXPECT_EQ(m.get(0x70000 - 16, 4), layout::kUserCode32 | 3u);
  EXPECT_EQ(m.get(0x70000 - 8, 4), 0x50000u);
  EXPECT_EQ(m.get(0x70000 - 4, 4), layout::kUserData | 3u);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  CpuState u = m.state();
  EXPECT_EQ(currentPrivilegeLevel(u), 3);
  EXPECT_EQ(u.rip, kCode + 2);
  EXPECT_EQ(u.reg(Gpr::kRsp), 0x50000u);
  EXPECT_EQ(cpuMode(u), CpuMode::kProtected32);
}

TEST(Events, ExternalInterruptDeliveryFaultReportsTheException) {
  Machine m;
  m.setupLong64(kCode);
  m.setAllIdt64(kHandler);
  m.loadHex(kCode, "90");
  m.loadHex(kHandler, "f4");
  m.edit([](CpuState& s) { s.rflags |= flags::kIF; });
  m.env.interrupts.push_back(0x80);  // no gate for 0x80 -> #GP(0x80*8+2+EXT)
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 13);
  EXPECT_EQ(r.errorCode, 0x80u * 8 + 3);
}

}  // namespace
}  // namespace ttvm::cputest
