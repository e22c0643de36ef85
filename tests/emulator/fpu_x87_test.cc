// The x87 control instructions, FXSAVE/FXRSTOR, LDMXCSR/STMXCSR and the x87
// fault and stack rules through the public Cpu API: state before -> one
// step -> state and memory after.
// The FXSAVE image itself is checked against the host CPU in
// fpu_fxsave_test.cc; here the handlers must store exactly that image, at
// the right size for the mode, and leave the OS's bytes alone.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <functional>
#include <string>

#include "cpu_harness.h"
#include "fpu/fxsave.h"

namespace ttvm::cputest {
namespace {

constexpr uint64_t kHandler = layout::kCode + 0x8000;

// Sets up `mode`, loads `hex` at the code address, applies `edit`, steps once.
StepResult runOne(Machine& m, CpuMode mode, const std::string& hex,
                  const std::function<void(CpuState&)>& edit) {
  const uint64_t code = codeAddress(mode);
  if (mode == CpuMode::kLong64) {
    m.setupLong64(code);
    m.setAllIdt64(kHandler);
  } else {
    m.setupFlat32(code);
    for (uint8_t v = 0; v < 32; ++v) m.setIdt32(v, uint32_t(kHandler));
  }
  m.loadHex(kHandler, "f4");
  m.loadHex(code, hex);
  m.edit([&](CpuState& s) {
    s.reg(Gpr::kRsi) = layout::kData;
    edit(s);
  });
  return m.step();
}

FpuState sampleFpu() {
  FpuState f;
  f.fcw = 0x027F;
  f.fsw = uint16_t((3 << 11) | 0x0100);  // TOP = 3, C0
  f.ftw = 0xA5;
  f.fop = 0x5DB;
  f.fip = 0x00007FFF12345678ull;
  f.fdp = 0xFFFF800000001000ull;
  f.fcs = 0;
  f.fds = 0;
  for (int k = 0; k < 8; ++k)
    f.st[k] = Float80{0x8000000000000000ull | uint64_t(k), uint16_t(0x3FFF + k)};
  for (int k = 0; k < 16; ++k) f.xmm[k] = Vec128{{0x1111111111111111ull * k, ~0ull - k}};
  f.mxcsr = 0x1F80 | 0x6000;  // round toward zero
  return f;
}

TEST(FpuX87, Fninit) {
  Machine m;
  const FpuState before = sampleFpu();
  ASSERT_EQ(runOne(m, CpuMode::kLong64, "db e3", [&](CpuState& s) { s.fpu = before; }).outcome,
            StepOutcome::kRetired);
  const FpuState& f = m.state().fpu;
  EXPECT_EQ(f.fcw, 0x037F);
  EXPECT_EQ(f.fsw, 0);
  EXPECT_EQ(f.ftw, 0);
  EXPECT_EQ(f.fop, 0);
  EXPECT_EQ(f.fip, 0u);
  EXPECT_EQ(f.fdp, 0u);
  EXPECT_EQ(f.mxcsr, before.mxcsr) << "FNINIT does not touch MXCSR";
  EXPECT_EQ(f.xmm, before.xmm);
  EXPECT_EQ(f.st, before.st) << "register contents stay, only tags change";
}

TEST(FpuX87, StoreStatusAndControl) {
  {
    Machine m;
    runOne(m, CpuMode::kLong64, "df e0", [](CpuState& s) {  // fnstsw ax
      s.fpu.fsw = 0x3A85;
      s.reg(Gpr::kRax) = 0x1122334455667788ull;
    });
    EXPECT_EQ(m.state().reg(Gpr::kRax), 0x1122334455663A85ull);
  }
  {
    Machine m;
    m.put(layout::kData, 0xFFFFFFFF, 4);
    runOne(m, CpuMode::kLong64, "dd 3e", [](CpuState& s) { s.fpu.fsw = 0x4100; });  // fnstsw [rsi]
    EXPECT_EQ(m.get(layout::kData, 4), 0xFFFF4100u);
  }
  {
    Machine m;
    runOne(m, CpuMode::kLong64, "d9 3e", [](CpuState& s) { s.fpu.fcw = 0x0F7F; });  // fnstcw [rsi]
    EXPECT_EQ(m.get(layout::kData, 2), 0x0F7Fu);
  }
}

TEST(FpuX87, FldcwSetsSummaryForUnmaskedPendingExceptions) {
  Machine m;
  m.put(layout::kData, 0x027E, 2);                                                // IM cleared
  runOne(m, CpuMode::kLong64, "d9 2e", [](CpuState& s) { s.fpu.fsw = 0x0001; });  // fldcw [rsi]
  EXPECT_EQ(m.state().fpu.fcw, 0x027E);
  EXPECT_EQ(m.state().fpu.fsw, 0x8081);
  // FWAIT then delivers #MF (with CR0.NE set).
  Machine m2;
  const StepResult r = runOne(m2, CpuMode::kLong64, "9b", [](CpuState& s) {
    s.fpu.fsw = 0x8081;
    s.cr0 |= cr0::kNE;
  });
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 16);
}

TEST(FpuX87, Fnclex) {
  Machine m;
  runOne(m, CpuMode::kLong64, "db e2", [](CpuState& s) { s.fpu.fsw = 0xB8FF; });
  EXPECT_EQ(m.state().fpu.fsw, 0x3800);
}

TEST(FpuX87, Emms) {
  Machine m;
  runOne(m, CpuMode::kLong64, "0f 77", [](CpuState& s) { s.fpu.ftw = 0xFF; });
  EXPECT_EQ(m.state().fpu.ftw, 0);
}

// Fills the FXSAVE area with a pattern so untouched bytes are visible.
void fillArea(Machine& m, uint8_t b) {
  for (unsigned k = 0; k < 512; k += 8) m.put(layout::kData + k, 0x0101010101010101ull * b, 8);
}

void expectArea(Machine& m, const uint8_t* expected, unsigned written, uint8_t fill) {
  for (unsigned k = 0; k < 512; ++k) {
    const uint8_t got = uint8_t(m.get(layout::kData + k, 1));
    const uint8_t want = k < written ? expected[k] : fill;
    ASSERT_EQ(got, want) << "FXSAVE area byte " << k;
  }
}

TEST(FpuFxsaveHandler, Fxsave64WritesTheImage) {
  Machine m;
  const FpuState f = sampleFpu();
  fillArea(m, 0xCC);
  ASSERT_EQ(runOne(m, CpuMode::kLong64, "48 0f ae 06", [&](CpuState& s) { s.fpu = f; }).outcome,
            StepOutcome::kRetired);
  std::array<uint8_t, 512> img;
  fpu::fxsaveImage(f, fpu::FxsaveFormat::k64, 16, img);
  expectArea(m, img.data(), 416, 0xCC);
}

TEST(FpuFxsaveHandler, FxsaveWithoutRexWUses32BitPointers) {
  Machine m;
  FpuState f = sampleFpu();
  f.fcs = 0x1234;
  f.fds = 0x5678;
  fillArea(m, 0xCC);
  runOne(m, CpuMode::kLong64, "0f ae 06", [&](CpuState& s) { s.fpu = f; });
  std::array<uint8_t, 512> img;
  fpu::fxsaveImage(f, fpu::FxsaveFormat::k32, 16, img);
  expectArea(m, img.data(), 416, 0xCC);
  EXPECT_EQ(m.get(layout::kData + 12, 2), 0x1234u);  // FCS
}

TEST(FpuFxsaveHandler, FxsaveIn32BitModeSavesEightXmm) {
  Machine m;
  const FpuState f = sampleFpu();
  fillArea(m, 0xCC);
  ASSERT_EQ(runOne(m, CpuMode::kProtected32, "0f ae 06", [&](CpuState& s) { s.fpu = f; }).outcome,
            StepOutcome::kRetired);
  std::array<uint8_t, 512> img;
  fpu::fxsaveImage(f, fpu::FxsaveFormat::k32, 8, img);
  expectArea(m, img.data(), 288, 0xCC);
}

TEST(FpuFxsaveHandler, Fxrstor64RoundTrip) {
  Machine m;
  const FpuState f = sampleFpu();
  std::array<uint8_t, 512> img{};
  fpu::fxsaveImage(f, fpu::FxsaveFormat::k64, 16, img);
  for (unsigned k = 0; k < 512; k += 8) {
    uint64_t v;
    std::memcpy(&v, img.data() + k, 8);
    m.put(layout::kData + k, v, 8);
  }
  ASSERT_EQ(runOne(m, CpuMode::kLong64, "48 0f ae 0e", [](CpuState&) {}).outcome,
            StepOutcome::kRetired);
  EXPECT_EQ(m.state().fpu, f);
}

TEST(FpuFxsaveHandler, FxrstorRejectsReservedMxcsrBits) {
  Machine m;
  const FpuState f = sampleFpu();
  std::array<uint8_t, 512> img{};
  fpu::fxsaveImage(f, fpu::FxsaveFormat::k64, 16, img);
  const uint32_t bad = 0x1F80 | 0x40000;
  std::memcpy(img.data() + 24, &bad, 4);
  for (unsigned k = 0; k < 512; k += 8) {
    uint64_t v;
    std::memcpy(&v, img.data() + k, 8);
    m.put(layout::kData + k, v, 8);
  }
  const FpuState init;
  const StepResult r =
      runOne(m, CpuMode::kLong64, "48 0f ae 0e", [&](CpuState& s) { s.fpu = init; });
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 13);
  EXPECT_EQ(m.state().fpu, init) << "a faulting FXRSTOR changes nothing";
}

