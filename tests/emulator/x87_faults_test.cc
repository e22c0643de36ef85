// x87 arithmetic's fault and stack rules through the public Cpu API (what the
// host comparison in x87_host_test.cc cannot show from user mode): #NM with
// CR0.EM/TS, #MF from a pending unmasked exception (CR0.NE) raised by the
// next waiting instruction with the state untouched, stack overflow and
// underflow with their masked and unmasked responses, FIP/FOP updates.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

constexpr uint64_t kHandler = layout::kCode + 0x8000;

StepResult runOne(Machine& m, const std::string& hex, const std::function<void(CpuState&)>& edit) {
  const uint64_t code = codeAddress(CpuMode::kLong64);
  m.setupLong64(code);
  m.setAllIdt64(kHandler);
  m.loadHex(kHandler, "f4");
  m.loadHex(code, hex);
  m.edit([&](CpuState& s) {
    s.reg(Gpr::kRsi) = layout::kData;
    edit(s);
  });
  return m.step();
}

constexpr Float80 kOne{0x8000000000000000ull, 0x3FFF};
constexpr Float80 kIndefinite{0xC000000000000000ull, 0xFFFF};

TEST(X87Faults, NmWithEmOrTs) {
  for (const char* hex : {"d8 c1", "d9 e8", "dd 06", "d9 fe", "df 3e"}) {
    for (uint64_t bits : {cr0::kEM, cr0::kTS}) {
      Machine m;
      const StepResult r = runOne(m, hex, [&](CpuState& s) { s.cr0 |= bits; });
      EXPECT_EQ(r.outcome, StepOutcome::kException) << hex;
      EXPECT_EQ(int(r.vector), 7) << hex;
    }
  }
}

TEST(X87Faults, PendingUnmaskedExceptionRaisesMfOnTheNextWaitingInstruction) {
  // fld1 with IE pending and unmasked: #MF, nothing pushed, pointers kept.
  Machine m;
  const StepResult r = runOne(m, "d9 e8", [](CpuState& s) {
    s.cr0 |= cr0::kNE;
    s.fpu.fcw = 0x037E;
    s.fpu.fsw = 0x8081;
    s.fpu.fip = 0x1234;
  });
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 16);
  EXPECT_EQ(m.state().fpu.fsw, 0x8081);
  EXPECT_EQ(m.state().fpu.ftw, 0);
  EXPECT_EQ(m.state().fpu.fip, 0x1234u);
  // The non-waiting FNSTSW still runs.
  Machine m2;
  EXPECT_EQ(runOne(m2, "df e0",
                   [](CpuState& s) {
                     s.cr0 |= cr0::kNE;
                     s.fpu.fcw = 0x037E;
                     s.fpu.fsw = 0x8081;
                   })
                .outcome,
            StepOutcome::kRetired);
  EXPECT_EQ(m2.state().reg(Gpr::kRax) & 0xFFFF, 0x8081u);
}

TEST(X87Faults, DivideByZeroUnmaskedSetsEsAndKeepsTheDestination) {
  Machine m;
  // fdiv st0, st1 with ST1 = 0, ZE unmasked.
  runOne(m, "d8 f1", [](CpuState& s) {
    s.cr0 |= cr0::kNE;
    s.fpu.fcw = 0x037B;
    s.fpu.fsw = 6 << 11;
    s.fpu.ftw = 0xC0;
    s.fpu.st[6] = kOne;
    s.fpu.st[7] = Float80{};
  });
  const FpuState& f = m.state().fpu;
  EXPECT_EQ(f.fsw, 0x8000 | 6 << 11 | 0x80 | 0x04);
  EXPECT_EQ(f.st[6], kOne) << "destination unchanged";
  // The next x87 instruction faults with #MF.
  m.edit([](CpuState& s) { s.rip = codeAddress(CpuMode::kLong64); });
  m.loadHex(codeAddress(CpuMode::kLong64), "d9 e8");
  const StepResult r = m.step();
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 16);
}

TEST(X87Faults, StackOverflowMaskedPushesIndefinite) {
  Machine m;
  runOne(m, "d9 e8", [](CpuState& s) { s.fpu.ftw = 0xFF; });  // fld1, all in use
  const FpuState& f = m.state().fpu;
  EXPECT_EQ(f.fsw, 7 << 11 | 0x0200 | 0x41) << "TOP 7, C1 = 1 (overflow), SF, IE";
  EXPECT_EQ(f.st[7], kIndefinite);
}

TEST(X87Faults, StackOverflowUnmaskedChangesNothingButFlags) {
  Machine m;
  runOne(m, "d9 e8", [](CpuState& s) {
    s.fpu.ftw = 0xFF;
    s.fpu.fcw = 0x037E;
    s.fpu.st[7] = kOne;
  });
  const FpuState& f = m.state().fpu;
  EXPECT_EQ(f.fsw, 0x8000 | 0x0200 | 0xC1) << "TOP 0, B, C1, SF, ES, IE";
  EXPECT_EQ(f.st[7], kOne);
}

TEST(X87Faults, StackUnderflowMaskedStoresIndefinite) {
  Machine m;
  runOne(m, "d8 c1", [](CpuState& s) { s.fpu.fsw = 0x0200; });  // fadd st0, st1: empty
  const FpuState& f = m.state().fpu;
  EXPECT_EQ(f.fsw, 0x41) << "C1 = 0 (underflow), SF, IE";
  EXPECT_EQ(f.st[0], kIndefinite);
  EXPECT_EQ(f.ftw, 0x01);
  // fistp m16 of an empty ST0: the integer indefinite.
  Machine m2;
  m2.put(layout::kData, 0x1111, 2);
  runOne(m2, "df 1e", [](CpuState&) {});
  EXPECT_EQ(m2.get(layout::kData, 2), 0x8000u);
}

TEST(X87Faults, PointersOfANonControlInstruction) {
  Machine m;
  runOne(m, "dc 46 08", [](CpuState& s) {  // fadd qword [rsi+8]
    s.fpu.ftw = 0x01;
    s.fpu.st[0] = kOne;
  });
  const FpuState& f = m.state().fpu;
  EXPECT_EQ(f.fip, codeAddress(CpuMode::kLong64));
  EXPECT_EQ(f.fop, 0x446);
  EXPECT_EQ(f.fdp, layout::kData + 8);
  EXPECT_EQ(f.st[0], kOne) << "1 + 0.0";
}

}  // namespace
}  // namespace ttvm::cputest
