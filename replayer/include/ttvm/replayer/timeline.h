// Timeline: time travel over one trace — the only layer that knows how to go
// backward (rr's split: the ReplaySession only moves forward).
//
// Design.
//  - Reverse execution is re-execution. The timeline owns one ReplaySession
//    and a set of Checkpoints (checkpoint.h). To reach step t it restores the
//    latest checkpoint at or before t (or keeps the current state when that
//    is closer) and runs forward. Reverse-step = seek(now - n).
//  - Placement. While it runs forward toward a target, the timeline takes a
//    checkpoint whenever the distance from the last one reaches
//    spacing(d) = clamp(d / kPerOctave, interval, grid), d being the distance
//    to the target (or "now"): dense next to where the user works, thinning
//    exponentially with distance, never sparser than a uniform grid of
//    about 1024 over the whole history (seeks stay bounded).
//    After each operation thin() drops checkpoints the rule no longer needs,
//    then, while checkpoint memory exceeds the budget, drops the ones whose
//    loss costs least (gap they leave / distance from now). Step 0 is never
//    dropped. Dirty-page tracking makes a checkpoint cost O(dirty pages).
//  - Breakpoints and watchpoints (ids from add*, any number, linear or
//    physical) are the CPU's debugger facilities. They are armed only for
//    user-visible motion: internal re-execution runs with none, so it never
//    reports a stop nobody asked for.
//  - Stops, the same in both directions. A breakpoint stop is the position
//    where the instruction at the address is about to execute. A watchpoint
//    fires on the step that accessed: going forward the timeline stops after
//    that step (the hardware's trap position); going backward it stops
//    before it (at the accessing instruction, as gdb expects of reverse
//    execution). Forward motion never reports a breakpoint at the position it
//    starts from; backward motion only finds hits strictly before it — so a
//    reverse move that lands on a breakpoint does not re-trigger it.
//    reverseContinue scans the intervals between checkpoints backward,
//    replaying each with the breakpoints armed and keeping its last hit.
//  - Every long operation takes a Control: a cancel flag checked at least
//    every million steps and a progress callback (done, total).
//  - Engine fallback (engine_fallback.h). The session runs the fast engine
//    unless told otherwise (TimelineOptions::engine). When it diverges on
//    the fast engine during a motion or a query, the timeline switches to
//    the reference engine for good, drops every checkpoint but the first
//    (the others hold state the fast engine computed), replays from there
//    to where the operation began, does the operation again and reports
//    both outcomes (engineFallback(), setEngineFallbackHandler()).
//  - Digests. The first time the replay passes a step, the session compares
//    the trace's state and device digests there. Re-executing that history
//    from a checkpoint (the whole work of a seek or a reverse-step) compares
//    the state digests again but not the device digests: replay is
//    deterministic, and each device digest hashes ~100 KB of device state.
//    ThreeThousandRandomMoves (tests/e2e) compares the device state reached
//    by re-execution with a forward replay's.
//
// Threads: a Timeline is single-threaded; a GUI runs it on one worker thread
// and cancels through the flag from another.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/machine/divergence.h"
#include "ttvm/replayer/checkpoint.h"
#include "ttvm/replayer/engine_fallback.h"
#include "ttvm/replayer/queries.h"
#include "ttvm/replayer/replay_session.h"

