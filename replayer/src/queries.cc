// The Timeline's queries (queries.h): what each one looks for and how its
// answer reads. Going backward or forward through the history is the
// Timeline's (timeline.cc); the queries use its scans (scanBackward,
// findNext, lastChangeOf) and endQuery, and read the trace's events directly.
#include "ttvm/replayer/queries.h"

#include <algorithm>
#include <iterator>

#include "ttvm/emulator/state_diff.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm {

std::string exceptionName(uint8_t vector) {
  static const char* const kNames[] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
                                       "#DF", "#09", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
                                       "#MF", "#AC", "#MC", "#XM", "#VE", "#CP"};
  if (vector < std::size(kNames)) return kNames[vector];
  return "vector " + std::to_string(vector);
}
namespace {

bool eventMatches(const EventQuery& q, const TraceEvent& e) {
  switch (q.kind) {
    case EventQuery::Kind::kInterrupt:
      return e.kind == EventKind::kInterrupt || e.kind == EventKind::kNmi;
    case EventQuery::Kind::kPortIo:
      return (e.kind == EventKind::kPortIn || e.kind == EventKind::kPortOut) &&
             (q.anyPort || e.address == q.port);
    case EventQuery::Kind::kSerialOutput:
      return e.kind == EventKind::kPortOut && (e.address == 0x3F8 || e.address == 0xE9);
    case EventQuery::Kind::kTraceEvent: return e.kind == q.eventKind;
    case EventQuery::Kind::kException: return false;
  }
  return false;
}

QueryHit hitFromEvent(const TraceEvent& e) {
  QueryHit q;
  q.step = e.step;
  q.address = e.address;
  q.size = e.size;
  q.event = e;
  if (e.kind == EventKind::kInterrupt) q.vector = static_cast<uint8_t>(e.value);
  if (e.kind == EventKind::kNmi) q.vector = 2;
  return q;
}

// A found hit (or none) as a query's answer.
template <typename H>
Result<std::optional<QueryHit>> answer(const Result<std::optional<H>>& found) {
  if (!found.ok()) return found.error();
  if (!found->has_value()) return std::optional<QueryHit>();
  return std::optional<QueryHit>((**found).queryHit());
}

}  // namespace

Timeline::Arming Timeline::Arming::writesTo(uint64_t address, uint64_t length, bool physical) {
  Arming a;
  a.wps.push_back(
      DebuggerWatchpoint{address, std::max<uint64_t>(1, length), WatchKind::kWrite, physical});
  a.wpIds.push_back(-1);
  return a;
}

Timeline::Arming Timeline::Arming::exceptions(uint32_t vectors) {
  Arming a;
  a.exceptionVectors = vectors;
  a.anyException = vectors == 0;
  return a;
}

QueryHit Timeline::Hit::queryHit() const {
  QueryHit q;
  q.step = landing;
  if (exception) {
    q.vector = stop.result.vector;
  } else {
    q.address = stop.result.watch.address;
    q.size = stop.result.watch.size;
  }
  return q;
}

Result<std::optional<QueryHit>> Timeline::lastWrite(uint64_t address, uint64_t length,
                                                    bool physical, bool move,
                                                    const Control& control) {
  return withEngineFallback([&]() -> Result<std::optional<QueryHit>> {
    const uint64_t origin = now();
    return endQuery(
        origin,
        answer(scanBackward(beginStep_, Arming::writesTo(address, length, physical), control)),
        move);
  });
}

Result<std::optional<QueryHit>> Timeline::nextWrite(uint64_t address, uint64_t length,
                                                    bool physical, bool move,
                                                    const Control& control) {
  return withEngineFallback([&]() -> Result<std::optional<QueryHit>> {
    const uint64_t origin = now();
    return endQuery(origin, answer(findNext(Arming::writesTo(address, length, physical), control)),
                    move);
  });
}

Result<std::optional<QueryHit>> Timeline::registerLastChange(const RegisterRef& reg, bool move,
                                                             const Control& control) {
  return withEngineFallback([&]() -> Result<std::optional<QueryHit>> {
    const uint64_t origin = now();
    return endQuery(origin, lastChangeOf(reg.read, control), move);
  });
}

bool Timeline::replayedInstead(const EventQuery& q) const {
  return session_->runsWholeMachine() && q.kind != EventQuery::Kind::kTraceEvent &&
         q.kind != EventQuery::Kind::kException;
}

