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

#include "diff_driver_support.h"
#include "diff_emulator_runner_support.h"
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

#else
TEST(DiffUnicorn, RequiresUnicorn) {
  GTEST_SKIP() << "built without libunicorn-dev (scripts/setup.sh installs it)";
}
#endif

}  // namespace
}  // namespace ttvm::difftest
