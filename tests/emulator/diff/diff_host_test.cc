// Differential tests against the host CPU (64-bit user-mode code):
//  - DiffHarness.HostMatchesUnicorn64 validates the generator and the two
//    oracles against each other (a disagreement here is a harness bug or a
//    documented Unicorn flaw, never an emulator bug).
//  - DiffHost.EmulatorMatchesHost64 runs ttvm's emulator against the host.
//  - DiffHarness.HostMatchesUnicorn32 / DiffHost.EmulatorMatchesHost32: the
//    same for 32-bit code, which the host runs in compatibility mode.
// Counts: 100,000 sequences per emulator test in CI (50,000 for the 32-bit
// harness check); TTVM_DIFF_SEQUENCES=10000000 for a long run (see
// diff_driver_support.h for the other variables).
#include <gtest/gtest.h>

#include <chrono>

#include "diff_driver_support.h"
#include "diff_emulator_runner_support.h"
#include "diff_host_runner_support.h"
#include "diff_known_bugs_support.h"
#include "diff_unicorn_runner_support.h"

namespace ttvm::difftest {
namespace {

constexpr uint64_t kCiSequences = 100'000;

// A program of hand-encoded instructions, one unit each.
TestCase rawCase(std::vector<std::vector<uint8_t>> insns) {
  TestCase tc;
  tc.program.mode = CodeMode::kLong64;
  for (auto& b : insns) {
    Unit u;
    Insn in;
    in.raw = std::move(b);
    u.insns.push_back(in);
    tc.program.units.push_back(u);
  }
  tc.initial.gpr[4] = layoutFor(CodeMode::kLong64).data + kInitialStackOffset;
  tc.initial.gpr[1] = 5;
  return tc;
}

// Each runner on its own against known answers, so that the differential
// tests cannot pass by two runners failing the same way.
void checkKnownAnswers(Runner& r) {
  const uint64_t code = layoutFor(CodeMode::kLong64).code;
  {
    // mov rax, 0x1234; add rax, rcx; mov [rsp-8], rax
    TestCase tc = rawCase(
        {{0x48, 0xC7, 0xC0, 0x34, 0x12, 0, 0}, {0x48, 0x01, 0xC8}, {0x48, 0x89, 0x44, 0x24, 0xF8}});
    auto enc = encode(tc.program, code);
    ASSERT_TRUE(enc.ok());
    auto o = r.run(tc, *enc);
    ASSERT_TRUE(o.ok()) << o.error().message;
    EXPECT_FALSE(o->faulted) << r.name();
    EXPECT_EQ(o->state.gpr[0], 0x1239u) << r.name();
    EXPECT_EQ(o->state.rip, code + enc->bytes.size()) << r.name();
    EXPECT_EQ(o->state.mem[kInitialStackOffset - 8], 0x39) << r.name();
    EXPECT_EQ(o->state.rflags & flags::kArith, flags::kPF) << r.name();
  }
  {
    // nop; ud2: #UD at the UD2, RIP pointing at it.
    TestCase tc = rawCase({{0x90}, {0x0F, 0x0B}});
    auto enc = encode(tc.program, code);
    ASSERT_TRUE(enc.ok());
    auto o = r.run(tc, *enc);
    ASSERT_TRUE(o.ok()) << o.error().message;
    EXPECT_TRUE(o->faulted) << r.name();
    EXPECT_EQ(o->vector, 6) << r.name();
    EXPECT_EQ(o->state.rip, code + 1) << r.name();
  }
  {
    // xor edx, edx; div rdx: #DE with RDX = 0 visible.
    TestCase tc = rawCase({{0x31, 0xD2}, {0x48, 0xF7, 0xF2}});
    auto enc = encode(tc.program, code);
    ASSERT_TRUE(enc.ok());
    auto o = r.run(tc, *enc);
    ASSERT_TRUE(o.ok()) << o.error().message;
    EXPECT_TRUE(o->faulted) << r.name();
    EXPECT_EQ(o->vector, 0) << r.name();
    EXPECT_EQ(o->state.rip, code + 2) << r.name();
  }
}

TEST(DiffHarness, HostRunnerKnownAnswers) {
  HostRunner host;
  checkKnownAnswers(host);
}

TEST(DiffHarness, HostRunnerSurvivesHangs) {
  HostRunner host;
  host.setTimeoutMs(300);
  const uint64_t code = layoutFor(CodeMode::kLong64).code;
  TestCase hang = rawCase({{0xEB, 0xFE}});  // jmp $
  auto enc = encode(hang.program, code);
  ASSERT_TRUE(enc.ok());
  auto o = host.run(hang, *enc);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message.find("timed out"), std::string::npos) << o.error().message;
  checkKnownAnswers(host);  // a fresh child takes over
}

// The probe behind HostRunner::available(kProtected32) on a code segment
// that cannot run anything (an LDT selector in a process without an LDT),
// as on a kernel without IA-32 emulation, whose 32-bit user CS is gone: it
// must say so at once, not leave every 32-bit case to kill its child.
TEST(DiffHarness, CompatProbeRefusesAMissingCodeSegment) {
  const auto t0 = std::chrono::steady_clock::now();
  Status bad = HostRunner::probeCompat(0x0F);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("cannot run 32-bit code"), std::string::npos)
      << bad.error().message;
  EXPECT_NE(bad.error().message.find("0xf"), std::string::npos) << bad.error().message;
  // The real segment: the probe agrees with whether 32-bit runs work here.
  Status real = HostRunner::probeCompat(HostRunner::kUserCs32);
  if (!real.ok()) GTEST_SKIP() << real.error().message;
  HostRunner host(CodeMode::kProtected32);
  TestCase tc = rawCase({{0x40}});  // inc eax
  tc.program.mode = CodeMode::kProtected32;
  tc.initial.gpr[4] = layoutFor(CodeMode::kProtected32).data + kInitialStackOffset;
  auto enc = encode(tc.program, layoutFor(CodeMode::kProtected32).code);
  ASSERT_TRUE(enc.ok());
  auto o = host.run(tc, *enc);
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_EQ(o->state.gpr[0], tc.initial.gpr[0] + 1);
}

