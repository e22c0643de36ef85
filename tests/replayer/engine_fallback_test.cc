// The Timeline's engine fallback (engine_fallback.h): a divergence on the
// fast engine is replayed again on the reference engine, which either agrees
// with the trace (a fast-engine bug: the timeline goes on, on the reference,
// at the state a reference replay reaches) or diverges too (the trace's
// fault). The fast-engine bug is made by the test seam
// TTVM_TEST_FAST_ENGINE_FAULT (ReplaySession::open): at that step a run on
// the fast engine flips bit 62 of R15, which the scripted real-mode program
// never touches, so the next state digest (every 4096 steps) differs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "scripted_timeline_fixture.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/replay_session.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm {
namespace {

using EngineFallbackTest = testing::ScriptedTimelineTest;

constexpr uint64_t kFaultStep = 100000;

// A timeline opened with the seam set for its session (read at open).
std::unique_ptr<Timeline> openWithFault(const TraceReader& reader, CpuEngine engine) {
  setenv("TTVM_TEST_FAST_ENGINE_FAULT", std::to_string(kFaultStep).c_str(), 1);
  TimelineOptions o;
  o.checkpointInterval = 4096;
  o.checkpointMemBytes = 64ull << 20;
  o.engine = engine;
  auto t = Timeline::open(reader, o);
  unsetenv("TTVM_TEST_FAST_ENGINE_FAULT");
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return std::move(t).value();
}

// The state a plain reference replay reaches at `step`.
CpuState referenceStateAt(const TraceReader& reader, uint64_t step) {
  auto s = ReplaySession::open(reader, CpuEngine::kReference);
  EXPECT_TRUE(s.ok());
  EXPECT_EQ((*s)->runTo(step).kind, SessionStopKind::kTarget);
  return (*s)->state();
}

TEST_F(EngineFallbackTest, ReplaysDefaultToTheFastEngine) {
  auto tl = open();
  EXPECT_EQ(tl->session().engine(), CpuEngine::kFast);
  EXPECT_EQ(kDefaultReplayEngine, CpuEngine::kFast);
  auto s = ReplaySession::open(*reader_);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->engine(), CpuEngine::kFast);
}

TEST_F(EngineFallbackTest, FastEngineDivergenceGoesOnOnTheReferenceAndIsNamedAFastEngineBug) {
  ASSERT_GT(trace_->steps, 3 * kFaultStep);
  auto tl = openWithFault(*reader_, CpuEngine::kFast);
  int calls = 0;
  EngineFallback seen;
  tl->setEngineFallbackHandler([&](const EngineFallback& f) {
    ++calls;
    seen = f;
  });
  // Before the fault: nothing happens.
  StopReason r = tl->seek(kFaultStep - 10);
  EXPECT_EQ(r.kind, StopKind::kStepDone);
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(tl->engineFallback());
  EXPECT_EQ(tl->session().engine(), CpuEngine::kFast);
  // Past it: the fast engine diverges at the next digest, the seek is done
  // again on the reference, and it lands where a reference replay does.
  const uint64_t target = 3 * kFaultStep;
  r = tl->seek(target);
  ASSERT_EQ(r.kind, StopKind::kStepDone) << (r.divergence ? r.divergence->format() : "");
  EXPECT_EQ(tl->now(), target);
  EXPECT_TRUE(tl->registers() == referenceStateAt(*reader_, target));
  EXPECT_EQ(tl->session().engine(), CpuEngine::kReference);
  ASSERT_EQ(calls, 1);
  ASSERT_TRUE(tl->engineFallback());
  EXPECT_GT(seen.fast.step, kFaultStep);
  EXPECT_LE(seen.fast.step, kFaultStep + 4096);
  EXPECT_NE(seen.fast.reason.find("state differs"), std::string::npos) << seen.fast.reason;
  EXPECT_EQ(seen.replayedFrom, 0u);
  EXPECT_FALSE(seen.reference);
  EXPECT_EQ(seen.referenceReached, target);
  EXPECT_TRUE(seen.fastEngineBug());
  EXPECT_NE(seen.describe().find("BUG IN TTVM'S FAST ENGINE"), std::string::npos)
      << seen.describe();
  // The checkpoints the fast engine took were dropped: motion in both
  // directions, into the span it got wrong too, reaches reference states,
  // with no second fallback (the seam never fires on the reference).
  r = tl->seek(kFaultStep + 100);
  EXPECT_EQ(r.kind, StopKind::kStepDone);
  EXPECT_TRUE(tl->registers() == referenceStateAt(*reader_, kFaultStep + 100));
  r = tl->seek(target);
  r = tl->stepBack(1);
  EXPECT_EQ(r.kind, StopKind::kStepDone);
  EXPECT_TRUE(tl->registers() == referenceStateAt(*reader_, target - 1));
  r = tl->runToEnd();
  EXPECT_EQ(r.kind, StopKind::kHistoryEnd);
  EXPECT_EQ(tl->checkEndState(), "");
  EXPECT_EQ(calls, 1);
}