namespace ttvm {

struct TimelineOptions {
  // Checkpoint memory budget in bytes; 0 = a quarter of MemAvailable, at
  // most the guest's RAM size (at least 64 MiB).
  uint64_t checkpointMemBytes = 0;
  // Smallest spacing between checkpoints (steps): bounds reverse-step latency.
  uint64_t checkpointInterval = 1u << 16;
  // The engine the session starts on (see the header comment's engine
  // fallback).
  CpuEngine engine = kDefaultReplayEngine;
};

enum class StopKind : uint8_t {
  kStepDone,      // the requested motion completed
  kBreakpoint,    // at a breakpoint (breakpointId)
  kWatchpoint,    // a watchpoint fired (watchpointId, watch*)
  kHistoryBegin,  // reached step 0 of the trace going backward
  kHistoryEnd,    // reached the end of the trace going forward
  kException,     // the guest took an exception chosen by setExceptionStops (vector);
                  // stopped at the faulting/trapping instruction, before delivery
  kCancelled,     // Control::cancel was set; the position is valid
  kDivergence,    // the replay disagreed with the trace (divergence)
};
const char* toString(StopKind k);

struct StopReason {
  StopKind kind = StopKind::kStepDone;
  uint64_t step = 0;  // the position now
  int breakpointId = -1;
  int watchpointId = -1;
  WatchKind watchKind = WatchKind::kWrite;
  uint64_t watchAddress = 0;  // the accessed address (linear or physical as set)
  unsigned watchSize = 0;
  bool watchWrite = false;
  uint64_t accessStep = 0;  // kWatchpoint: the step that performed the access
  uint8_t vector = 0;       // kException: the vector delivered
  std::optional<machine::DivergenceReport> divergence;
};

struct Control {
  const std::atomic<bool>* cancel = nullptr;
  // (steps done, steps total) of the current operation; total may grow.
  std::function<void(uint64_t, uint64_t)> progress;
};

// An exception the replay saw the CPU deliver (Timeline::replayedExceptions).
struct ReplayedException {
  uint64_t step = 0;  // the faulting or trapping instruction's position
  uint8_t vector = 0;
  bool hasErrorCode = false;
  uint32_t errorCode = 0;
  bool operator==(const ReplayedException&) const = default;
};

struct TimelineStats {
  size_t checkpoints = 0;
  uint64_t checkpointBytes = 0;  // pages and page tables held for checkpoints
  uint64_t budgetBytes = 0;
  uint64_t guestRamBytes = 0;
  uint64_t stepsExecuted = 0;  // by the session since open (forward work done)
};

class Timeline {
 public:
  // Opens a timeline at step 0 of `reader` (which must outlive it).
  static Result<std::unique_ptr<Timeline>> open(const TraceReader& reader,
                                                const TimelineOptions& options = {});
  ~Timeline();
  Timeline(const Timeline&) = delete;
  Timeline& operator=(const Timeline&) = delete;

  // Where we are.
  uint64_t now() const { return session_->step(); }
  uint64_t beginStep() const { return beginStep_; }
  uint64_t endStep() const { return session_->endStep(); }
  // For a trace followed while it is recorded: takes the end its reader knows
  // after TraceReader::refresh(), and spaces checkpoints for the longer span.
  void extendEnd();
  const CpuState& registers() const { return session_->state(); }
  // Memory at the current position: linear through the guest's page tables
  // (false when a byte is unmapped), physical RAM (false outside RAM).
  bool readLinear(uint64_t address, std::span<uint8_t> out) const;
  bool readPhysical(uint64_t address, std::span<uint8_t> out) const;
  std::optional<uint64_t> translate(uint64_t linear) const;
  std::span<const uint8_t> ram() const { return session_->ram(); }
  ReplaySession& session() { return *session_; }
  const GuestSymbols& symbols() const { return session_->symbols(); }
  Status addSymbolFile(const std::string& path) { return session_->addSymbolFile(path); }

  // Breakpoints and watchpoints; ids are never reused.
  int addBreakpoint(uint64_t address, bool physical = false);
  int addWatchpoint(uint64_t address, uint64_t length, WatchKind kind, bool physical = false);
  bool removeBreakpoint(int id);
  bool removeWatchpoint(int id);
  void clearBreakpointsAndWatchpoints();
  // Guest exceptions that stop continue/reverseContinue/step like a signal in
  // gdb: bit i = vector i (0 = none). The stop is before the delivery step,
  // at the instruction that faulted or trapped, in both directions.
  void setExceptionStops(uint32_t vectors) { exceptionStops_ = vectors; }

  // Motion. Each returns where it stopped and why.
  StopReason seek(uint64_t step, const Control& control = {});
  StopReason step(uint64_t n = 1, const Control& control = {});
  StopReason stepBack(uint64_t n = 1, const Control& control = {});
  StopReason continueForward(const Control& control = {});
  StopReason reverseContinue(const Control& control = {});
  StopReason runToEnd(const Control& control = {});

  // Queries (queries.h; implemented in queries.cc over the scans below). Each
  // returns the hit (nullopt: none in that direction) and, when `move`, moves
  // there; otherwise the position is kept. An error only for a divergence or
  // cancellation during the search (the position is then kept too).
  Result<std::optional<QueryHit>> lastWrite(uint64_t address, uint64_t length, bool physical,
                                            bool move, const Control& control = {});
  Result<std::optional<QueryHit>> nextWrite(uint64_t address, uint64_t length, bool physical,
                                            bool move, const Control& control = {});
  Result<std::optional<QueryHit>> registerLastChange(const RegisterRef& reg, bool move,
                                                     const Control& control = {});
  Result<std::optional<QueryHit>> previousEvent(const EventQuery& q, bool move,
                                                const Control& control = {});
  Result<std::optional<QueryHit>> nextEvent(const EventQuery& q, bool move,
                                            const Control& control = {});