TEST(FpuMxcsr, LoadAndStore) {
  {
    Machine m;
    m.put(layout::kData, 0x9FC0, 4);  // FZ, DAZ, RC=0, all masked
    ASSERT_EQ(runOne(m, CpuMode::kLong64, "0f ae 16", [](CpuState&) {}).outcome,
              StepOutcome::kRetired);
    EXPECT_EQ(m.state().fpu.mxcsr, 0x9FC0u);
  }
  {
    Machine m;
    m.put(layout::kData, 0x10000 | 0x1F80, 4);
    const StepResult r = runOne(m, CpuMode::kLong64, "0f ae 16", [](CpuState&) {});
    EXPECT_EQ(r.outcome, StepOutcome::kException);
    EXPECT_EQ(int(r.vector), 13) << "reserved MXCSR bit";
  }
  {
    Machine m;
    runOne(m, CpuMode::kLong64, "0f ae 1e", [](CpuState& s) { s.fpu.mxcsr = 0x7F80; });
    EXPECT_EQ(m.get(layout::kData, 4), 0x7F80u);
  }
}

// x87 arithmetic's fault and stack rules (what the host comparison in
// x87_host_test.cc cannot show from user mode): #NM with CR0.EM/TS, #MF from
// a pending unmasked exception (CR0.NE) raised by the next waiting
// instruction with the state untouched, stack overflow and underflow with
// their masked and unmasked responses, FIP/FOP updates.

