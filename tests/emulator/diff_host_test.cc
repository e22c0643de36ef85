// Differential tests against the host CPU (64-bit user-mode code):
//  - DiffHarness.HostMatchesUnicorn64 validates the generator and the two
//    oracles against each other (a disagreement here is a harness bug or a
//    documented Unicorn flaw, never an emulator bug).
//  - DiffHost.EmulatorMatchesHost64 runs ttvm's emulator against the host.
// Counts: 100,000 sequences each in CI; TTVM_DIFF_SEQUENCES=10000000 for a
// long run (see diff_driver_support.h for the other variables).
#include <gtest/gtest.h>

#include "diff_driver_support.h"
#include "diff_emulator_runner_support.h"
#include "diff_host_runner_support.h"
#include "diff_known_bugs_support.h"
#include "diff_unicorn_runner_support.h"

namespace ttvm::difftest {
namespace {

constexpr uint64_t kCiSequences = 100'000;

void expectNoMismatch(const DiffSummary& s) {
  std::printf("%s\n", s.summaryLine().c_str());
  if (!s.excludedReasons.empty() || !s.report.empty()) std::printf("%s", s.report.c_str());
  EXPECT_EQ(s.harnessErrors, 0u) << s.report;
  EXPECT_EQ(s.mismatches, 0u) << s.summaryLine();
  EXPECT_GT(s.run, 0u);
}

#if TTVM_DIFF_HAVE_UNICORN
TEST(DiffHarness, HostMatchesUnicorn64) {
  DiffConfig c;
  c.gen.mode = CodeMode::kLong64;
  applyFeatures(c.gen, intersect(hostFeatures(), UnicornRunner::unicornFeatures()));
  // Unicorn's RFLAGS image does not keep IF (no interrupts in Unicorn): compare
  // the arithmetic flags and DF.
  c.compare.flagMask = flags::kArith | flags::kDF;
  c.knownOracleBug = unicornKnownBug;
  applyEnvironment(c, kCiSequences);
  HostRunner host;
  UnicornRunner uc(CodeMode::kLong64);
  expectNoMismatch(runDifferential(c, host, uc));
}
#endif

TEST(DiffHost, EmulatorMatchesHost64) {
  DiffConfig c;
  c.gen.mode = CodeMode::kLong64;
  applyFeatures(c.gen, intersect(hostFeatures(), EmulatorRunner::modelFeatures()));
  applyEnvironment(c, kCiSequences);
  HostRunner host;
  EmulatorRunner emu(CodeMode::kLong64);
  expectNoMismatch(runDifferential(c, host, emu));
}

}  // namespace
}  // namespace ttvm::difftest
