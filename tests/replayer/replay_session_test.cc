// ReplaySession against traces built by a scripted environment: exact replay,
// end-state check, and divergence reports for corrupted traces.
#include <gtest/gtest.h>

#include <cstdio>

#include "scripted_trace_support.h"
#include "spinning_guest_support.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"
#include "ttvm/recorder/record_session.h"
#include "ttvm/replayer/replay_session.h"

namespace ttvm {
using ttvm::machine::DivergenceReport;
namespace {

using testing::ScriptedTrace;

class ReplaySessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = testing::buildScriptedTrace(testing::tempTracePath("session"), {});
    ASSERT_TRUE(t.ok()) << t.error().message;
    trace_ = new ScriptedTrace(std::move(t).value());
  }
  static void TearDownTestSuite() {
    std::remove(trace_->path.c_str());
    delete trace_;
  }
  static ScriptedTrace* trace_;
};
ScriptedTrace* ReplaySessionTest::trace_ = nullptr;

TEST_F(ReplaySessionTest, ReplaysToTheEndWithoutDivergence) {
  auto reader = TraceReader::open(trace_->path);
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  auto s = ReplaySession::open(*reader);
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_GT(trace_->steps, 50000u);
  EXPECT_EQ((*s)->endStep(), trace_->steps);
  SessionStop stop = (*s)->runTo(~0ull);
  ASSERT_EQ(stop.kind, SessionStopKind::kEnd)
      << ((*s)->divergence() ? (*s)->divergence()->format() : "");
  EXPECT_EQ((*s)->step(), trace_->steps);
  EXPECT_EQ((*s)->checkEndState(), "");
  EXPECT_TRUE((*s)->state() == trace_->finalCpu);
  auto ram = (*s)->ram();
  ASSERT_EQ(ram.size(), trace_->finalRam.size());
  EXPECT_EQ(testing::hashBytes(ram.data(), ram.size()),
            testing::hashBytes(trace_->finalRam.data(), trace_->finalRam.size()));
  // Every event was consumed.
  EXPECT_EQ((*s)->environment().peek(), nullptr);
}

TEST_F(ReplaySessionTest, StopsAtTargetsInSlices) {
  auto reader = TraceReader::open(trace_->path);
  ASSERT_TRUE(reader.ok());
  auto s = ReplaySession::open(*reader);
  ASSERT_TRUE(s.ok());
  for (uint64_t t = 1; t < trace_->steps; t += 7919) {
    SessionStop stop = (*s)->runTo(t);
    ASSERT_EQ(stop.kind, SessionStopKind::kTarget) << "at " << t;
    ASSERT_EQ((*s)->step(), t);
  }
  EXPECT_EQ((*s)->runTo(~0ull).kind, SessionStopKind::kEnd);
  EXPECT_EQ((*s)->checkEndState(), "");
}

// Finds the index of the n-th event of `kind` on `port` (trace order).
size_t findEvent(const std::vector<TraceEvent>& ev, EventKind kind, uint16_t port, int n) {
  for (size_t i = 0; i < ev.size(); ++i)
    if (ev[i].kind == kind && ev[i].address == port && n-- == 0) return i;
  return SIZE_MAX;
}

std::optional<DivergenceReport> replayCorrupted(const ScriptedTrace& t, size_t index,
                                                const TraceEvent& replacement) {
  const std::string bad = testing::tempTracePath("corrupt");
  Status st = testing::rewriteTraceEvent(t.path, bad, index, replacement);
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
  auto reader = TraceReader::open(bad);
  EXPECT_TRUE(reader.ok());
  if (!reader.ok()) return std::nullopt;
  auto s = ReplaySession::open(*reader);
  EXPECT_TRUE(s.ok());
  SessionStop stop = (*s)->runTo(~0ull);
  std::remove(bad.c_str());
  EXPECT_EQ(stop.kind, SessionStopKind::kDivergence);
  return (*s)->divergence();
}

TEST_F(ReplaySessionTest, ChangedOutputValueDivergesAtItsStep) {
  const size_t i = findEvent(trace_->events, EventKind::kPortOut, testing::kOutputPort, 300);
  ASSERT_NE(i, SIZE_MAX);
  TraceEvent e = trace_->events[i];
  e.value ^= 0x5A;
  auto d = replayCorrupted(*trace_, i, e);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->step, e.step);
  ASSERT_TRUE(d->expected.has_value());
  EXPECT_EQ(*d->expected, e);
  EXPECT_NE(d->actual.find("portOut port=0xe9"), std::string::npos) << d->actual;
  EXPECT_NE(d->disassembly.find("out"), std::string::npos) << d->disassembly;
  EXPECT_EQ(d->symbol.rfind("main_loop+", 0), 0u) << d->symbol;
  ASSERT_TRUE(d->lastMatching.has_value());
  EXPECT_EQ(*d->lastMatching, trace_->events[i - 1]);
  EXPECT_NE(d->format().find("divergence at step " + std::to_string(e.step)), std::string::npos);
}

