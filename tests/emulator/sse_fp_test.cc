// fpu/sse_fp.h (the SIMD exception rules and the unbounded-exponent
// exactness used for unmasked overflow/underflow) directly, and the fault
// rules of the SSE floating-point instructions through the CPU: #XM with
// CR4.OSXMMEXCPT, else #UD, nothing written; CR0/CR4 and alignment checks.
// The host comparison of every form is in sse_fp_host_test.cc.
#include <gtest/gtest.h>

#include <bit>
#include <functional>

#include "cpu_harness.h"
#include "fpu/sse_fp.h"

namespace ttvm::cputest {
namespace {

using namespace ttvm::fpu;

TEST(SseFpRules, PreComputationExceptionHidesPostComputationFlags) {
  // IE unmasked in one lane, overflow (masked) in another: only IE is set.
  const uint32_t guest = 0x1F80 & ~(1u << 7);
  const SimdOutcome o = resolveSimd(guest, mxcsr::kIE, mxcsr::kOE | mxcsr::kPE);
  EXPECT_TRUE(o.fault);
  EXPECT_EQ(o.mxcsr, guest | mxcsr::kIE);
}

TEST(SseFpRules, MaskedPreFlagsJoinAnUnmaskedPostException) {
  const uint32_t guest = 0x1F80 & ~(1u << 10);  // OM clear
  const SimdOutcome o = resolveSimd(guest, mxcsr::kDE, mxcsr::kOE);
  EXPECT_TRUE(o.fault);
  EXPECT_EQ(o.mxcsr, guest | mxcsr::kDE | mxcsr::kOE);
  const SimdOutcome masked = resolveSimd(0x1F80, mxcsr::kDE, mxcsr::kOE | mxcsr::kPE);
  EXPECT_FALSE(masked.fault);
  EXPECT_EQ(masked.mxcsr, 0x1F80u | 0x2Au);
}

TEST(SseFpRules, UnmaskedOverflowAndUnderflowReportPeOnlyWhenInexactUnbounded) {
  const uint32_t om = 0x1F80 & ~(1u << 10), um = 0x1F80 & ~(1u << 11);
  EXPECT_EQ(laneFlags(om, mxcsr::kOE | mxcsr::kPE, false, false).post, mxcsr::kOE);
  EXPECT_EQ(laneFlags(om, mxcsr::kOE | mxcsr::kPE, false, true).post, mxcsr::kOE | mxcsr::kPE);
  EXPECT_EQ(laneFlags(0x1F80, mxcsr::kOE | mxcsr::kPE, false, false).post,
            mxcsr::kOE | mxcsr::kPE);  // masked: the masked response's flags
  // An exact tiny result: no flag when masked, UE when unmasked.
  EXPECT_EQ(laneFlags(0x1F80, 0, true, false).post, 0u);
  EXPECT_EQ(laneFlags(um, 0, true, false).post, mxcsr::kUE);
  EXPECT_TRUE(needsUnboundedInexact(um, 0, true));
  EXPECT_FALSE(needsUnboundedInexact(0x1F80, mxcsr::kOE, true));
}

uint32_t f32(float v) {
  return std::bit_cast<uint32_t>(v);
}
uint64_t f64(double v) {
  return std::bit_cast<uint64_t>(v);
}

TEST(SseFpRules, UnboundedExactness) {
  // FLT_MAX + FLT_MAX = 2^128 (1 - 2^-24) * 2: exact; + 1 ulp-ish small value: not.
  EXPECT_FALSE(unboundedInexactSum(0x7F7FFFFFu, 0x7F7FFFFFu, false, false));
  EXPECT_TRUE(unboundedInexactSum(0x7F7FFFFFu, 0x5E80000Au, false, false));
  EXPECT_FALSE(unboundedInexactSum(f32(1.0f), f32(-1.0f), false, false));  // exact zero
  // Two denormals: the difference is exact whatever their order.
  EXPECT_FALSE(unboundedInexactSum(uint64_t(0xC7311B), uint64_t(0x9235946B), true, false));
  EXPECT_TRUE(unboundedInexactSum(f64(1.0), f64(0x1p-60), false, false));
  EXPECT_FALSE(unboundedInexactSum(f64(1.0), f64(0x1p-52), false, false));
  // Products and quotients: significands only.
  EXPECT_FALSE(unboundedInexactProduct(f64(0x1p-1022), f64(0.5 * (1 + 0x1p-52)), false));
  EXPECT_TRUE(unboundedInexactProduct(f64(1 + 0x1p-52), f64(1 + 0x1p-52), false));
  EXPECT_FALSE(unboundedInexactQuotient(f32(3.0f), f32(1.5f), false));
  EXPECT_TRUE(unboundedInexactQuotient(f32(1.0f), f32(3.0f), false));
  EXPECT_FALSE(unboundedInexactQuotient(f32(0x1p-140f), f32(4.0f), false));
  // DAZ: a denormal operand is zero, and zero operands are exact.
  EXPECT_TRUE(unboundedInexactProduct(uint32_t(0x7FFFFF), f32(1.0f / 3), false));
  EXPECT_FALSE(unboundedInexactProduct(uint32_t(0x7FFFFF), f32(1.0f / 3), true));
  EXPECT_FALSE(unboundedInexactNarrowing(f64(1.5), false));
  EXPECT_TRUE(unboundedInexactNarrowing(f64(1 + 0x1p-30), false));
}

// ------------------------------------------------------------ through the CPU

constexpr uint64_t kFaultHandler = layout::kCode + 0x8000;

struct StepAndState {
  StepResult result;
  CpuState state;
};
StepAndState runOne(const std::string& hex, const std::function<void(CpuState&)>& edit) {
  Machine m;
  const uint64_t code = codeAddress(CpuMode::kLong64);
  m.setupLong64(code);
  m.loadHex(kFaultHandler, "f4");
  m.setAllIdt64(kFaultHandler);
  m.loadHex(code, hex);
  m.put(layout::kData, f32(1.0f), 4);
  m.edit([&](CpuState& s) {
    s.reg(Gpr::kRsi) = layout::kData;
    s.fpu.xmm[0] = Vec128{{f32(2.0f) | uint64_t(f32(4.0f)) << 32, 0x1234}};
    s.fpu.xmm[1] = Vec128{{0, 0}};  // +0.0 lanes
    edit(s);
  });
  return {m.step(), m.state()};
}

TEST(SseFpFaults, DivideByZeroUnmasked) {
  const Vec128 before{{f32(2.0f) | uint64_t(f32(4.0f)) << 32, 0x1234}};
  const uint32_t zmClear = 0x1F80 & ~(1u << 9);
  // divss xmm0, xmm1 with ZM clear: #XM with OSXMMEXCPT, #UD without.
  StepAndState r = runOne("f3 0f 5e c1", [&](CpuState& s) {
    s.fpu.mxcsr = zmClear;
    s.cr4 |= cr4::kOSXMMEXCPT;
  });
  EXPECT_EQ(r.result.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.result.vector), 19);
  EXPECT_EQ(r.state.fpu.mxcsr, zmClear | mxcsr::kZE);
  EXPECT_EQ(r.state.fpu.xmm[0], before) << "destination written on #XM";
  r = runOne("f3 0f 5e c1", [&](CpuState& s) { s.fpu.mxcsr = zmClear; });
  EXPECT_EQ(int(r.result.vector), 6);
  EXPECT_EQ(r.state.fpu.mxcsr, zmClear | mxcsr::kZE);
  EXPECT_EQ(r.state.fpu.xmm[0], before);
  // Masked: +inf in lane 0, ZE set, the rest kept.
  r = runOne("f3 0f 5e c1", [&](CpuState& s) { s.fpu.mxcsr = 0x1F80; });
  EXPECT_EQ(r.result.outcome, StepOutcome::kRetired);
  EXPECT_EQ(r.state.fpu.mxcsr, 0x1F80u | mxcsr::kZE);
  EXPECT_EQ(r.state.fpu.xmm[0], (Vec128{{0x7F800000u | uint64_t(f32(4.0f)) << 32, 0x1234}}));
}

TEST(SseFpFaults, ControlRegistersAndAlignment) {
  auto faultOf = [](const std::string& hex, const std::function<void(CpuState&)>& edit) {
    const StepAndState r = runOne(hex, edit);
    return r.result.outcome == StepOutcome::kException ? int(r.result.vector) : -1;
  };
  for (const char* hex :
       {"0f 58 c1" /* addps */, "f2 0f 51 c1" /* sqrtsd */, "66 0f 2f c1" /* comisd */,
        "f3 0f 2a c0" /* cvtsi2ss */, "f2 0f 2c c1" /* cvttsd2si */, "0f c2 c1 01" /* cmpltps */,
        "0f 53 c1" /* rcpps */, "0f 2a c1" /* cvtpi2ps xmm0, mm1 */}) {
    EXPECT_EQ(faultOf(hex, [](CpuState& s) { s.cr0 |= cr0::kEM; }), 6) << hex;
    EXPECT_EQ(faultOf(hex, [](CpuState& s) { s.cr4 &= ~cr4::kOSFXSR; }), 6) << hex;
    EXPECT_EQ(faultOf(hex, [](CpuState& s) { s.cr0 |= cr0::kTS; }), 7) << hex;
    EXPECT_EQ(faultOf(hex, [](CpuState&) {}), -1) << hex;
  }
  auto misaligned = [](CpuState& s) { s.reg(Gpr::kRsi) = layout::kData + 4; };
  EXPECT_EQ(faultOf("0f 58 06", misaligned), 13) << "addps m128";
  EXPECT_EQ(faultOf("66 0f 5a 06", misaligned), 13) << "cvtpd2ps m128";
  EXPECT_EQ(faultOf("f3 0f 58 06", misaligned), -1) << "addss m32";
  EXPECT_EQ(faultOf("0f 5a 06", misaligned), -1) << "cvtps2pd m64";
  // A pending unmasked x87 exception (FSW.ES) with CR0.NE: #MF for the MMX forms only.
  auto pending = [](CpuState& s) {
    s.fpu.fsw = 0x81;
    s.cr0 |= cr0::kNE;
  };
  EXPECT_EQ(faultOf("0f 2a c1", pending), 16) << "cvtpi2ps xmm0, mm1";
  EXPECT_EQ(faultOf("0f 2a 06", pending), -1) << "cvtpi2ps xmm0, m64";
  EXPECT_EQ(faultOf("0f 58 c1", pending), -1) << "addps";
}

TEST(SseFpFaults, MmxConversionsSwitchToMmxMode) {
  const StepAndState r = runOne("0f 2d c1", [](CpuState& s) {  // cvtps2pi mm0, xmm1
    s.fpu.fsw = 5u << 11;                                      // TOP = 5
    s.fpu.ftw = 0x01;
  });
  EXPECT_EQ(r.result.outcome, StepOutcome::kRetired);
  EXPECT_EQ((r.state.fpu.fsw >> 11) & 7, 0);
  EXPECT_EQ(r.state.fpu.ftw, 0xFF);
  EXPECT_EQ(r.state.fpu.st[0], (Float80{0, 0xFFFF}));
  // With a memory source, CVTPI2PS/CVTPI2PD leave the x87 state alone (as
  // measured on the host: TOP stays where FLD1 put it).
  for (const char* hex : {"0f 2a 06", "66 0f 2a 06"}) {
    const StepAndState m = runOne(hex, [](CpuState& s) {
      s.fpu.fsw = 5u << 11;
      s.fpu.ftw = 0x20;
    });
    EXPECT_EQ(m.result.outcome, StepOutcome::kRetired) << hex;
    EXPECT_EQ((m.state.fpu.fsw >> 11) & 7, 5) << hex;
    EXPECT_EQ(m.state.fpu.ftw, 0x20) << hex;
  }
}

}  // namespace
}  // namespace ttvm::cputest
