// Differential tests of 16- and 32-bit code (real mode and 32-bit protected
// flat mode), which the host cannot run natively: ttvm's emulator against
// Unicorn. Includes what only exists outside 64-bit mode: BCD adjustment
// (DAA/DAS/AAA/AAS/AAM/AAD), PUSHA/POPA, 16-bit addressing forms, and
// LOOP/JCXZ with 16- and 32-bit counters. Unicorn's known flaws are excluded
// case by case in diff_known_bugs_support.cc (with the SDM reference) and
// counted in the output.
//
// 50,000 sequences per mode in CI; TTVM_DIFF_SEQUENCES for more.
#include <gtest/gtest.h>

#include <memory>

#include "diff_driver_support.h"
#include "diff_emulator_runner_support.h"
#include "diff_host_runner_support.h"
#include "diff_known_bugs_support.h"
#include "diff_unicorn_runner_support.h"

namespace ttvm::difftest {
namespace {

#if TTVM_DIFF_HAVE_UNICORN

constexpr uint64_t kCiSequences = 50'000;

void runMode(CodeMode mode) {
  DiffConfig c;
  c.gen.mode = mode;
  applyFeatures(c.gen,
                intersect(UnicornRunner::unicornFeatures(), EmulatorRunner::modelFeatures()));
  // Unicorn's EFLAGS image is not a reliable oracle for the system flags;
  // compare the arithmetic flags and DF.
  c.compare.flagMask = flags::kArith | flags::kDF;
  c.compare.xmmCount = 8;
  c.gen.sseFp = SseFp::kNoNanChoice;
  // Unicorn is the reference here; a known Unicorn flaw explains a difference.
  c.knownOracleBug = unicornKnownBug;
  applyEnvironment(c, kCiSequences);
  UnicornRunner uc(mode);
  EmulatorRunner emu(mode);
  DiffSummary s = runDifferential(c, uc, emu);
  std::printf("%s: %s\n", toString(mode), s.summaryLine().c_str());
  if (!s.report.empty()) std::printf("%s", s.report.c_str());
  EXPECT_EQ(s.harnessErrors, 0u) << s.report;
  EXPECT_EQ(s.mismatches, 0u) << s.summaryLine();
}

TEST(DiffUnicorn, EmulatorMatchesUnicornReal16) {
  runMode(CodeMode::kReal16);
}
TEST(DiffUnicorn, EmulatorMatchesUnicornProtected32) {
  runMode(CodeMode::kProtected32);
}

// SALC (D6), which the random generator does not emit: each CF in each mode,
// the emulator against Unicorn, and against the host CPU where it can run
// 32-bit code.
TEST(DiffUnicorn, SalcMatchesTheOracles) {
  for (CodeMode mode : {CodeMode::kReal16, CodeMode::kProtected32}) {
    UnicornRunner uc(mode);
    EmulatorRunner emu(mode);
    std::unique_ptr<HostRunner> host;
    if (mode == CodeMode::kProtected32 && HostRunner::available(mode).ok())
      host = std::make_unique<HostRunner>(mode);
    for (const std::vector<uint8_t>& setCarry : {std::vector<uint8_t>{0xF8}, {0xF9}}) {
      TestCase tc;
      tc.program.mode = mode;
      for (const std::vector<uint8_t>& b : {setCarry, std::vector<uint8_t>{0xD6}}) {
        Unit u;
        Insn in;
        in.raw = b;
        u.insns.push_back(in);
        tc.program.units.push_back(u);
      }
      tc.initial.gpr[0] = 0x5A5A5A5A;
      tc.initial.gpr[4] = layoutFor(mode).data + kInitialStackOffset;
      auto enc = encode(tc.program, layoutFor(mode).code);
      ASSERT_TRUE(enc.ok()) << enc.error().message;
      auto ref = uc.run(tc, *enc);
      auto got = emu.run(tc, *enc);
      ASSERT_TRUE(ref.ok()) << ref.error().message;
      ASSERT_TRUE(got.ok()) << got.error().message;
      EXPECT_FALSE(got->faulted) << toString(mode);
      EXPECT_EQ(got->state.gpr[0] & 0xFFFFFFFF, setCarry[0] == 0xF9 ? 0x5A5A5AFFu : 0x5A5A5A00u);
      CompareOptions co;
      co.flagMask = flags::kArith | flags::kDF;
      co.xmmCount = 8;
      EXPECT_TRUE(compareOutcomes(mode, *enc, *ref, *got, co).empty()) << toString(mode);
      if (host) {
        auto native = host->run(tc, *enc);
        ASSERT_TRUE(native.ok()) << native.error().message;
        EXPECT_TRUE(compareOutcomes(mode, *enc, *native, *got, co).empty()) << "host";
      }
    }
  }
}

#else
TEST(DiffUnicorn, RequiresUnicorn) {
  GTEST_SKIP() << "built without libunicorn-dev (scripts/setup.sh installs it)";
}
#endif

}  // namespace
}  // namespace ttvm::difftest