#if TTVM_DIFF_HAVE_UNICORN
TEST(DiffHarness, UnicornRunnerKnownAnswers) {
  UnicornRunner uc(CodeMode::kLong64);
  checkKnownAnswers(uc);
}
#endif

TEST(DiffHarness, EmulatorRunnerKnownAnswers) {
  EmulatorRunner emu(CodeMode::kLong64);
  checkKnownAnswers(emu);
}

TEST(DiffHarness, GeneratorIsReproducibleAndValid) {
  GeneratorOptions g;
  for (CodeMode m : {CodeMode::kLong64, CodeMode::kProtected32, CodeMode::kReal16}) {
    g.mode = m;
    for (uint64_t i = 0; i < 200; ++i) {
      TestCase a = generateTestCase(g, sequenceSeed(7, i));
      TestCase b = generateTestCase(g, sequenceSeed(7, i));
      auto ea = encode(a.program, layoutFor(m).code);
      auto eb = encode(b.program, layoutFor(m).code);
      ASSERT_TRUE(ea.ok()) << ea.error().message;
      ASSERT_TRUE(eb.ok());
      EXPECT_EQ(ea->bytes, eb->bytes);
      EXPECT_EQ(a.initial.gpr, b.initial.gpr);
      EXPECT_GE(a.program.units.size(), static_cast<size_t>(g.minUnits));
    }
  }
}

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

#if TTVM_DIFF_HAVE_UNICORN
// The 32-bit generator and Unicorn's 32-bit mode against the host running
// the same code in compatibility mode: validates the oracle that
// diff_unicorn_test.cc uses (BCD, PUSHA/POPA, LOOP/JCXZ, 16-bit addressing).
TEST(DiffHarness, HostMatchesUnicorn32) {
  Status ok = HostRunner::available(CodeMode::kProtected32);
  if (!ok.ok()) GTEST_SKIP() << ok.error().message;
  DiffConfig c;
  c.gen.mode = CodeMode::kProtected32;
  applyFeatures(c.gen, intersect(hostFeatures(), UnicornRunner::unicornFeatures()));
  c.compare.flagMask = flags::kArith | flags::kDF;
  c.compare.xmmCount = 8;
  c.knownOracleBug = unicornKnownBug;
  applyEnvironment(c, kCiSequences / 2);
  HostRunner host(CodeMode::kProtected32);
  UnicornRunner uc(CodeMode::kProtected32);
  expectNoMismatch(runDifferential(c, host, uc));
}
#endif

// 32-bit protected-mode code: the emulator (CPL 0, flat) against the host in
// compatibility mode (CPL 3, flat); the generated instructions behave the
// same at both privilege levels.
TEST(DiffHost, EmulatorMatchesHost32) {
  Status ok = HostRunner::available(CodeMode::kProtected32);
  if (!ok.ok()) GTEST_SKIP() << ok.error().message;
  DiffConfig c;
  c.gen.mode = CodeMode::kProtected32;
  applyFeatures(c.gen, intersect(hostFeatures(), EmulatorRunner::modelFeatures()));
  c.gen.misalignedSse = true;
  c.gen.sseFp = SseFp::kAll;
  c.compare.xmmCount = 8;
  applyEnvironment(c, kCiSequences);
  HostRunner host(CodeMode::kProtected32);
  EmulatorRunner emu(CodeMode::kProtected32);
  expectNoMismatch(runDifferential(c, host, emu));
}

TEST(DiffHost, EmulatorMatchesHost64) {
  DiffConfig c;
  c.gen.mode = CodeMode::kLong64;
  applyFeatures(c.gen, intersect(hostFeatures(), EmulatorRunner::modelFeatures()));
  c.gen.misalignedSse = true;
  c.gen.sseFp = SseFp::kAll;
  applyEnvironment(c, kCiSequences);
  HostRunner host;
  EmulatorRunner emu(CodeMode::kLong64);
  expectNoMismatch(runDifferential(c, host, emu));
}

}  // namespace
}  // namespace ttvm::difftest
