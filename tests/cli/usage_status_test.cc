// The ttvm binary's usage errors: every command that reads a trace (info,
// replay, verify, recover, gdbserver, dap) exits 2 on bad usage, naming the
// option at fault, and documents that status in its --help; a trace that
// cannot be opened is another status.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <vector>

#include "scripted_trace_support.h"

namespace ttvm::cli {
namespace {

struct Outcome {
  int status = -1;
  std::string out;  // stdout, or stderr when asked for
};

// Runs `ttvm ARGS` (plain words, no quoting needed) and returns its exit
// status with its stderr (or its stdout).
Outcome ttvm(const std::string& args, bool stdoutToo = false) {
  const std::string cmd =
      std::string(TTVM_BIN) + " " + args + (stdoutToo ? " 2>/dev/null" : " 2>&1 >/dev/null");
  Outcome o;
  std::FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return o;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) o.out.append(buf, n);
  const int ws = pclose(p);
  o.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
  return o;
}

constexpr const char* kGolden = "tests/data/golden-v1.0.ttvm";
const std::vector<std::string> kTraceCommands = {"info",    "replay",    "verify",
                                                 "recover", "gdbserver", "dap"};

TEST(UsageStatus, AnUnknownOptionExits2NamingIt) {
  for (const std::string& c : kTraceCommands) {
    const Outcome r = ttvm(c + " " + kGolden + " --no-such-option");
    EXPECT_EQ(r.status, 2) << c << ": " << r.out;
    EXPECT_NE(r.out.find("ttvm " + c + ": unknown option '--no-such-option'"), std::string::npos)
        << c << ": " << r.out;
  }
}

TEST(UsageStatus, NoTraceExits2) {
  for (const std::string& c : kTraceCommands) {
    const Outcome r = ttvm(c);
    EXPECT_EQ(r.status, 2) << c << ": " << r.out;
    EXPECT_NE(r.out.find("no TRACE given"), std::string::npos) << c << ": " << r.out;
  }
}

TEST(UsageStatus, MissingAndMalformedValuesExit2NamingTheOption) {
  struct Case {
    std::string args;
    std::string says;
  };
  const Case cases[] = {
      {std::string("replay ") + kGolden + " --to", "--to needs a value"},
      {std::string("replay ") + kGolden + " --checkpoint-mem 1X", "--checkpoint-mem '1X'"},
      {std::string("gdbserver ") + kGolden + " --port 70000", "--port '70000'"},
      {std::string("gdbserver ") + kGolden + " --port", "--port needs a value"},
      {std::string("gdbserver ") + kGolden + " --arch 8086", "--arch '8086'"},
      {std::string("gdbserver ") + kGolden + " --symbols", "--symbols needs a value"},
      {std::string("gdbserver ") + kGolden + " --start middle", "--start 'middle'"},
      {std::string("recover ") + kGolden + " -o", "-o needs a value"},
  };
  for (const Case& c : cases) {
    const Outcome r = ttvm(c.args);
    EXPECT_EQ(r.status, 2) << c.args << ": " << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.args << ": " << r.out;
  }
}

// A step past the end is bad usage too, found once the trace is open.
TEST(UsageStatus, RecordNamesACpuidFeatureItCannotHide) {
  // ttvm record's usage status is 64 (sysexits.h); checked before GUEST is read.
  Outcome r = ttvm("record --backend emu --cpuid-hide tsc,avx /no/such/guest.elf");
  EXPECT_EQ(r.status, 64) << r.out;
  EXPECT_NE(r.out.find("--cpuid-hide: 'avx' is not a feature ttvm hides (tsc, rdtscp, rdrand, "
                       "rdseed, rdpid, or all)"),
            std::string::npos)
      << r.out;
  r = ttvm("record --backend emu --cpuid-hide");
  EXPECT_EQ(r.status, 64) << r.out;
  EXPECT_NE(r.out.find("--cpuid-hide needs a value"), std::string::npos) << r.out;
}

TEST(UsageStatus, AStepPastTheEndExits2) {
  auto t = testing::buildScriptedTrace(testing::tempTracePath("usage"), {});
  ASSERT_TRUE(t.ok()) << t.error().message;
  const Outcome r = ttvm("replay " + t->path + " --to 99999999999");
  std::remove(t->path.c_str());
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("--to 99999999999 is past the end of the trace (step " +
                       std::to_string(t->steps) + ")"),
            std::string::npos)
      << r.out;
  // gdbserver --start: refused before it listens.
  auto g = testing::buildScriptedTrace(testing::tempTracePath("usage-gdb"), {});
  ASSERT_TRUE(g.ok()) << g.error().message;
  const Outcome s = ttvm("gdbserver " + g->path + " --port 0 --start 99999999999");
  std::remove(g->path.c_str());
  EXPECT_EQ(s.status, 2) << s.out;
  EXPECT_NE(s.out.find("--start 99999999999 is outside the history (0.." +
                       std::to_string(g->steps) + ")"),
            std::string::npos)
      << s.out;
}

