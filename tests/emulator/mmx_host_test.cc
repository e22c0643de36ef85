// The MMX forms (fpu/mmx.h, fpu/mmx.cc, the MMX paths of fpu/sse.cc) against
// the HOST CPU through the vector harness (vector_host_support.h): every
// form, register and memory variants, on integer operands with edge bytes
// and small shift counts mixed in. Plus the rules the host cannot show from
// user mode: #UD with CR0.EM (and not for CR4.OSFXSR), #NM with CR0.TS, #MF
// for a pending x87 exception with CR0.NE, the switch to MMX mode, MASKMOVQ
// and MASKMOVDQU (they write at [RDI], which the harness cannot give them),
// and CPUID advertising MMX.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "cpu_harness.h"
#include "vector_host_support.h"

namespace ttvm::cputest {
namespace {

std::vector<VectorForm> forms() {
  std::vector<VectorForm> f;
  auto add = [&](std::string name, std::vector<uint8_t> bytes) {
    f.push_back({std::move(name), std::move(bytes), Lane::kInteger});
  };
  for (const IntegerOpcode& o : kMmxAndSse2IntegerOps) {
    add(std::string(o.name) + " mm0, mm1", {0x0F, o.opcode, 0xC1});
    add(std::string(o.name) + " mm0, [rsi]", {0x0F, o.opcode, 0x06});
  }
  for (uint8_t imm :
       {0x00, 0x01, 0x07, 0x08, 0x0F, 0x10, 0x1B, 0x1F, 0x20, 0x3F, 0x40, 0x4E, 0xB1, 0xE4, 0xFF}) {
    const std::string s = ", " + std::to_string(imm);
    add("psllw mm0" + s, {0x0F, 0x71, 0xF0, imm});
    add("psrlw mm0" + s, {0x0F, 0x71, 0xD0, imm});
    add("psraw mm0" + s, {0x0F, 0x71, 0xE0, imm});
    add("pslld mm0" + s, {0x0F, 0x72, 0xF0, imm});
    add("psrld mm0" + s, {0x0F, 0x72, 0xD0, imm});
    add("psrad mm0" + s, {0x0F, 0x72, 0xE0, imm});
    add("psllq mm0" + s, {0x0F, 0x73, 0xF0, imm});
    add("psrlq mm0" + s, {0x0F, 0x73, 0xD0, imm});
    add("pshufw mm0, mm1" + s, {0x0F, 0x70, 0xC1, imm});
    add("pshufw mm0, [rsi]" + s, {0x0F, 0x70, 0x06, imm});
    add("pextrw eax, mm1" + s, {0x0F, 0xC5, 0xC1, imm});
    add("pinsrw mm0, eax" + s, {0x0F, 0xC4, 0xC0, imm});
    add("pinsrw mm0, [rsi]" + s, {0x0F, 0xC4, 0x06, imm});
  }
  add("pmovmskb eax, mm1", {0x0F, 0xD7, 0xC1});
  add("movq mm0, mm1", {0x0F, 0x6F, 0xC1});
  add("movq mm0, [rsi]", {0x0F, 0x6F, 0x06});
  add("movq [rsi], mm1", {0x0F, 0x7F, 0x0E});
  add("movd mm0, eax", {0x0F, 0x6E, 0xC0});
  add("movd eax, mm1", {0x0F, 0x7E, 0xC8});
  add("movq mm0, rax", {0x48, 0x0F, 0x6E, 0xC0});
  add("movq rax, mm1", {0x48, 0x0F, 0x7E, 0xC8});
  add("movntq [rsi], mm1", {0x0F, 0xE7, 0x0E});
  add("movq2dq xmm0, mm1", {0xF3, 0x0F, 0xD6, 0xC1});
  add("movdq2q mm0, xmm1", {0xF2, 0x0F, 0xD6, 0xC1});
  return f;
}

TEST(MmxHost, EveryFormMatchesHost) {
  VectorStats stats;
  const int cases = caseCount("TTVM_MMX_CASES", 300);
  int formsChecked = 0;
  for (const VectorForm& form : forms()) {
    SCOPED_TRACE(form.name);
    checkVectorForm(form, cases, stats);
    if (HasFatalFailure()) return;
    ++formsChecked;
  }
  std::printf("[mmx] %d forms x %d cases match the host\n", formsChecked, cases);
  EXPECT_EQ(stats.retired, formsChecked * cases);
}

constexpr uint64_t kFaultHandler = layout::kCode + 0x8000;

struct StepAndState {
  StepResult result;
  CpuState state;
  Machine* machine;
};
StepAndState runOne(Machine& m, const std::string& hex,
                    const std::function<void(CpuState&)>& edit) {
  const uint64_t code = codeAddress(CpuMode::kLong64);
  m.setupLong64(code);
  m.loadHex(kFaultHandler, "f4");
  m.setAllIdt64(kFaultHandler);
  m.loadHex(code, hex);
  m.edit([&](CpuState& s) {
    s.reg(Gpr::kRsi) = layout::kData;
    s.reg(Gpr::kRdi) = layout::kData + 0x100;
    edit(s);
  });
  const StepResult r = m.step();
  return {r, m.state(), &m};
}
int vectorOf(const std::string& hex, const std::function<void(CpuState&)>& edit) {
  Machine m;
  const StepAndState r = runOne(m, hex, edit);
  return r.result.outcome == StepOutcome::kException ? int(r.result.vector) : -1;
}

TEST(MmxRules, FaultsAndModeSwitch) {
  for (const char* hex :
       {"0f fc c1" /* paddb */, "0f 71 f0 03" /* psllw imm */, "0f 70 c1 1b" /* pshufw */,
        "0f c5 c1 01" /* pextrw */, "0f 6e c0" /* movd mm0, eax */, "0f e7 0e" /* movntq */}) {
    EXPECT_EQ(vectorOf(hex, [](CpuState&) {}), -1) << hex;
    EXPECT_EQ(vectorOf(hex, [](CpuState& s) { s.cr4 &= ~cr4::kOSFXSR; }), -1) << hex;
    EXPECT_EQ(vectorOf(hex, [](CpuState& s) { s.cr0 |= cr0::kEM; }), 6) << hex;
    EXPECT_EQ(vectorOf(hex, [](CpuState& s) { s.cr0 |= cr0::kTS; }), 7) << hex;
    EXPECT_EQ(vectorOf(hex,
                       [](CpuState& s) {
                         s.fpu.fsw = 0x81;  // IE pending, ES
                         s.cr0 |= cr0::kNE;
                       }),
              16)
        << hex;
    EXPECT_EQ(vectorOf(hex, [](CpuState& s) { s.fpu.fsw = 0x81; }), -1) << hex << " without NE";
  }
  // MOVQ2DQ is SSE2: CR4.OSFXSR is checked too.
  EXPECT_EQ(vectorOf("f3 0f d6 c1", [](CpuState& s) { s.cr4 &= ~cr4::kOSFXSR; }), 6);

  Machine m;
  const StepAndState r = runOne(m, "0f fc c1", [](CpuState& s) {  // paddb mm0, mm1
    s.fpu.fsw = 3u << 11;
    s.fpu.ftw = 0x0F;
    s.fpu.st[0] = Float80{0x0102030405060708, 0x1234};
    s.fpu.st[1] = Float80{0x1010101010101010, 0x4321};
  });
  ASSERT_EQ(r.result.outcome, StepOutcome::kRetired);
  EXPECT_EQ((r.state.fpu.fsw >> 11) & 7, 0) << "TOP";
  EXPECT_EQ(r.state.fpu.ftw, 0xFF);
  EXPECT_EQ(r.state.fpu.st[0], (Float80{0x1112131415161718, 0xFFFF}));
  EXPECT_EQ(r.state.fpu.st[1], (Float80{0x1010101010101010, 0x4321})) << "source untouched";
  // A faulting MMX instruction leaves the x87 state alone.
  Machine m2;
  const StepAndState f = runOne(m2, "0f fc 06", [](CpuState& s) {  // paddb mm0, [rsi]
    s.fpu.fsw = 3u << 11;
    s.fpu.ftw = 0x0F;
    s.reg(Gpr::kRsi) = 0x8000000000000000ull;  // non-canonical: #GP
  });
  EXPECT_EQ(int(f.result.vector), 13);
  EXPECT_EQ((f.state.fpu.fsw >> 11) & 7, 3);
  EXPECT_EQ(f.state.fpu.ftw, 0x0F);
}

TEST(MmxRules, MaskedStores) {
  // maskmovq mm0, mm1: bytes of mm0 where mm1's byte has its top bit set.
  Machine m;
  m.put(layout::kData + 0x100, 0x1111111111111111ull, 8);
  StepAndState r = runOne(m, "0f f7 c1", [](CpuState& s) {
    s.fpu.st[0] = Float80{0x8877665544332211, 0};
    s.fpu.st[1] = Float80{0x80007F00FF000180, 0};
  });
  ASSERT_EQ(r.result.outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.get(layout::kData + 0x100, 8), 0x8811111144111111ull);
  EXPECT_EQ(r.state.fpu.ftw, 0xFF);
  // maskmovdqu xmm0, xmm1 with a 32-bit address size (67h): EDI, not RDI.
  Machine m2;
  m2.put(layout::kData + 0x100, 0, 8);
  m2.put(layout::kData + 0x108, 0, 8);
  r = runOne(m2, "67 66 0f f7 c1", [](CpuState& s) {
    s.reg(Gpr::kRdi) = 0xFFFFFFFF00000000ull | (layout::kData + 0x100);
    s.fpu.xmm[0] = Vec128{{0x0807060504030201, 0x100F0E0D0C0B0A09}};
    s.fpu.xmm[1] = Vec128{{0x00000000000000FF, 0x8000000000000000}};
  });
  ASSERT_EQ(r.result.outcome, StepOutcome::kRetired);
  EXPECT_EQ(m2.get(layout::kData + 0x100, 8), 0x01u);
  EXPECT_EQ(m2.get(layout::kData + 0x108, 8), 0x1000000000000000ull);
  EXPECT_EQ(vectorOf("66 0f f7 c1", [](CpuState& s) { s.cr4 &= ~cr4::kOSFXSR; }), 6);
}

TEST(MmxRules, CpuidAdvertisesMmx) {
  const CpuModel model = CpuModel::ttvmDefault();
  bool found = false;
  for (const CpuidLeaf& l : model.cpuid) {
    if (l.leaf != 1) continue;
    found = true;
    EXPECT_TRUE(l.edx & (1u << 23)) << "MMX";
    EXPECT_TRUE(l.edx & (1u << 25)) << "SSE";
    EXPECT_TRUE(l.edx & (1u << 26)) << "SSE2";
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace ttvm::cputest
