// replay_bench: time travel on a long trace, against forward replay measured
// in the same run.
//
//   1. records a long-running guest (default: replay_workload/long_run.asm,
//      about 1e9 steps) with the recorder library, timing it (recording speed);
//   2. replays it forward with a plain ReplaySession (replay speed, and the
//      ratio replay/record);
//   3. opens a Timeline, runs it to the end (checkpoints taken on the way),
//      then at N random positions: seek there (seek latency) and reverse-step
//      one instruction (reverse-step latency); median and 99th percentile;
//   4. checkpoint memory against guest RAM;
//   5. reverse-continue over 1e8 steps to a breakpoint hit only at step 1,
//      against replaying the same span forward;
//   6. forward replay with a debugger watchpoint (any access, 8 bytes) on a
//      physical page the guest never touches: with the fast engine, against
//      the reference engine in the same run (which takes step() for every
//      step while a watchpoint is set; the fast engine stays at block speed,
//      issue 14 point 3). A guest that touches the page fails the bench.
//
// usage: replay_bench [--guest ELF [--append ARGS] | --trace TRACE] [--positions N] [--keep]
//                     [--engine fast|reference]   (the CPU engine that replays: by default
//                                                  the replay default, kDefaultReplayEngine;
//                                                  the recording runs the reference engine)
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "ttvm/formats/trace_reader.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"
#include "ttvm/recorder/record_session.h"
#include "ttvm/replayer/timeline.h"

using ttvm::machine::loadGuest;
using ttvm::machine::LoadOptions;
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
using ttvm::machine::readFileBytes;