TEST(UsageStatus, AnUnreadableTraceIsNotAUsageError) {
  for (const char* c : {"replay", "gdbserver"}) {
    const Outcome r = ttvm(std::string(c) + " /nonexistent/x.ttvm");
    EXPECT_EQ(r.status, 1) << c << ": " << r.out;
    EXPECT_NE(r.out.find("/nonexistent/x.ttvm"), std::string::npos) << c << ": " << r.out;
  }
}

TEST(UsageStatus, HelpDocumentsTheStatus) {
  for (const char* c : {"replay", "gdbserver"}) {
    const Outcome r = ttvm(std::string(c) + " --help", true);
    EXPECT_EQ(r.status, 0) << c;
    EXPECT_NE(r.out.find("2 bad usage"), std::string::npos) << c << ": " << r.out;
  }
}

}  // namespace
}  // namespace ttvm::cli

namespace ttvm::cli {
namespace {

// ttvm lockstep: its usage errors, and without a usable KVM it fails at once
// (before reading GUEST) with the reason `record --backend kvm` gives.
TEST(LockstepStatus, UsageErrorsAndNoKvm) {
  Outcome r = ttvm("lockstep --no-such-option g.elf");
  EXPECT_EQ(r.status, 64) << r.out;
  EXPECT_NE(r.out.find("unknown option '--no-such-option'"), std::string::npos) << r.out;
  r = ttvm("lockstep");
  EXPECT_EQ(r.status, 64) << r.out;
  r = ttvm("lockstep --max-steps 1x g.elf");
  EXPECT_EQ(r.status, 64) << r.out;
  EXPECT_NE(r.out.find("--max-steps '1x'"), std::string::npos) << r.out;
  r = ttvm("lockstep --keep-going=1x g.elf");
  EXPECT_EQ(r.status, 64) << r.out;
  EXPECT_NE(r.out.find("--keep-going=1x: N is not a number"), std::string::npos) << r.out;
  const Outcome record = ttvm("record --backend kvm --no-trace /no/such/guest.elf");
  if (record.status != 78) GTEST_SKIP() << "KVM is usable on this host: " << record.out;
  const Outcome lockstep = ttvm("lockstep /no/such/guest.elf");
  EXPECT_EQ(lockstep.status, 78) << lockstep.out;
  // The same reason, word for word, after each command's prefix.
  const std::string reason = record.out.substr(record.out.find("--backend kvm: ") + 15);
  EXPECT_NE(lockstep.out.find("ttvm lockstep: needs KVM: " + reason), std::string::npos)
      << lockstep.out << "\nvs\n"
      << record.out;
  EXPECT_NE(lockstep.out.find("--backend emu"), std::string::npos) << lockstep.out;
  // --map-ram is taken as an option (what it does needs KVM: lockstep_kvm.sh
  // runs double_fault with it in the nested VM).
  const Outcome mapRam = ttvm("lockstep --map-ram /no/such/guest.elf");
  EXPECT_EQ(mapRam.status, 78) << mapRam.out;
  // So are --keep-going and --keep-going=N (lockstep_kvm.sh runs guests
  // with known differences with it; Lockstep.KeepGoing* test what it does).
  for (const char* k : {"--keep-going", "--keep-going=5"}) {
    const Outcome keepGoing = ttvm(std::string("lockstep ") + k + " /no/such/guest.elf");
    EXPECT_EQ(keepGoing.status, 78) << k << ": " << keepGoing.out;
  }
}

}  // namespace
}  // namespace ttvm::cli
