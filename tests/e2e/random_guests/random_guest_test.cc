// Every recording verifies, however it ends: random guests (random_guest.h)
// are recorded and replayed in-process, and the replay must agree with the
// recording at every event, every state digest and in the final state —
// triple faults after every exception class, double faults, stack faults on
// read-only pages, hangs, exits, panics, resets, shutdowns and step limits.
// The recorder's own re-execution of the tail must reproduce it as well.
// Half the guests record on the fast engine and replay on the reference one,
// half the other way round (issue 14).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>

#include "random_guest.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/recorder/emu_backend.h"
#include "ttvm/recorder/record_session.h"
#include "ttvm/replayer/replay_session.h"

namespace ttvm::testing {
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
namespace {

// 10^4 guests in CI, split so that a shard stays well under two minutes on
// two busy cores (a guest records and verifies in about 1 ms).
constexpr uint64_t kGuests = 10000;
constexpr uint64_t kShards = 4;

struct GuestRun {
  EndReason reason = EndReason::kInternalError;
  std::string problem;  // empty when it recorded and verified
};

GuestRun recordAndVerify(uint64_t seed, const std::string& trace) {
  GuestRun out;
  MachineOptions mo;
  mo.ramBytes = kRandomGuestRam;
  auto machine = Machine::create(mo);
  if (!machine.ok()) return {out.reason, machine.error().message};
  RandomGuest info;
  auto guest = buildRandomGuest(**machine, seed, info);
  if (!guest.ok()) return {out.reason, guest.error().message};
  RecordOptions ro;
  ro.tracePath = trace;
  ro.maxSteps = 3000;
  ro.digestInterval = 16;
  ro.tailWindow = 64;  // the tail re-execution starts mid-run
  // Issue 14: half the guests record on the fast engine and replay on the
  // reference one, the other half the other way round.
  const CpuEngine recordEngine = seed % 2 ? CpuEngine::kFast : CpuEngine::kReference;
  const CpuEngine replayEngine = seed % 2 ? CpuEngine::kReference : CpuEngine::kFast;
  ro.makeBackend = [recordEngine](
                       const CpuModel& model, PhysicalMemory memory,
                       Environment& env) -> Result<std::unique_ptr<machine::CpuBackend>> {
    auto b = std::make_unique<EmuBackend>(model, std::move(memory), env);
    b->cpu().setEngine(recordEngine);
    return std::unique_ptr<machine::CpuBackend>(std::move(b));
  };
  RecordSession session(**machine, std::move(guest).value(), ro);
  if (Status s = session.start(); !s.ok()) return {out.reason, s.error().message};
  auto rec = session.run();
  if (!rec.ok()) return {out.reason, info.description + ": " + rec.error().message};
  out.reason = rec->end.reason;
  const std::string what = info.description + " recorded on the " + toString(recordEngine) +
                           " engine (" + std::string(endReasonName(out.reason)) + " at step " +
                           std::to_string(rec->end.steps) + "): ";
  if (!session.tailProblem.empty())
    return {out.reason, what + "the recorder's tail re-execution: " + session.tailProblem};

  auto reader = TraceReader::open(trace);
  if (!reader.ok()) return {out.reason, what + reader.error().message};
  auto replay = ReplaySession::open(*reader);
  if (!replay.ok()) return {out.reason, what + replay.error().message};
  (*replay)->cpu().setEngine(replayEngine);
  const SessionStop stop = (*replay)->runTo(~0ull);
  if (stop.kind != SessionStopKind::kEnd) {
    auto d = (*replay)->divergence();
    return {out.reason, what + "replay stopped (" + toString(stop.kind) + ") at step " +
                            std::to_string(stop.step) + (d ? ": " + d->format() : "")};
  }
  if (std::string diff = (*replay)->checkEndState(); !diff.empty())
    return {out.reason, what + "end state differs: " + diff};
  return out;
}

class RandomGuests : public ::testing::TestWithParam<uint64_t> {};

TEST_P(RandomGuests, RecordAndVerify) {
  const uint64_t shard = GetParam();
  const uint64_t first = shard * kGuests / kShards, last = (shard + 1) * kGuests / kShards;
  const std::string trace =
      ::testing::TempDir() + "/random_guest_" + std::to_string(::getpid()) + ".ttvm";
  std::map<EndReason, int> reasons;
  int failures = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t seed = first; seed < last; ++seed) {
    GuestRun r = recordAndVerify(seed, trace);
    ++reasons[r.reason];
    if (!r.problem.empty() && ++failures <= 10) ADD_FAILURE() << r.problem;
  }
  ::unlink(trace.c_str());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("shard %llu: %llu guests in %.2f s;", static_cast<unsigned long long>(shard),
              static_cast<unsigned long long>(last - first), seconds);
  for (const auto& [reason, n] : reasons)
    std::printf(" %s %d", std::string(endReasonName(reason)).c_str(), n);
  std::printf("\n");
  EXPECT_EQ(failures, 0);
  // The generator reaches every way a run can end on its own.
  for (EndReason r :
       {EndReason::kTripleFault, EndReason::kExitDevice, EndReason::kPanic, EndReason::kReset,
        EndReason::kShutdown, EndReason::kHang, EndReason::kMaxSteps})
    EXPECT_GT(reasons[r], 0) << endReasonName(r);
}

INSTANTIATE_TEST_SUITE_P(Shards, RandomGuests, ::testing::Range<uint64_t>(0, kShards));

// The generator covers every planned fault in both modes and with each IDT.
TEST(RandomGuestGenerator, CoversEveryFaultModeAndIdt) {
  std::map<std::string, int> seen;
  MachineOptions mo;
  mo.ramBytes = kRandomGuestRam;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    auto machine = Machine::create(mo);
    ASSERT_TRUE(machine.ok());
    RandomGuest info;
    auto g = buildRandomGuest(**machine, seed, info);
    ASSERT_TRUE(g.ok()) << g.error().message;
    ++seen[plannedFaultName(info.fault) + std::string(info.longMode ? "/64" : "/32")];
    ++seen["idt " + info.idt];
    ++seen[info.paging ? "paging" : "flat"];
  }
  for (int f = 0; f < int(PlannedFault::kCount); ++f) {
    const std::string name = plannedFaultName(static_cast<PlannedFault>(f));
    EXPECT_GT(seen[name + "/32"] + seen[name + "/64"], 0) << name;
  }
  for (const char* k : {"idt none", "idt partial", "idt full", "paging", "flat", "#PF-absent/64",
                        "#PF-absent/32", "push-ro/32", "#UD/64", "#UD/32"})
    EXPECT_GT(seen[k], 0) << k;
}

}  // namespace
}  // namespace ttvm::testing