namespace {

// Timings are taken on two clocks: wall time, and this thread's CPU time.
// On a shared, loaded host the CPU time is the better estimate of what the
// work costs on an idle machine (the replay is single-threaded and does no I/O
// beyond reading the trace, which the page cache holds).
struct Stamp {
  std::chrono::steady_clock::time_point wall;
  double cpu;
};

double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Clock {
  static Stamp now() { return Stamp{std::chrono::steady_clock::now(), threadCpuSeconds()}; }
};

struct Elapsed {
  double wall;
  double cpu;
};

Elapsed since(const Stamp& t) {
  return Elapsed{std::chrono::duration<double>(std::chrono::steady_clock::now() - t.wall).count(),
                 threadCpuSeconds() - t.cpu};
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

// A guest-physical address the default workloads never touch (below the
// 1 MiB where multiboot kernels load; the loader's tables lie elsewhere).
constexpr uint64_t kUntouchedPhys = 0x80000;

int fail(const std::string& what) {
  std::fprintf(stderr, "replay_bench: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ttvm;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string guest;
#ifdef REPLAY_BENCH_GUEST
  guest = REPLAY_BENCH_GUEST;
#endif
  std::string trace;
  std::string append;  // the guest's command line after its name (int_workload: rounds=N)
  int positions = 1000;
  bool keep = false;
  CpuEngine engine = kDefaultReplayEngine;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--guest" && i + 1 < argc)
      guest = argv[++i];
    else if (a == "--append" && i + 1 < argc)
      append = argv[++i];
    else if (a == "--trace" && i + 1 < argc)
      trace = argv[++i];
    else if (a == "--positions" && i + 1 < argc)
      positions = std::atoi(argv[++i]);
    else if (a == "--keep")
      keep = true;
    else if (a == "--engine" && i + 1 < argc && std::string(argv[i + 1]) == "fast" && ++i)
      engine = CpuEngine::kFast;
    else if (a == "--engine" && i + 1 < argc && std::string(argv[i + 1]) == "reference" && ++i)
      engine = CpuEngine::kReference;
    else
      return fail(
          "usage: replay_bench [--guest ELF [--append ARGS] | --trace TRACE] [--positions N] "
          "[--keep] "
          "[--engine fast|reference]");
  }

  double recordSeconds = 0;
  uint64_t recordSteps = 0;
  bool recorded = false;
  if (trace.empty()) {
    if (guest.empty()) return fail("no guest: pass --guest ELF or --trace TRACE");
    trace = (std::filesystem::temp_directory_path() / "ttvm-replay-bench.ttvm").string();
    auto machine = Machine::create(MachineOptions{});
    if (!machine.ok()) return fail(machine.error().message);
    auto bytes = readFileBytes(guest, (*machine)->ram().size(), "of guest RAM");
    if (!bytes.ok()) return fail(bytes.error().message);
    LoadOptions lo;
    lo.name = std::filesystem::path(guest).filename().string();
    lo.append = append;
    auto loaded = loadGuest(**machine, *bytes, lo);
    if (!loaded.ok()) return fail(loaded.error().message);
    RecordOptions ro;
    ro.tracePath = trace;
    ro.ttvmVersion = "bench";
    RecordSession rec(**machine, std::move(loaded).value(), ro);
    Status st = rec.start();
    if (!st.ok()) return fail(st.error().message);
    const auto t0 = Clock::now();
    auto result = rec.run();
    const Elapsed e = since(t0);
    recordSeconds = e.cpu;
    std::printf("(recording wall time %.2f s)\n", e.wall);
    if (!result.ok()) return fail(result.error().message);
    recordSteps = result->end.steps;
    recorded = true;
    std::printf("recorded %s: %" PRIu64 " steps in %.2f s CPU (%.1f M steps/s, emulator backend)\n",
                lo.name.c_str(), recordSteps, recordSeconds, recordSteps / recordSeconds / 1e6);
  }

  auto reader = TraceReader::open(trace);
  if (!reader.ok()) return fail(reader.error().message);

  // Forward replay, plain session.
  double forwardSeconds = 0;
  uint64_t endStep = 0;
  {
    auto s = ReplaySession::open(*reader, engine);
    if (!s.ok()) return fail(s.error().message);
    std::printf("engine: %s\n", toString(engine));
    const auto t0 = Clock::now();
    SessionStop stop = (*s)->runTo(~0ull);
    const Elapsed e = since(t0);
    forwardSeconds = e.cpu;
    if (stop.kind != SessionStopKind::kEnd)
      return fail("forward replay stopped early: " +
                  ((*s)->divergence() ? (*s)->divergence()->format() : toString(stop.kind)));
    endStep = (*s)->step();
    std::printf("forward replay: %" PRIu64
                " steps in %.2f s CPU, %.2f s wall (%.1f M steps/s CPU)\n",
                endStep, forwardSeconds, e.wall, endStep / forwardSeconds / 1e6);
    if (recorded)
      std::printf("replay speed / recording speed: %.3f\n", recordSeconds / forwardSeconds);
  }

  // Timeline.
  TimelineOptions timelineOptions;
  timelineOptions.engine = engine;
  auto tl = Timeline::open(*reader, timelineOptions);
  if (!tl.ok()) return fail(tl.error().message);
  Timeline& t = **tl;
  {
    const auto t0 = Clock::now();
    StopReason r = t.runToEnd();
    const double s = since(t0).cpu;
    if (r.kind != StopKind::kHistoryEnd)
      return fail(std::string("runToEnd: ") + toString(r.kind) +
                  (r.divergence ? ": " + r.divergence->format() : std::string()));
    std::printf("timeline first pass to the end (taking checkpoints): %.2f s (%.2fx forward)\n", s,
                s / forwardSeconds);
  }
  std::mt19937_64 rng(12345);
  std::vector<double> seekMs, backMs, seekWallMs, backWallMs;
  uint64_t replayedBefore = t.stats().stepsExecuted;
  for (int i = 0; i < positions; ++i) {
    const uint64_t pos = 1 + rng() % endStep;
    auto t0 = Clock::now();
    StopReason r = t.seek(pos);
    Elapsed e = since(t0);
    seekMs.push_back(e.cpu * 1e3);
    seekWallMs.push_back(e.wall * 1e3);
    if (r.kind == StopKind::kDivergence)
      return fail("divergence during seek: " +
                  (r.divergence ? r.divergence->format() : std::string("(no report)")));
    t0 = Clock::now();
    r = t.stepBack(1);
    e = since(t0);
    backMs.push_back(e.cpu * 1e3);
    backWallMs.push_back(e.wall * 1e3);
    if (r.kind != StopKind::kStepDone || t.now() != pos - 1) return fail("stepBack failed");
  }
  const TimelineStats st = t.stats();
  std::printf(
      "%d random positions: seek median %.2f ms, p99 %.2f ms; reverse-step median %.3f ms, "
      "p99 %.3f ms\n",
      positions, percentile(seekMs, 0.5), percentile(seekMs, 0.99), percentile(backMs, 0.5),
      percentile(backMs, 0.99));
  std::printf("  steps re-executed per position: %.0f on average\n",
              static_cast<double>(st.stepsExecuted - replayedBefore) / positions);
  std::printf("checkpoints: %zu holding %.1f MiB (guest RAM %.0f MiB: %.3fx); budget %.0f MiB\n",
              st.checkpoints, st.checkpointBytes / 1048576.0, st.guestRamBytes / 1048576.0,
              static_cast<double>(st.checkpointBytes) / static_cast<double>(st.guestRamBytes),
              st.budgetBytes / 1048576.0);

  // Reverse-continue over 1e8 steps (or the whole trace when shorter): a
  // breakpoint at the instruction executed at step 1 (start-up code that
  // runs once), reverse-continue from step 1 + span.
  const uint64_t span = std::min<uint64_t>(100'000'000, endStep - 1);
  t.seek(1);
  const uint64_t bpRip = t.session().linearRip(t.registers().rip);
  t.seek(1 + span);
  const int bp = t.addBreakpoint(bpRip);
  {
    const auto t0 = Clock::now();
    StopReason r = t.reverseContinue();
    const Elapsed e = since(t0);
    // Forward replay of the same span.
    auto fs = ReplaySession::open(*reader, engine);
    if (!fs.ok()) return fail(fs.error().message);
    (*fs)->runTo(r.step);
    const auto t1 = Clock::now();
    (*fs)->runTo(1 + span);
    const Elapsed f = since(t1);
    std::printf("reverse-continue over %" PRIu64 " steps to a breakpoint (%s at step %" PRIu64
                "): %.2f s CPU (%.2f s wall); forward replay of the span %.2f s CPU; ratio %.2f\n",
                span, toString(r.kind), r.step, e.cpu, e.wall, f.cpu, e.cpu / f.cpu);
  }
  t.removeBreakpoint(bp);

  // Forward replay under a watchpoint that never fires.
  const DebuggerWatchpoint untouched{kUntouchedPhys, 8, WatchKind::kAccess, true};
  double watchedSeconds[2] = {0, 0};
  const CpuEngine engines[2] = {engine, CpuEngine::kReference};
  for (int k = 0; k < (engine == CpuEngine::kReference ? 1 : 2); ++k) {
    auto s = ReplaySession::open(*reader, engines[k]);
    if (!s.ok()) return fail(s.error().message);
    (*s)->cpu().setWatchpoints({untouched});
    const auto t0 = Clock::now();
    SessionStop stop = (*s)->runTo(~0ull);
    const Elapsed e = since(t0);
    watchedSeconds[k] = e.cpu;
    if (stop.kind != SessionStopKind::kEnd)
      return fail("replay with a watchpoint on physical " + std::to_string(kUntouchedPhys) +
                  " stopped at step " + std::to_string(stop.step) + ": " + toString(stop.kind));
    std::printf(
        "forward replay with a watchpoint on an untouched page (%s engine): %.2f s CPU, "
        "%.2f s wall (%.2fx the plain forward replay on the %s engine)\n",
        toString(engines[k]), e.cpu, e.wall, e.cpu / forwardSeconds, toString(engine));
  }
  if (engine != CpuEngine::kReference)
    std::printf("watched replay, reference / %s engine time: %.2f\n", toString(engine),
                watchedSeconds[1] / watchedSeconds[0]);
  if (recorded && !keep) std::filesystem::remove(trace);
  return 0;
}
