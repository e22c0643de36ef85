// The reserved-NOP/hint space 0F 18-0F 1F (PREFETCHh, NOP Ev, and on this
// model, which has no MPX, CET or CLDEMOTE, also BNDxx, ENDBR32/64, RDSSP and
// CLDEMOTE): each form retires as a NOP of the right length without touching
// its memory operand; and the microcode signature MSR a Linux kernel reads.
#include <gtest/gtest.h>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

constexpr uint64_t kCode = layout::kCode;
constexpr uint64_t kHandler = layout::kCode + 0x8000;

// The length of [prefixes] 0F op ModRM [SIB] [disp], by the ModRM rules of
// 32/64-bit addressing; the SIB byte used below has base 5 (disp32 when mod 0).
unsigned expectedLength(unsigned prefixes, uint8_t modrm) {
  const unsigned mod = modrm >> 6, rm = modrm & 7;
  unsigned n = prefixes + 3;
  if (mod == 3) return n;
  if (rm == 4) n += 1;  // SIB 0x25: no index, base 5
  if (mod == 1) n += 1;
  if (mod == 2) n += 4;
  if (mod == 0 && (rm == 5 || rm == 4)) n += 4;
  return n;
}

TEST(HintNop, EveryFormRetiresWithItsLengthAndNoAccess) {
  const std::vector<std::vector<uint8_t>> prefixSets = {{},     {0x66},       {0xF2},      {0xF3},
                                                        {0x48}, {0xF3, 0x48}, {0x66, 0x41}};
  unsigned checked = 0;
  for (const bool long64 : {true, false}) {
    Machine m;
    if (long64) {
      m.setupLong64(kCode);
      m.setAllIdt64(kHandler);
    } else {
      m.setupFlat32(kCode);
    }
    const CpuState start = m.state();
    for (const auto& prefixes : prefixSets) {
      if (!long64 && !prefixes.empty() && (prefixes.back() & 0xF0) == 0x40) continue;  // no REX
      for (unsigned op = 0x18; op <= 0x1F; ++op) {
        for (unsigned modrm = 0; modrm < 256; ++modrm) {
          std::vector<uint8_t> code = prefixes;
          code.insert(code.end(), {0x0F, static_cast<uint8_t>(op), static_cast<uint8_t>(modrm),
                                   0x25, 0x00, 0x00, 0x00, 0xC0, 0x90, 0x90});
          m.load(kCode, code);
          m.edit([&](CpuState& s) {
            s = start;
            for (int r = 0; r < 16; ++r) s.gpr[r] = 0xC0DE0000u + r * 0x1000;  // unmapped
          });
          m.env.mmioLog.clear();
          const CpuState before = m.state();
          const StepResult r = m.step();
          SCOPED_TRACE(testing::Message()
                       << (long64 ? "64-bit" : "32-bit") << " prefixes " << prefixes.size()
                       << " 0f " << std::hex << op << " " << modrm);
          ASSERT_EQ(r.outcome, StepOutcome::kRetired);
          ASSERT_EQ(m.state().rip - kCode, expectedLength(prefixes.size(), modrm));
          for (int g = 0; g < 16; ++g) ASSERT_EQ(m.state().gpr[g], before.gpr[g]) << "gpr " << g;
          ASSERT_EQ(m.state().rflags, before.rflags);
          ASSERT_TRUE(m.env.mmioLog.empty());
          ++checked;
        }
      }
    }
    EXPECT_TRUE(m.cpu->unimplementedLog().empty());
  }
  EXPECT_EQ(checked, (7u + 4u) * 8u * 256u);
}

TEST(HintNop, EndbrAndRdsspAreNopsWithoutCet) {
  Machine m;
  m.setupLong64(kCode);
  // endbr64; endbr32; rdsspq rax (f3 48 0f 1e c8); mov al,1
  m.loadHex(kCode, "f3 0f 1e fa f3 0f 1e fb f3 48 0f 1e c8 b0 01");
  m.edit([](CpuState& s) { s.reg(Gpr::kRax) = 0x1234; });
  ASSERT_EQ(m.run(3).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().rip, kCode + 13);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0x1234u);  // RDSSP leaves its destination alone
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0x1201u);
  EXPECT_TRUE(m.cpu->unimplementedLog().empty());
}

// IA32_BIOS_SIGN_ID (0x8b): the revision (0x21, the last public one for the
// model's family 6 model 0x3a stepping 9) in bits 63:32 whatever was written,
// as the SDM's update-signature sequence (WRMSR 0, CPUID 1, RDMSR) reads it.
TEST(Msr, MicrocodeSignatureFromTheModel) {
  Machine m;
  m.setupLong64(kCode);
  m.setAllIdt64(kHandler);
  // mov ecx,0x8b; xor eax,eax; xor edx,edx; wrmsr; mov eax,1; cpuid; mov ecx,0x8b; rdmsr
  m.loadHex(kCode, "b9 8b 00 00 00 31 c0 31 d2 0f 30 b8 01 00 00 00 0f a2 b9 8b 00 00 00 0f 32");
  ASSERT_EQ(m.run(8).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRdx), 0x21u);  // the revision, bits 63:32
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0u);
  EXPECT_EQ(m.state().rip, kCode + 25);
}

// IA32_PLATFORM_ID (0x17): readable (platform 0), and read-only.
TEST(Msr, PlatformIdReadsAndRefusesWrites) {
  Machine m;
  m.setupLong64(kCode);
  m.setAllIdt64(kHandler);
  m.loadHex(kHandler, "f4");
  // mov ecx,0x17; mov eax,-1; mov edx,-1; rdmsr; wrmsr
  m.loadHex(kCode, "b9 17 00 00 00 b8 ff ff ff ff ba ff ff ff ff 0f 32 0f 30");
  ASSERT_EQ(m.run(4).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0u);
  EXPECT_EQ(m.state().reg(Gpr::kRdx), 0u);
  const StepResult r = m.step();
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 13);
}

}  // namespace
}  // namespace ttvm::cputest
