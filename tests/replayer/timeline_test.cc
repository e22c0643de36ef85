// Timeline: seek / step / stepBack round trips against independent forward
// replays, breakpoints and watchpoints in both directions (its queries:
// queries_test.cc).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "scripted_timeline_fixture.h"
#include "spinning_guest_support.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/replay_session.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm {
namespace {

struct Position {
  CpuState cpu;
  uint64_t ramHash = 0;
};

Position positionOf(const CpuState& cpu, std::span<const uint8_t> ram) {
  return Position{cpu, testing::hashBytes(ram.data(), ram.size())};
}

using TimelineTest = testing::ScriptedTimelineTest;

// The reference: positions reached by one plain forward ReplaySession.
std::vector<std::pair<uint64_t, Position>> forwardReference(const TraceReader& reader,
                                                            std::vector<uint64_t> steps) {
  std::sort(steps.begin(), steps.end());
  auto s = ReplaySession::open(reader);
  EXPECT_TRUE(s.ok());
  std::vector<std::pair<uint64_t, Position>> out;
  for (uint64_t t : steps) {
    EXPECT_NE((*s)->runTo(t).kind, SessionStopKind::kDivergence);
    out.emplace_back(t, positionOf((*s)->state(), (*s)->ram()));
  }
  return out;
}

TEST_F(TimelineTest, SeekMatchesForwardReplay) {
  auto tl = open();
  std::mt19937_64 rng(7);
  std::vector<uint64_t> steps;
  for (int i = 0; i < 60; ++i) steps.push_back(rng() % (trace_->steps + 1));
  auto ref = forwardReference(*reader_, steps);
  std::shuffle(ref.begin(), ref.end(), rng);
  for (const auto& [t, pos] : ref) {
    StopReason r = tl->seek(t);
    ASSERT_NE(r.kind, StopKind::kDivergence) << r.divergence->format();
    ASSERT_EQ(tl->now(), t);
    ASSERT_TRUE(tl->registers() == pos.cpu) << "state differs at step " << t;
    ASSERT_EQ(testing::hashBytes(tl->ram().data(), tl->ram().size()), pos.ramHash)
        << "RAM differs at step " << t;
  }
}

TEST_F(TimelineTest, ThousandsOfStepBackStepRoundTrips) {
  auto tl = open();
  std::mt19937_64 rng(42);
  const uint64_t end = tl->endStep();
  int checked = 0;
  for (int i = 0; i < 3000; ++i) {
    const uint64_t t = 1 + rng() % end;
    const uint64_t k = 1 + (i % 4 == 0 ? rng() % 20000 : rng() % 64) % t;
    ASSERT_EQ(tl->seek(t).kind, StopKind::kStepDone);
    const Position at = positionOf(tl->registers(), tl->ram());
    StopReason back = tl->stepBack(k);
    ASSERT_EQ(back.kind, k == t ? StopKind::kStepDone : StopKind::kStepDone);
    ASSERT_EQ(tl->now(), t - k);
    StopReason fwd = tl->step(k);
    ASSERT_TRUE(fwd.kind == StopKind::kStepDone || fwd.kind == StopKind::kHistoryEnd);
    ASSERT_EQ(tl->now(), t);
    const Position again = positionOf(tl->registers(), tl->ram());
    // Field by field, so a failure names the register.
    ASSERT_EQ(again.cpu.gpr, at.cpu.gpr) << "t=" << t << " k=" << k;
    ASSERT_EQ(again.cpu.rip, at.cpu.rip) << "t=" << t << " k=" << k;
    ASSERT_EQ(again.cpu.rflags, at.cpu.rflags) << "t=" << t << " k=" << k;
    ASSERT_TRUE(again.cpu.seg == at.cpu.seg) << "t=" << t << " k=" << k;
    ASSERT_TRUE(again.cpu.pending == at.cpu.pending) << "t=" << t << " k=" << k;
    ASSERT_TRUE(again.cpu.fpu == at.cpu.fpu) << "t=" << t << " k=" << k;
    ASSERT_TRUE(again.cpu == at.cpu) << "t=" << t << " k=" << k;
    ASSERT_EQ(again.ramHash, at.ramHash) << "t=" << t << " k=" << k;
    ++checked;
  }
  EXPECT_EQ(checked, 3000);
  // Thinning keeps the checkpoint count logarithmic-ish, not linear in history.
  EXPECT_LT(tl->stats().checkpoints, 400u);
}

TEST_F(TimelineTest, HistoryEnds) {
  auto tl = open();
  EXPECT_EQ(tl->stepBack(1).kind, StopKind::kHistoryBegin);
  EXPECT_EQ(tl->now(), 0u);
  EXPECT_EQ(tl->runToEnd().kind, StopKind::kHistoryEnd);
  EXPECT_EQ(tl->now(), trace_->steps);
  EXPECT_TRUE(tl->registers() == trace_->finalCpu);
  EXPECT_EQ(tl->step(1).kind, StopKind::kHistoryEnd);
  EXPECT_EQ(tl->stepBack(trace_->steps + 10).kind, StopKind::kHistoryBegin);
  EXPECT_EQ(tl->now(), 0u);
}

// Every position where the breakpoint at `addr` is hit, by a forward scan.
std::vector<uint64_t> forwardHits(Timeline& tl, int* idOut) {
  std::vector<uint64_t> hits;
  tl.seek(0);
  for (;;) {
    StopReason r = tl.continueForward();
    if (r.kind != StopKind::kBreakpoint && r.kind != StopKind::kWatchpoint) {
      EXPECT_EQ(r.kind, StopKind::kHistoryEnd);
      break;
    }
    if (idOut) *idOut = r.kind == StopKind::kBreakpoint ? r.breakpointId : r.watchpointId;
    hits.push_back(r.kind == StopKind::kBreakpoint ? r.step : r.accessStep);
  }
  return hits;
}

TEST_F(TimelineTest, ReverseContinueFindsBreakpointsInReverseOrder) {
  auto tl = open();
  const int id = tl->addBreakpoint(testing::kProgHandler);
  int seenId = -1;
  std::vector<uint64_t> hits = forwardHits(*tl, &seenId);
  ASSERT_GT(hits.size(), 50u);
  EXPECT_EQ(seenId, id);
  ASSERT_EQ(tl->now(), trace_->steps);
  // Backward from the end: the same hits, last first, never the same one twice.
  for (size_t i = hits.size(); i-- > hits.size() - 40;) {
    StopReason r = tl->reverseContinue();
    ASSERT_EQ(r.kind, StopKind::kBreakpoint) << "hit " << i;
    ASSERT_EQ(r.breakpointId, id);
    ASSERT_EQ(r.step, hits[i]);
    ASSERT_EQ(tl->registers().rip, testing::kProgHandler);
  }
  // Forward from a breakpoint stop does not report the same breakpoint again.
  const uint64_t here = tl->now();
  StopReason f = tl->continueForward();
  ASSERT_EQ(f.kind, StopKind::kBreakpoint);
  EXPECT_GT(f.step, here);
  // Removing it: reverse-continue runs to the beginning of history.
  ASSERT_TRUE(tl->removeBreakpoint(id));
  EXPECT_EQ(tl->reverseContinue().kind, StopKind::kHistoryBegin);
  EXPECT_EQ(tl->now(), 0u);
}

TEST_F(TimelineTest, WatchpointsWorkInBothDirections) {
  auto tl = open();
  const int id = tl->addWatchpoint(testing::kIrqCounter, 2, WatchKind::kWrite);
  int seenId = -1;
  std::vector<uint64_t> accesses = forwardHits(*tl, &seenId);
  EXPECT_EQ(seenId, id);
  ASSERT_GT(accesses.size(), 50u);
  for (size_t i = accesses.size(); i-- > accesses.size() - 30;) {
    StopReason r = tl->reverseContinue();
    ASSERT_EQ(r.kind, StopKind::kWatchpoint);
    ASSERT_EQ(r.watchpointId, id);
    // Backward, we stop before the store: at the storing instruction.
    ASSERT_EQ(r.step, accesses[i]);
    ASSERT_EQ(r.accessStep, accesses[i]);
    ASSERT_EQ(tl->registers().rip, testing::kProgCounterStore);
    ASSERT_EQ(r.watchAddress, testing::kIrqCounter);
  }
  // Forward from there: the same store fires, and we stop after it.
  const uint64_t here = tl->now();
  StopReason f = tl->continueForward();
  ASSERT_EQ(f.kind, StopKind::kWatchpoint);
  EXPECT_EQ(f.accessStep, here);
  EXPECT_EQ(f.step, here + 1);
  // stepBack over the store with the watchpoint armed reports it.
  StopReason b = tl->stepBack(1);
  EXPECT_EQ(b.kind, StopKind::kWatchpoint);
  EXPECT_EQ(tl->now(), here);
}

// Issue 14 point 3: the fast engine keeps debugger watchpoints and
// breakpoints at block speed and stops a timeline at the positions the
// reference engine stops at, forward and backward, with the same state.
TEST_F(TimelineTest, WatchpointsAndBreakpointsStopAlikeOnBothEngines) {
  struct Stops {
    std::vector<uint64_t> forward;
    std::vector<std::pair<StopKind, uint64_t>> backward;
    CpuState end;
    EngineStats stats;
  };
  auto stopsOn = [&](CpuEngine engine) {
    Stops out;
    auto tl = open();
    tl->session().cpu().setEngine(engine);
    tl->addWatchpoint(testing::kIrqCounter, 2, WatchKind::kWrite);
    tl->addBreakpoint(testing::kProgHandler);
    out.forward = forwardHits(*tl, nullptr);
    out.end = tl->registers();
    for (int i = 0; i < 40; ++i) {
      const StopReason r = tl->reverseContinue();
      out.backward.emplace_back(r.kind, r.step);
    }
    out.stats = tl->session().cpu().engineStats();
    return out;
  };
  const Stops ref = stopsOn(CpuEngine::kReference);
  const Stops fast = stopsOn(CpuEngine::kFast);
  ASSERT_GT(ref.forward.size(), 100u);
  EXPECT_EQ(ref.forward, fast.forward);
  EXPECT_TRUE(ref.end == fast.end);
  EXPECT_EQ(ref.backward, fast.backward);
  // The fast engine ran blocks, not step() for every step.
  std::printf("fast engine: %s\n", describe(fast.stats).c_str());
  EXPECT_GT(fast.stats.blockRuns, 0u);
  EXPECT_LT(fast.stats.fallbackSteps * 4, fast.stats.steps);
}

TEST_F(TimelineTest, CancellationStopsLongOperations) {
  auto tl = open();
  std::atomic<bool> cancel{true};
  Control c;
  c.cancel = &cancel;
  StopReason r = tl->runToEnd(c);
  EXPECT_EQ(r.kind, StopKind::kCancelled);
  EXPECT_LT(tl->now(), trace_->steps);
  cancel = false;
  uint64_t calls = 0;
  c.progress = [&](uint64_t, uint64_t) { ++calls; };
  EXPECT_EQ(tl->runToEnd(c).kind, StopKind::kHistoryEnd);
  EXPECT_GT(calls, 0u);
}

TEST_F(TimelineTest, CheckpointMemoryStaysWithinBudget) {
  TimelineOptions o;
  o.checkpointInterval = 1024;
  o.checkpointMemBytes = 1u << 20;  // tiny: forces budget thinning
  auto t = Timeline::open(*reader_, o);
  ASSERT_TRUE(t.ok());
  (*t)->runToEnd();
  std::mt19937_64 rng(3);
  for (int i = 0; i < 50; ++i) (*t)->seek(rng() % trace_->steps);
  // The live RAM image itself and step 0 always stay; everything else fits.
  EXPECT_LE((*t)->stats().checkpointBytes, (3u << 20));
  EXPECT_GE((*t)->stats().checkpoints, 2u);
}

// After every operation the checkpoints are thinned by their distance from
// the current position: each one between the first and the last has its
// kept neighbours farther apart than the spacing at its distance (1/16 of
// it, at least the interval, at most the grid), so they are dense near the
// position and sparse far from it; the last one stays.
TEST_F(TimelineTest, CheckpointsAreThinnedByTheirDistanceFromNow) {
  TimelineOptions o;
  o.checkpointInterval = 64;
  o.checkpointMemBytes = 1ull << 34;  // no budget thinning
  auto t = Timeline::open(*reader_, o);
  ASSERT_TRUE(t.ok());
  Timeline& tl = **t;
  tl.runToEnd();
  const uint64_t begin = tl.checkpointSteps().front();
  const uint64_t grid = std::max<uint64_t>(o.checkpointInterval, (tl.endStep() - begin) / 1024);
  auto spacing = [&](uint64_t d) {
    return std::clamp<uint64_t>(d / 16, o.checkpointInterval, grid);
  };
  std::mt19937_64 rng(17);
  size_t most = 0;
  for (int i = 0; i < 200; ++i) {
    const uint64_t target = 1 + rng() % tl.endStep();
    if (i % 2 == 0)
      tl.seek(target);
    else
      tl.stepBack(1 + rng() % std::min<uint64_t>(tl.now(), 5000));
    const std::vector<uint64_t> steps = tl.checkpointSteps();
    ASSERT_GE(steps.size(), 2u);
    ASSERT_EQ(steps.front(), begin);
    most = std::max(most, steps.size());
    const uint64_t here = tl.now();
    for (size_t k = 1; k + 1 < steps.size(); ++k) {
      const uint64_t d = steps[k] > here ? steps[k] - here : here - steps[k];
      ASSERT_GT(steps[k + 1] - steps[k - 1], spacing(d))
          << "checkpoint " << steps[k] << " kept at " << here << " (op " << i << ")";
    }
    // Near the position the spacing is the interval: a checkpoint within
    // reach of a short step back.
    ASSERT_LE(here - tl.checkpointSteps()[std::upper_bound(steps.begin(), steps.end(), here) -
                                          steps.begin() - 1],
              std::max<uint64_t>(grid, o.checkpointInterval))
        << "at " << here;
  }
  EXPECT_GT(most, 20u);
}

// The timeline compares each device digest the first time it passes its step
// and not when it re-executes from a checkpoint; a wrong one is still found
// however the user got near it.
TEST(TimelineDeviceDigests, ComparedOnceTheFirstTimeTheirStepIsReplayed) {
  const std::string path = testing::recordSpinningBootSector("device_digests", 2'600'000);
  ASSERT_FALSE(path.empty());
  auto reader = TraceReader::open(path);
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  const std::vector<TraceEvent> events = testing::allEvents(*reader);
  std::vector<size_t> digests;  // indices of the device digests
  for (size_t i = 0; i < events.size(); ++i)
    if (events[i].kind == EventKind::kDeviceDigest) digests.push_back(i);
  ASSERT_GE(digests.size(), 30u);
  auto digestsUpTo = [&](uint64_t step) {
    return static_cast<uint64_t>(std::count_if(digests.begin(), digests.end(),
                                               [&](size_t i) { return events[i].step <= step; }));
  };
  {
    auto t = Timeline::open(*reader);
    ASSERT_TRUE(t.ok()) << t.error().message;
    Timeline& tl = **t;
    const uint64_t end = tl.endStep();
    ASSERT_EQ(tl.seek(end / 2).kind, StopKind::kStepDone);
    EXPECT_EQ(tl.session().deviceDigestsChecked(), digestsUpTo(end / 2));
    // Back and forth inside the history already replayed: nothing compared again.
    ASSERT_EQ(tl.seek(end / 4).kind, StopKind::kStepDone);
    ASSERT_EQ(tl.stepBack(1).kind, StopKind::kStepDone);
    ASSERT_EQ(tl.seek(end / 2 - 3).kind, StopKind::kStepDone);
    EXPECT_EQ(tl.session().deviceDigestsChecked(), digestsUpTo(end / 2));
    // Past it: each of the rest once.
    ASSERT_EQ(tl.runToEnd().kind, StopKind::kHistoryEnd);
    EXPECT_EQ(tl.session().deviceDigestsChecked(), digests.size());
    EXPECT_EQ(tl.session().checkEndState(), "");
  }

  // One device digest of the second half made wrong.
  const TraceEvent bad = [&] {
    TraceEvent e = events[digests[digests.size() * 3 / 4]];
    e.value ^= 1;
    return e;
  }();
  const std::string corrupt = testing::tempTracePath("device_digests_bad");
  ASSERT_TRUE(testing::rewriteTraceEvent(path, corrupt, digests[digests.size() * 3 / 4], bad).ok());
  auto badReader = TraceReader::open(corrupt);
  ASSERT_TRUE(badReader.ok()) << badReader.error().message;
  auto t = Timeline::open(*badReader);
  ASSERT_TRUE(t.ok()) << t.error().message;
  Timeline& tl = **t;
  // Up to just before it, back, and again: no divergence yet.
  ASSERT_EQ(tl.seek(bad.step - 1).kind, StopKind::kStepDone);
  ASSERT_EQ(tl.stepBack(100'000).kind, StopKind::kStepDone);
  ASSERT_EQ(tl.seek(bad.step - 1).kind, StopKind::kStepDone);
  // Its step, reached for the first time from a checkpoint before it.
  ASSERT_EQ(tl.stepBack(10).kind, StopKind::kStepDone);
  const StopReason r = tl.seek(bad.step + 10);
  ASSERT_EQ(r.kind, StopKind::kDivergence);
  ASSERT_TRUE(r.divergence.has_value());
  EXPECT_EQ(r.divergence->step, bad.step);
  EXPECT_NE(r.divergence->reason.find("device digest"), std::string::npos) << r.divergence->reason;
  std::remove(path.c_str());
  std::remove(corrupt.c_str());
}

}  // namespace
}  // namespace ttvm
