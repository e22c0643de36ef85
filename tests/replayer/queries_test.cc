// The Timeline's queries (queries.cc) on the scripted trace: last/next write,
// a register's last change, previous/next trace events, each checked against
// the trace's own event list or by stepping.
#include <gtest/gtest.h>

#include <atomic>

#include "scripted_timeline_fixture.h"
#include "ttvm/replayer/queries.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm {
namespace {

using QueriesTest = testing::ScriptedTimelineTest;

TEST_F(QueriesTest, LastWriteFindsTheStore) {
  auto tl = open();
  tl->runToEnd();
  const uint64_t addr = testing::kBuffer + 0x40;
  auto hit = tl->lastWrite(addr, 1, false, true);
  ASSERT_TRUE(hit.ok()) << hit.error().message;
  ASSERT_TRUE(hit->has_value());
  const uint64_t s = (**hit).step;
  EXPECT_EQ(tl->now(), s);
  EXPECT_EQ(tl->registers().rip, testing::kProgStoreInsn);
  // The buffer byte never changes after the step after it.
  uint8_t after = 0, final = 0;
  tl->step(1);
  ASSERT_TRUE(tl->readPhysical(addr, std::span<uint8_t>(&after, 1)));
  final = trace_->finalRam[addr];
  EXPECT_EQ(after, final);
  // nextWrite from before the store finds it; from it, nothing later.
  tl->seek(s);
  auto next = tl->nextWrite(addr, 1, false, false);
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  EXPECT_EQ(tl->now(), s);
  tl->seek(s - 1);
  next = tl->nextWrite(addr, 1, false, false);
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((**next).step, s);
  // And the previous write to it is earlier, at the same instruction.
  tl->seek(s);
  auto prev = tl->lastWrite(addr, 1, false, true);
  ASSERT_TRUE(prev.ok());
  ASSERT_TRUE(prev->has_value());
  EXPECT_LT((**prev).step, s);
  EXPECT_EQ(tl->registers().rip, testing::kProgStoreInsn);
}

TEST_F(QueriesTest, RegisterLastChange) {
  auto tl = open();
  tl->seek(trace_->steps / 2);
  auto reg = registerByName("rsi");
  ASSERT_TRUE(reg.has_value());
  const uint64_t origin = tl->now();
  const uint64_t value = tl->registers().gpr[6];
  auto hit = tl->registerLastChange(*reg, false);
  ASSERT_TRUE(hit.ok()) << hit.error().message;
  ASSERT_TRUE(hit->has_value());
  const QueryHit h = **hit;
  EXPECT_EQ(tl->now(), origin);
  EXPECT_EQ(h.newValue, value);
  EXPECT_EQ(h.oldValue + 1, value);  // inc si
  // Check by stepping: unchanged from h.step+1 to origin, changed by h.step.
  tl->seek(h.step);
  EXPECT_EQ(tl->registers().gpr[6], h.oldValue);
  tl->step(1);
  EXPECT_EQ(tl->registers().gpr[6], value);
  while (tl->now() < origin) {
    tl->step(1);
    ASSERT_EQ(tl->registers().gpr[6], value) << "at " << tl->now();
  }
}

TEST_F(QueriesTest, PreviousAndNextEvents) {
  auto tl = open();
  const uint64_t mid = trace_->steps / 2;
  tl->seek(mid);
  EventQuery q;
  q.kind = EventQuery::Kind::kInterrupt;
  auto prev = tl->previousEvent(q, true);
  ASSERT_TRUE(prev.ok());
  ASSERT_TRUE(prev->has_value());
  // The reference from the event list.
  const TraceEvent* want = nullptr;
  for (const TraceEvent& e : trace_->events)
    if (e.kind == EventKind::kInterrupt && e.step < mid) want = &e;
  ASSERT_NE(want, nullptr);
  EXPECT_EQ((**prev).step, want->step);
  EXPECT_EQ(tl->now(), want->step);
  // At that position the interrupt is about to be delivered: one step later
  // we are in the handler.
  tl->step(1);
  EXPECT_EQ(tl->registers().rip, testing::kProgHandler);
  tl->seek(want->step);
  auto next = tl->nextEvent(q, false);
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  EXPECT_GT((**next).step, want->step);
  EXPECT_GE((**next).step, mid);
  // Port I/O on the timer-ack port 0x61 happens only in the handler.
  EventQuery io;
  io.kind = EventQuery::Kind::kPortIo;
  io.port = 0x61;
  auto p61 = tl->nextEvent(io, true);
  ASSERT_TRUE(p61.ok());
  ASSERT_TRUE(p61->has_value());
  EXPECT_EQ((**p61).event->kind, EventKind::kPortIn);
  // Serial (0xE9) output before now.
  EventQuery ser;
  ser.kind = EventQuery::Kind::kSerialOutput;
  auto out = tl->previousEvent(ser, false);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->has_value());
  EXPECT_EQ((**out).event->address, 0xE9u);
}

// A cancelled search is an error naming the cancellation, and the position
// (step and state) is the one the query started from, whichever scan it used.
TEST_F(QueriesTest, ACancelledQueryKeepsThePosition) {
  auto tl = open();
  const uint64_t origin = trace_->steps / 2;
  tl->seek(origin);
  const CpuState at = tl->registers();
  std::atomic<bool> cancel{true};
  Control c;
  c.cancel = &cancel;
  const uint64_t addr = testing::kBuffer + 0x40;
  EventQuery exception;
  exception.kind = EventQuery::Kind::kException;
  EventQuery interrupt;
  interrupt.kind = EventQuery::Kind::kInterrupt;
  auto check = [&](const char* what, const Result<std::optional<QueryHit>>& r) {
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.error().message, "cancelled") << what;
    EXPECT_EQ(tl->now(), origin) << what;
    EXPECT_TRUE(tl->registers() == at) << what;
  };
  check("lastWrite", tl->lastWrite(addr, 1, false, true, c));
  check("nextWrite", tl->nextWrite(addr, 1, false, true, c));
  check("registerLastChange", tl->registerLastChange(*registerByName("rsi"), true, c));
  check("previousEvent(exception)", tl->previousEvent(exception, true, c));
  check("nextEvent(exception)", tl->nextEvent(exception, true, c));
  check("previousEvent(interrupt)", tl->previousEvent(interrupt, true, c));
  check("nextEvent(interrupt)", tl->nextEvent(interrupt, true, c));
  // Not cancelled, the same timeline answers.
  cancel = false;
  auto hit = tl->lastWrite(addr, 1, false, false, c);
  ASSERT_TRUE(hit.ok()) << hit.error().message;
  EXPECT_TRUE(hit->has_value());
}
}  // namespace
}  // namespace ttvm