constexpr Float80 kOne{0x8000000000000000ull, 0x3FFF};
constexpr Float80 kIndefinite{0xC000000000000000ull, 0xFFFF};

TEST(X87Faults, NmWithEmOrTs) {
  for (const char* hex : {"d8 c1", "d9 e8", "dd 06", "d9 fe", "df 3e"}) {
    for (uint64_t bits : {cr0::kEM, cr0::kTS}) {
      Machine m;
      const StepResult r = runOne(m, CpuMode::kLong64, hex, [&](CpuState& s) { s.cr0 |= bits; });
      EXPECT_EQ(r.outcome, StepOutcome::kException) << hex;
      EXPECT_EQ(int(r.vector), 7) << hex;
    }
  }
}

TEST(X87Faults, PendingUnmaskedExceptionRaisesMfOnTheNextWaitingInstruction) {
  // fld1 with IE pending and unmasked: #MF, nothing pushed, pointers kept.
  Machine m;
  const StepResult r = runOne(m, CpuMode::kLong64, "d9 e8", [](CpuState& s) {
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
  EXPECT_EQ(runOne(m2, CpuMode::kLong64, "df e0",
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
  runOne(m, CpuMode::kLong64, "d8 f1", [](CpuState& s) {
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
  runOne(m, CpuMode::kLong64, "d9 e8", [](CpuState& s) { s.fpu.ftw = 0xFF; });  // fld1, all in use
  const FpuState& f = m.state().fpu;
  EXPECT_EQ(f.fsw, 7 << 11 | 0x0200 | 0x41) << "TOP 7, C1 = 1 (overflow), SF, IE";
  EXPECT_EQ(f.st[7], kIndefinite);
}

TEST(X87Faults, StackOverflowUnmaskedChangesNothingButFlags) {
  Machine m;
  runOne(m, CpuMode::kLong64, "d9 e8", [](CpuState& s) {
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
  runOne(m, CpuMode::kLong64, "d8 c1",
         [](CpuState& s) { s.fpu.fsw = 0x0200; });  // fadd st0, st1: empty
  const FpuState& f = m.state().fpu;
  EXPECT_EQ(f.fsw, 0x41) << "C1 = 0 (underflow), SF, IE";
  EXPECT_EQ(f.st[0], kIndefinite);
  EXPECT_EQ(f.ftw, 0x01);
  // fistp m16 of an empty ST0: the integer indefinite.
  Machine m2;
  m2.put(layout::kData, 0x1111, 2);
  runOne(m2, CpuMode::kLong64, "df 1e", [](CpuState&) {});
  EXPECT_EQ(m2.get(layout::kData, 2), 0x8000u);
}

TEST(X87Faults, PointersOfANonControlInstruction) {
  Machine m;
  runOne(m, CpuMode::kLong64, "dc 46 08", [](CpuState& s) {  // fadd qword [rsi+8]
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