Result<std::optional<QueryHit>> Timeline::previousEvent(const EventQuery& q, bool move,
                                                        const Control& control) {
  return withEngineFallback([&]() -> Result<std::optional<QueryHit>> {
    const uint64_t origin = now();
    if (q.kind == EventQuery::Kind::kException)
      return endQuery(
          origin, answer(scanBackward(beginStep_, Arming::exceptions(q.vectors), control)), move);
    std::optional<QueryHit> out;
    if (replayedInstead(q)) {
      // Every step before now has been replayed, so the index is complete here.
      for (auto it = std::lower_bound(accesses_.begin(), accesses_.end(), origin,
                                      [](const TraceEvent&e, uint64_t s) { return e.step < s; });
           it != accesses_.begin() && !out;) {
        --it;
        if (eventMatches(q, *it)) out = hitFromEvent(*it);
      }
      return endQuery(origin, out, move);
    }
    // Every other kind is a trace event: read the chunks backward from now's.
    const auto& chunks = reader_.chunks();
    const size_t i = reader_.chunkForStep(origin).value_or(chunks.empty() ? 0 : chunks.size() - 1);
    for (size_t k = i + 1; k-- > 0 && !out;) {
      if (control.cancel && control.cancel->load()) return makeError("cancelled");
      auto events = reader_.readChunk(k);
      if (!events.ok()) return events.error();
      for (auto it = events->rbegin(); it != events->rend(); ++it)
        if (it->step < origin && eventMatches(q, *it)) {
          out = hitFromEvent(*it);
          break;
        }
      if (control.progress) control.progress(i + 1 - k, i + 1);
    }
    return endQuery(origin, out, move);
  });
}

Result<std::optional<QueryHit>> Timeline::nextEvent(const EventQuery& q, bool move,
                                                    const Control& control) {
  return withEngineFallback([&]() -> Result<std::optional<QueryHit>> {
    const uint64_t origin = now();
    if (q.kind == EventQuery::Kind::kException)
      return endQuery(origin, answer(findNext(Arming::exceptions(q.vectors), control)), move);
    std::optional<QueryHit> out;
    if (replayedInstead(q)) {
      auto search = [&] {
        for (auto it = std::upper_bound(accesses_.begin(), accesses_.end(), origin,
                                        [](uint64_t s, const TraceEvent&e) { return s < e.step; });
             it != accesses_.end(); ++it)
          if (eventMatches(q, *it)) return std::optional<QueryHit>(hitFromEvent(*it));
        return std::optional<QueryHit>();
      };
      out = search();
      if (!out && accessesKnownUpTo_ < endStep()) {
        // Steps not replayed yet: replay to the end, which indexes them.
        const StopReason r = moveTo(endStep(), control);
        if (r.kind == StopKind::kCancelled) {
          moveTo(origin, {});
          return makeError("cancelled");
        }
        out = search();
      }
      return endQuery(origin, out, move);
    }
    // Every other kind is a trace event: read the chunks forward from now's.
    const auto& chunks = reader_.chunks();
    if (auto first = reader_.chunkForStep(origin + 1)) {
      for (size_t k = *first; k < chunks.size() && !out; ++k) {
        if (control.cancel && control.cancel->load()) return makeError("cancelled");
        auto events = reader_.readChunk(k);
        if (!events.ok()) return events.error();
        for (const TraceEvent& e : *events)
          if (e.step > origin && eventMatches(q, e)) {
            out = hitFromEvent(e);
            break;
          }
        if (control.progress) control.progress(k - *first + 1, chunks.size() - *first);
      }
    }
    return endQuery(origin, out, move);
  });
}

// ------------------------------------------------------------ registers

std::optional<RegisterRef> registerByName(std::string_view name) {
  for (int i = 0; i < kNumGprs; ++i)
    if (name == kGprNames[i])
      return RegisterRef{kGprNames[i], [i](const CpuState& s) { return s.gpr[i]; }};
  for (int i = 0; i < kNumSegRegs; ++i)
    if (name == kSegNames[i])
      return RegisterRef{kSegNames[i],
                         [i](const CpuState& s) { return uint64_t{s.seg[i].selector}; }};
  struct Named {
    const char* name;
    uint64_t (*read)(const CpuState&);
  };
  static const Named kOthers[] = {
      {"rip", [](const CpuState& s) { return s.rip; }},
      {"rflags", [](const CpuState& s) { return s.rflags; }},
      {"cr0", [](const CpuState& s) { return s.cr0; }},
      {"cr2", [](const CpuState& s) { return s.cr2; }},
      {"cr3", [](const CpuState& s) { return s.cr3; }},
      {"cr4", [](const CpuState& s) { return s.cr4; }},
      {"cr8", [](const CpuState& s) { return s.cr8; }},
      {"efer", [](const CpuState& s) { return s.msr.efer; }},
      {"fs_base", [](const CpuState& s) { return s.seg[4].base; }},
      {"gs_base", [](const CpuState& s) { return s.seg[5].base; }},
  };
  for (const Named& n : kOthers)
    if (name == n.name) return RegisterRef{n.name, n.read};
  return std::nullopt;
}

}  // namespace ttvm