  // A whole-machine trace holds no device access: the replay's own port
  // and MMIO accesses and interrupts (ReplayEnvironment::observeAccesses), each
  // kept once however often its step is replayed, in step order, for every
  // step replayed so far (all steps before accessesKnownUpTo()). The event
  // queries and the GUI's console read them; empty for an old-mode trace,
  // whose events hold them.
  const std::vector<TraceEvent>& replayedAccesses() const { return accesses_; }
  uint64_t accessesKnownUpTo() const { return accessesKnownUpTo_; }
  // Any trace: the exceptions the replay saw delivered, once each, in step
  // order, for every step replayed so far (those before
  // exceptionsKnownUpTo()). With replayedAccesses() this is the replay-pass
  // index of what a whole-machine trace does not hold (the GUI's Events
  // dock); an exception query (previousEvent/nextEvent kException) finds
  // the same steps by running with exception stops armed.
  const std::vector<ReplayedException>& replayedExceptions() const { return exceptions_; }
  uint64_t exceptionsKnownUpTo() const { return deviceDigestsCheckedBefore_; }

  // What happened when the fast engine diverged (nullopt while it has not);
  // the session then runs the reference engine. The handler is called once,
  // after the operation that fell back was done again (from inside that
  // operation's call, on its thread).
  const std::optional<EngineFallback>& engineFallback() const { return fallback_; }
  // At endStep(): the footer's final state compared with the current one
  // (ReplaySession::checkEndState: empty when they agree). A difference on
  // the fast engine falls back to the reference engine like a divergence.
  std::string checkEndState();
  void setEngineFallbackHandler(std::function<void(const EngineFallback&)> handler) {
    fallbackHandler_ = std::move(handler);
  }

  TimelineStats stats() const;
  // Steps of the checkpoints held, ascending (tests and benchmarks).
  std::vector<uint64_t> checkpointSteps() const;

 private:
  struct Breakpoint {
    DebuggerBreakpoint bp;
  };
  struct Watchpoint {
    DebuggerWatchpoint wp;
  };
  // What a scan arms in the CPU and how hits map back to ids.
  struct Arming {
    std::vector<DebuggerBreakpoint> bps;
    std::vector<int> bpIds;
    std::vector<DebuggerWatchpoint> wps;
    std::vector<int> wpIds;
    uint32_t exceptionVectors = 0;  // stop on these exceptions
    bool anyException = false;
    // The queries' armings (queries.cc): one write watchpoint on
    // [address, address+length); the exceptions `vectors` (0 = any).
    static Arming writesTo(uint64_t address, uint64_t length, bool physical);
    static Arming exceptions(uint32_t vectors);
  };
  struct Hit {
    uint64_t landing = 0;  // the position to report (see the header comment)
    SessionStop stop;
    int id = -1;
    bool breakpoint = false;
    bool exception = false;
    // As a query's answer (queries.cc): the step, and the access or the vector.
    QueryHit queryHit() const;
  };

  Timeline(const TraceReader& reader, const TimelineOptions& options);
  Arming userArming() const;
  void arm(const Arming& a);
  void disarm();
  int breakpointIdAt(const Arming& a) const;

  // Restores checkpoint `c` (RAM pages that differ, CPU, trace position).
  void restore(const Checkpoint& c);
  void takeCheckpoint();
  // The latest checkpoint at or before `step`.
  const Checkpoint& checkpointAtOrBefore(uint64_t step) const;
  uint64_t spacing(uint64_t distance) const;
  // Adds a checkpoint at `step` (none there yet) to checkpoints_ and steps_.
  void addCheckpoint(uint64_t step, Checkpoint c);
  void thin();
  // Drops checkpoints (least useful first) while over the memory budget.
  void enforceBudget();
  // Forward to `target` without stops, taking checkpoints; kStepDone,
  // kHistoryEnd, kCancelled or kDivergence.
  StopReason moveTo(uint64_t target, const Control& control, uint64_t doneBase = 0,
                    uint64_t total = 0);
  // Forward from now up to `limit` with `a` armed: the first hit, else the
  // position reached.
  StopReason scanForward(uint64_t limit, const Arming& a, const Control& control,
                         std::optional<Hit>* hitOut);
  // The last hit with landing in [lower, now), searching interval by
  // interval backward; leaves the position undefined (callers seek).
  Result<std::optional<Hit>> scanBackward(uint64_t lower, const Arming& a, const Control& control);
  // session_->runTo, counting the steps and what history it has checked.
  SessionStop run(uint64_t target, RunOptions ro);
  StopReason stopFromHit(const Hit& h, const Arming& a) const;
  StopReason divergenceStop() const;
  // After a backward scan that diverged or was cancelled: back to origin,
  // with the divergence (if any) as the stop.
  StopReason backwardScanFailed(uint64_t origin);
  // Seeks to a backward scan's hit and reports it.
  StopReason stopAtHit(const Hit& hit, const Arming& a, const Control& control);