TEST_F(EngineFallbackTest, TheSeamNeverTouchesTheReferenceEngine) {
  auto tl = openWithFault(*reader_, CpuEngine::kReference);
  EXPECT_EQ(tl->runToEnd().kind, StopKind::kHistoryEnd);
  EXPECT_EQ(tl->checkEndState(), "");
  EXPECT_FALSE(tl->engineFallback());
}

TEST_F(EngineFallbackTest, EndStateDifferenceOnTheFastEngineFallsBackToo) {
  // The fault after the last digest: only the end state can show it.
  const uint64_t lastDigest = trace_->steps / 4096 * 4096;
  ASSERT_LT(lastDigest + 1, trace_->steps);
  setenv("TTVM_TEST_FAST_ENGINE_FAULT", std::to_string(lastDigest + 1).c_str(), 1);
  auto t = Timeline::open(*reader_);
  unsetenv("TTVM_TEST_FAST_ENGINE_FAULT");
  ASSERT_TRUE(t.ok());
  Timeline& tl = **t;
  EXPECT_EQ(tl.runToEnd().kind, StopKind::kHistoryEnd);
  EXPECT_EQ(tl.checkEndState(), "");
  ASSERT_TRUE(tl.engineFallback());
  EXPECT_NE(tl.engineFallback()->fast.reason.find("end state differs"), std::string::npos);
  EXPECT_TRUE(tl.engineFallback()->fastEngineBug());
  EXPECT_EQ(tl.now(), tl.endStep());
}

TEST_F(EngineFallbackTest, ATraceThatDisagreesWithBothEnginesIsNotAFastEngineBug) {
  // The 50th port input answered differently: the program adds it into its
  // buffer, so the state digest after it differs on any engine.
  size_t index = 0, seen = 0;
  for (; index < trace_->events.size(); ++index)
    if (trace_->events[index].kind == EventKind::kPortIn && ++seen == 50) break;
  ASSERT_LT(index, trace_->events.size());
  TraceEvent bad = trace_->events[index];
  bad.value ^= 0x5;
  const std::string path = testing::tempTracePath("fallback-tampered");
  ASSERT_TRUE(testing::rewriteTraceEvent(trace_->path, path, index, bad).ok());
  auto reader = TraceReader::open(path);
  ASSERT_TRUE(reader.ok());
  auto t = Timeline::open(*reader);
  ASSERT_TRUE(t.ok());
  Timeline& tl = **t;
  const StopReason r = tl.runToEnd();
  EXPECT_EQ(r.kind, StopKind::kDivergence);
  ASSERT_TRUE(tl.engineFallback());
  const EngineFallback& f = *tl.engineFallback();
  ASSERT_TRUE(f.reference);
  EXPECT_EQ(f.reference->step, f.fast.step);
  EXPECT_FALSE(f.fastEngineBug());
  EXPECT_NE(f.describe().find("it diverges too"), std::string::npos) << f.describe();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ttvm