TEST_F(ReplaySessionTest, ChangedInputValueDivergesAtTheNextOutput) {
  // The loop echoes each input byte to port 0xE9 a few steps later.
  const size_t i = findEvent(trace_->events, EventKind::kPortIn, testing::kInputPort, 500);
  ASSERT_NE(i, SIZE_MAX);
  TraceEvent e = trace_->events[i];
  e.value ^= 0x01;
  size_t out = i + 1;
  while (trace_->events[out].kind != EventKind::kPortOut) ++out;
  auto d = replayCorrupted(*trace_, i, e);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->step, trace_->events[out].step);
  EXPECT_NE(d->reason.find("another value"), std::string::npos) << d->reason;
}

TEST_F(ReplaySessionTest, OtherPortDivergesAtThatStep) {
  const size_t i = findEvent(trace_->events, EventKind::kPortIn, testing::kInputPort, 100);
  ASSERT_NE(i, SIZE_MAX);
  TraceEvent e = trace_->events[i];
  e.address = 0x64;
  auto d = replayCorrupted(*trace_, i, e);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->step, e.step);
  EXPECT_NE(d->actual.find("portIn port=0x60 size=1"), std::string::npos) << d->actual;
  EXPECT_NE(d->disassembly.find("in al"), std::string::npos) << d->disassembly;
}

TEST_F(ReplaySessionTest, InterruptMovedLaterDiverges) {
  const size_t i = findEvent(trace_->events, EventKind::kInterrupt, 0, 20);
  ASSERT_NE(i, SIZE_MAX);
  TraceEvent e = trace_->events[i];
  e.step += 1;  // a plausible other run: the handler's inputs then come one step late
  auto d = replayCorrupted(*trace_, i, e);
  ASSERT_TRUE(d.has_value());
  // Never silent: the shifted handler asks for its port input at a step the
  // trace does not have it, a few instructions after the interrupt.
  EXPECT_GE(d->step, e.step - 1);
  EXPECT_LE(d->step, e.step + 16);
}

TEST_F(ReplaySessionTest, ChangedDigestIsReported) {
  size_t i = 0;
  int n = 0;
  for (; i < trace_->events.size(); ++i)
    if (trace_->events[i].kind == EventKind::kStateDigest && n++ == 5) break;
  ASSERT_LT(i, trace_->events.size());
  TraceEvent e = trace_->events[i];
  e.value ^= 1;
  auto d = replayCorrupted(*trace_, i, e);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->step, e.step);
  EXPECT_NE(d->reason.find("state digest"), std::string::npos);
}

// A whole-machine replay (format 1.3) stops where its user asks, not where
// the recording's slices ended, and must reach the same device state: the
// guest (a boot sector spinning on `jmp $`, 1 us of virtual time per step)
// crosses three RTC seconds with no interrupt enabled. Before the RTC's
// update cycle was a deadline, a replay that stopped between a second and
// the recording's next slice end set register C's UF early and the next
// device digest differed.
TEST(WholeMachineReplay, StopsAnywhereWithTheRecordedDeviceState) {
  const std::string path = testing::recordSpinningBootSector("rtc_seconds", 3'500'000);
  ASSERT_FALSE(path.empty());
  auto reader = TraceReader::open(path);
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  ASSERT_TRUE(reader->header().replayedDevices.size() > 1 &&
              reader->header().replayedDevices.front() == "clock");
  auto s = ReplaySession::open(*reader);
  ASSERT_TRUE(s.ok()) << s.error().message;
  // Stops just after each second and at steps no slice of the recording ended at.
  for (uint64_t t : {1'000'001ull, 1'013'333ull, 2'000'007ull, 2'500'001ull, 3'000'003ull}) {
    SessionStop stop = (*s)->runTo(t);
    ASSERT_EQ(stop.kind, SessionStopKind::kTarget)
        << "at " << t << ": " << ((*s)->divergence() ? (*s)->divergence()->format() : "");
  }
  SessionStop stop = (*s)->runTo(~0ull);
  ASSERT_EQ(stop.kind, SessionStopKind::kEnd)
      << ((*s)->divergence() ? (*s)->divergence()->format() : "");
  EXPECT_EQ((*s)->checkEndState(), "");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ttvm