  // Runs `op`, a public motion or query; if the fast engine diverged during
  // it, falls back to the reference engine (the header comment) and runs it
  // again from where it began. Nested calls run `op` as it is.
  template <typename Op>
  auto withEngineFallback(Op&& op) {
    if (inOperation_) return op();
    const uint64_t origin = now();
    inOperation_ = true;
    fastDivergence_.reset();
    auto r = op();
    if (fastDivergence_) {
      fallBackToReference(origin);
      r = op();
      finishFallback();
    }
    inOperation_ = false;
    return r;
  }
  // The reference engine, the first checkpoint, forward to `origin`.
  void fallBackToReference(uint64_t origin);
  // Records the reference's outcome in fallback_ and calls the handler.
  void finishFallback();

  // What the queries (queries.cc) are written against, besides scanBackward
  // and the trace: none of them runs the session itself.
  // The first hit of `a` strictly after now (a hit at the instruction of the
  // start position is not one); leaves the position undefined.
  Result<std::optional<Hit>> findNext(const Arming& a, const Control& control);
  // The last step before now after which `value` of the CPU state differs
  // from before it (step, oldValue, newValue), re-executing one step at a
  // time interval by interval backward; leaves the position undefined.
  Result<std::optional<QueryHit>> lastChangeOf(
      const std::function<uint64_t(const CpuState&)>& value, const Control& control);
  // Ends a query begun at `origin`: on a hit with `move`, at the hit, else
  // back at origin; thins after a search that completed.
  Result<std::optional<QueryHit>> endQuery(uint64_t origin, Result<std::optional<QueryHit>> found,
                                           bool move);
  // Whether `q` looks for device accesses a whole-machine trace does not
  // hold: the query reads replayedAccesses() instead of the trace.
  bool replayedInstead(const EventQuery& q) const;

  const TraceReader& reader_;
  TimelineOptions options_;
  std::unique_ptr<ReplaySession> session_;
  std::shared_ptr<PageStats> stats_;
  PageMap live_;  // RAM as of the last checkpoint taken or restored, before dirty pages
  std::map<uint64_t, Checkpoint> checkpoints_;
  // checkpoints_'s keys in order: what thin() and enforceBudget() scan at
  // every operation (a contiguous array instead of ~1,000 scattered nodes).
  std::vector<uint64_t> steps_;
  uint64_t beginStep_ = 0;
  uint64_t grid_ = 0;
  std::map<int, Breakpoint> breakpoints_;
  std::map<int, Watchpoint> watchpoints_;
  int nextId_ = 1;
  uint32_t exceptionStops_ = 0;
  uint64_t stepsExecuted_ = 0;
  // The session has compared every device digest of the steps before this
  // (it has replayed them all: exceptionsKnownUpTo()).
  uint64_t deviceDigestsCheckedBefore_ = 0;
  std::vector<TraceEvent> accesses_;           // replayedAccesses()
  std::vector<ReplayedException> exceptions_;  // replayedExceptions()
  uint64_t accessesKnownUpTo_ = 0;
  // Engine fallback (withEngineFallback): the fast engine's divergence in
  // the current operation; the reference engine's first divergence and
  // furthest step since the fallback.
  bool inOperation_ = false;
  std::optional<machine::DivergenceReport> fastDivergence_;
  std::optional<machine::DivergenceReport> referenceDivergence_;
  uint64_t referenceReached_ = 0;
  bool referenceEndAgrees_ = false;  // the reference passed checkEndState()
  std::optional<EngineFallback> fallback_;
  std::function<void(const EngineFallback&)> fallbackHandler_;
};

}  // namespace ttvm
