// What `ttvm replay` and `ttvm gdbserver` share (cli/src/replay_options.h):
// their common options next to a command's own, and opening the trace, the
// timeline and the symbol files, on a scripted trace (tests/replayer).
#include "replay_options.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "argv.h"
#include "scripted_trace_support.h"

namespace ttvm::cli {
namespace {

// A trace name for the parsers: they never open it.
constexpr const char* kGolden = "tests/data/golden-v1.0.ttvm";

// A small trace that replays, made once for the OpenReplay tests.
class OpenReplay : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = testing::buildScriptedTrace(testing::tempTracePath("cli"), {});
    ASSERT_TRUE(t.ok()) << t.error().message;
    path_ = new std::string(t->path);
  }
  static void TearDownTestSuite() {
    std::remove(path_->c_str());
    delete path_;
    path_ = nullptr;
  }
  static inline std::string* path_ = nullptr;
};

TEST(ParseReplayArgs, CommonOptionsBesideTheCommandsOwn) {
  bool regs = false;
  auto r = parseReplayArgs(Argv{"replay", "--symbols", "a.map", kGolden, "--regs",
                                "--checkpoint-mem", "512M", "--symbols", "b.elf"}
                               .span(),
                           {flagOption("--regs", regs)});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(regs);
  EXPECT_EQ(r->replay.trace, kGolden);
  EXPECT_EQ(r->replay.checkpointMem, 512ull << 20);
  EXPECT_EQ(r->replay.symbolFiles, (std::vector<std::string>{"a.map", "b.elf"}));
  // Without them: the Timeline's default budget, no extra symbols.
  auto d = parseReplayArgs(Argv{"gdbserver", kGolden}.span(), {});
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->replay.checkpointMem, 0u);
  EXPECT_TRUE(d->replay.symbolFiles.empty());
  // Replays run the fast engine unless told otherwise (replay_session.h).
  EXPECT_EQ(d->replay.engine, CpuEngine::kFast);
  auto demo = parseReplayArgs(Argv{"gdbserver", "tests/data/recorded-v1.0-demo.ttvm"}.span(), {});
  ASSERT_TRUE(demo.ok()) << demo.error().message;
  auto opened = openReplay(demo->replay, "ttvm gdbserver");
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ(opened->timeline->session().cpu().engine(), CpuEngine::kFast);
}

// --engine (issue 14): the timeline's CPU replays on the engine asked for.
TEST(ParseReplayArgs, EngineReachesTheTimelinesCpu) {
  auto r = parseReplayArgs(
      Argv{"replay", "--engine", "fast", "tests/data/recorded-v1.0-demo.ttvm"}.span(), {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->replay.engine, CpuEngine::kFast);
  auto opened = openReplay(r->replay, "ttvm replay");
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ(opened->timeline->session().cpu().engine(), CpuEngine::kFast);
  auto ref = parseReplayArgs(
      Argv{"replay", "--engine", "reference", "tests/data/recorded-v1.0-demo.ttvm"}.span(), {});
  ASSERT_TRUE(ref.ok()) << ref.error().message;
  EXPECT_EQ(ref->replay.engine, CpuEngine::kReference);
  auto onReference = openReplay(ref->replay, "ttvm replay");
  ASSERT_TRUE(onReference.ok()) << onReference.error().message;
  EXPECT_EQ(onReference->timeline->session().cpu().engine(), CpuEngine::kReference);
  auto bad = parseReplayArgs(Argv{"replay", "--engine", "jit", kGolden}.span(), {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "--engine 'jit' is not an engine (fast or reference)");
}

TEST(ParseReplayArgs, ErrorsNameTheOption) {
  uint64_t port = 0;
  const std::vector<Option> own = {numberOption("--port", port, 65535)};
  auto unknown = parseReplayArgs(Argv{"gdbserver", kGolden, "--regs"}.span(), own);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().message, "unknown option '--regs'");
  auto missing = parseReplayArgs(Argv{"gdbserver", kGolden, "--symbols"}.span(), own);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "--symbols needs a value");
  auto size = parseReplayArgs(Argv{"gdbserver", "--checkpoint-mem", "lots", kGolden}.span(), own);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.error().message, "--checkpoint-mem 'lots' is not a size (e.g. 512M)");
  auto number = parseReplayArgs(Argv{"gdbserver", kGolden, "--port", "99999"}.span(), own);
  ASSERT_FALSE(number.ok());
  EXPECT_EQ(number.error().message, "--port '99999' is not a number in 0..65535");
}

TEST_F(OpenReplay, OpensTheTimelineAtTheStart) {
  ReplayOptions o;
  o.trace = *path_;
  o.checkpointMem = 64ull << 20;
  auto r = openReplay(o, "test");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_NE(r->reader, nullptr);
  ASSERT_NE(r->timeline, nullptr);
  EXPECT_EQ(r->timeline->now(), r->timeline->beginStep());
  EXPECT_GT(r->timeline->endStep(), r->timeline->beginStep());
  EXPECT_EQ(r->timeline->stats().budgetBytes, 64ull << 20);
}

TEST_F(OpenReplay, ErrorsNameTheFile) {
  ReplayOptions missing;
  missing.trace = "/nonexistent/x.ttvm";
  auto r = openReplay(missing, "test");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/nonexistent/x.ttvm"), std::string::npos) << r.error().message;
  ReplayOptions symbols;
  symbols.trace = *path_;
  symbols.symbolFiles = {"/nonexistent/System.map"};
  auto s = openReplay(symbols, "test");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message.rfind("--symbols ", 0), 0u) << s.error().message;
  EXPECT_NE(s.error().message.find("/nonexistent/System.map"), std::string::npos)
      << s.error().message;
}

}  // namespace
}  // namespace ttvm::cli
