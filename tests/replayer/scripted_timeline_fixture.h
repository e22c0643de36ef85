// The fixture the Timeline's tests and its queries' tests share: one scripted
// trace (scripted_trace_support.h, ~600k steps) built per test suite, and
// timelines over it with small, fixed checkpoint settings.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "scripted_trace_support.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm::testing {

class ScriptedTimelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ScriptedTraceOptions o;
    o.iterations = 12000;  // ~600k steps
    auto t = buildScriptedTrace(tempTracePath("timeline"), o);
    ASSERT_TRUE(t.ok()) << t.error().message;
    trace_ = new ScriptedTrace(std::move(t).value());
    auto r = TraceReader::open(trace_->path);
    ASSERT_TRUE(r.ok());
    reader_ = new TraceReader(std::move(r).value());
  }
  static void TearDownTestSuite() {
    std::remove(trace_->path.c_str());
    delete reader_;
    delete trace_;
    reader_ = nullptr;
    trace_ = nullptr;
  }
  std::unique_ptr<Timeline> open(uint64_t interval = 4096) {
    TimelineOptions o;
    o.checkpointInterval = interval;
    o.checkpointMemBytes = 64ull << 20;
    auto t = Timeline::open(*reader_, o);
    EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
    return std::move(t).value();
  }
  static inline ScriptedTrace* trace_ = nullptr;
  static inline TraceReader* reader_ = nullptr;
};

}  // namespace ttvm::testing
