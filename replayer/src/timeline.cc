#include "ttvm/replayer/timeline.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "ttvm/base/log.h"

namespace ttvm {
namespace {

// Checkpoints per doubling of the distance from the current position.
constexpr uint64_t kPerOctave = 16;
// The uniform floor: at most about this many checkpoints spread over the
// whole history (fewer when the memory budget says so).
constexpr uint64_t kGridCheckpoints = 1024;

uint64_t defaultBudget() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024 / 4;
  return 1ull << 30;
}

bool allZero(std::span<const uint8_t> b) {
  for (uint8_t x : b)
    if (x != 0) return false;
  return true;
}

}  // namespace

const char* toString(StopKind k) {
  switch (k) {
    case StopKind::kStepDone: return "step done";
    case StopKind::kBreakpoint: return "breakpoint";
    case StopKind::kWatchpoint: return "watchpoint";
    case StopKind::kHistoryBegin: return "beginning of history";
    case StopKind::kHistoryEnd: return "end of history";
    case StopKind::kException: return "guest exception";
    case StopKind::kCancelled: return "cancelled";
    case StopKind::kDivergence: return "divergence";
  }
  return "?";
}

Timeline::Timeline(const TraceReader& reader, const TimelineOptions& options)
    : reader_(reader), options_(options), stats_(std::make_shared<PageStats>()) {}

Timeline::~Timeline() = default;

Result<std::unique_ptr<Timeline>> Timeline::open(const TraceReader& reader,
                                                 const TimelineOptions& options) {
  auto session = ReplaySession::open(reader, options.engine);
  if (!session.ok()) return session.error();
  std::unique_ptr<Timeline> t(new Timeline(reader, options));
  t->session_ = std::move(session).value();
  // Default budget: a quarter of the free memory, and no more than the guest's
  // RAM (checkpoints beyond the RAM itself cost at most 1x guest RAM).
  if (t->options_.checkpointMemBytes == 0)
    t->options_.checkpointMemBytes =
        std::min(defaultBudget(), std::max<uint64_t>(t->session_->ram().size(), 64u << 20));
  if (t->options_.checkpointInterval == 0) t->options_.checkpointInterval = 1;
  t->beginStep_ = t->session_->step();
  const uint64_t span = t->endStep() - t->beginStep_;
  t->grid_ = std::max(t->options_.checkpointInterval, span / kGridCheckpoints);

  std::span<const uint8_t> ram = t->session_->ram();
  t->live_ = PageMap(ram.size() / kRamPageBytes, t->stats_);
  for (uint64_t p : t->session_->initialPages()) {
    auto bytes = ram.subspan(p * kRamPageBytes, kRamPageBytes);
    if (!allZero(bytes)) t->live_.set(p, t->live_.makePage(bytes));
  }
  Cpu& cpu = t->session_->cpu();
  cpu.setDirtyTracking(true);
  (void)cpu.takeDirtyPages();
  t->addCheckpoint(t->beginStep_,
                   Checkpoint{t->session_->state(), t->session_->environment().position(), t->live_,
                              t->session_->checkpointDevices()});
  machine::ReplayEnvironment& env = t->session_->environment();
  Timeline* self = t.get();
  if (env.wholeMachine()) {
    t->accessesKnownUpTo_ = t->beginStep_;
    env.observeAccesses([self](const TraceEvent& e) {
      const bool kept = e.kind == EventKind::kPortIn || e.kind == EventKind::kPortOut ||
                        e.kind == EventKind::kMmioRead || e.kind == EventKind::kMmioWrite ||
                        e.kind == EventKind::kInterrupt || e.kind == EventKind::kNmi;
      // A step is complete once the replay asks at a later one; a step
      // replayed again (after a restore) is known already.
      if (e.step < self->accessesKnownUpTo_) return;
      self->accessesKnownUpTo_ = e.step;
      if (!kept) return;
      for (auto it = self->accesses_.rbegin(); it != self->accesses_.rend() && it->step == e.step;
           ++it)
        if (*it == e) return;
      self->accesses_.push_back(e);
    });
  }
  // Exceptions at steps replayed before (re-execution from a checkpoint)
  // are known already: the run that first passed them reported them.
  env.observeExceptions([self](uint64_t step, const StepResult& r) {
    if (step < self->deviceDigestsCheckedBefore_) return;
    if (!self->exceptions_.empty() && self->exceptions_.back().step >= step) return;
    self->exceptions_.push_back(ReplayedException{step, r.vector, r.hasErrorCode, r.errorCode});
  });
  return t;
}

bool Timeline::readLinear(uint64_t address, std::span<uint8_t> out) const {
  return const_cast<ReplaySession&>(*session_).cpu().readLinear(address, out);
}

bool Timeline::readPhysical(uint64_t address, std::span<uint8_t> out) const {
  std::span<const uint8_t> r = session_->ram();
  if (address > r.size() || out.size() > r.size() - address) return false;
  std::memcpy(out.data(), r.data() + address, out.size());
  return true;
}

std::optional<uint64_t> Timeline::translate(uint64_t linear) const {
  return const_cast<ReplaySession&>(*session_).cpu().translate(linear);
}

// ------------------------------------------------------------ breakpoints

int Timeline::addBreakpoint(uint64_t address, bool physical) {
  const int id = nextId_++;
  breakpoints_[id] = Breakpoint{DebuggerBreakpoint{address, physical}};
  return id;
}

int Timeline::addWatchpoint(uint64_t address, uint64_t length, WatchKind kind, bool physical) {
  const int id = nextId_++;
  watchpoints_[id] =
      Watchpoint{DebuggerWatchpoint{address, std::max<uint64_t>(1, length), kind, physical}};
  return id;
}

bool Timeline::removeBreakpoint(int id) {
  return breakpoints_.erase(id) != 0;
}
bool Timeline::removeWatchpoint(int id) {
  return watchpoints_.erase(id) != 0;
}
void Timeline::clearBreakpointsAndWatchpoints() {
  breakpoints_.clear();
  watchpoints_.clear();
}

Timeline::Arming Timeline::userArming() const {
  Arming a;
  for (const auto& [id, b] : breakpoints_) {
    a.bps.push_back(b.bp);
    a.bpIds.push_back(id);
  }
  for (const auto& [id, w] : watchpoints_) {
    a.wps.push_back(w.wp);
    a.wpIds.push_back(id);
  }
  a.exceptionVectors = exceptionStops_;
  return a;
}

void Timeline::arm(const Arming& a) {
  Cpu& cpu = session_->cpu();
  cpu.setBreakpoints(a.bps);
  cpu.setWatchpoints(a.wps);
}

void Timeline::disarm() {
  Cpu& cpu = session_->cpu();
  cpu.setBreakpoints({});
  cpu.setWatchpoints({});
}

int Timeline::breakpointIdAt(const Arming& a) const {
  const CpuState& s = session_->state();
  const uint64_t lin = session_->linearRip(s.rip);
  std::optional<uint64_t> phys;
  for (size_t i = 0; i < a.bps.size(); ++i) {
    if (!a.bps[i].physical) {
      if (a.bps[i].address == lin) return a.bpIds[i];
      continue;
    }
    if (!phys) phys = translate(lin);
    if (phys && *phys == a.bps[i].address) return a.bpIds[i];
  }
  return -1;
}

// ------------------------------------------------------------ checkpoints

void Timeline::restore(const Checkpoint& c) {
  Cpu& cpu = session_->cpu();
  std::vector<uint64_t> pages = cpu.takeDirtyPages();
  live_.diff(c.ram, pages);
  std::span<uint8_t> ram = session_->ram();
  for (uint64_t p : pages) {
    uint8_t* dst = ram.data() + p * kRamPageBytes;
    const RamPagePtr& src = c.ram.get(p);
    if (src)
      std::memcpy(dst, src->bytes.data(), kRamPageBytes);
    else
      std::memset(dst, 0, kRamPageBytes);
    cpu.notifyRamWritten(p * kRamPageBytes, kRamPageBytes);
  }
  live_ = c.ram;
  session_->restore(c.cpu, c.events, c.devices);
}

void Timeline::takeCheckpoint() {
  if (session_->environment().divergence()) return;
  Cpu& cpu = session_->cpu();
  const uint64_t s = now();
  auto existing = checkpoints_.find(s);
  std::vector<uint64_t> dirty = cpu.takeDirtyPages();
  std::span<const uint8_t> ram = session_->ram();
  if (existing != checkpoints_.end()) {
    // Same position, same RAM (replay is deterministic): share its pages.
    live_ = existing->second.ram;
    return;
  }
  for (uint64_t p : dirty) {
    auto bytes = ram.subspan(p * kRamPageBytes, kRamPageBytes);
    const RamPagePtr& cur = live_.get(p);
    if (cur ? std::memcmp(cur->bytes.data(), bytes.data(), kRamPageBytes) == 0 : allZero(bytes))
      continue;
    live_.set(p, allZero(bytes) ? nullptr : live_.makePage(bytes));
  }
  addCheckpoint(s, Checkpoint{session_->state(), session_->environment().position(), live_,
                              session_->checkpointDevices()});
  // Long forward runs take many checkpoints before the operation's final
  // thin(): keep within the budget on the way.
  if (static_cast<uint64_t>(std::max<int64_t>(0, stats_->bytes())) > options_.checkpointMemBytes)
    enforceBudget();
}

void Timeline::extendEnd() {
  session_->extendEnd();
  grid_ = std::max(grid_, (endStep() - beginStep_) / kGridCheckpoints);
}

const Checkpoint& Timeline::checkpointAtOrBefore(uint64_t step) const {
  auto it = checkpoints_.upper_bound(step);
  TTVM_ASSERT(it != checkpoints_.begin(), "no checkpoint at or before step ", step);
  return std::prev(it)->second;
}

uint64_t Timeline::spacing(uint64_t distance) const {
  const uint64_t lo = options_.checkpointInterval;
  return std::clamp(distance / kPerOctave, lo, std::max(lo, grid_));
}

void Timeline::addCheckpoint(uint64_t step, Checkpoint c) {
  checkpoints_.emplace(step, std::move(c));
  steps_.insert(std::upper_bound(steps_.begin(), steps_.end(), step), step);
}

void Timeline::thin() {
  if (steps_.size() <= 2) return;
  const uint64_t here = now();
  auto dist = [&](uint64_t s) { return s > here ? s - here : here - s; };
  // The first and the last stay; one between goes when the kept one before
  // it and the one after it are no farther apart than its spacing.
  std::vector<uint64_t> kept;
  kept.reserve(steps_.size());
  kept.push_back(steps_.front());
  for (size_t i = 1; i + 1 < steps_.size(); ++i) {
    if (steps_[i + 1] - kept.back() <= spacing(dist(steps_[i])))
      checkpoints_.erase(steps_[i]);
    else
      kept.push_back(steps_[i]);
  }
  kept.push_back(steps_.back());
  steps_ = std::move(kept);
  enforceBudget();
}

void Timeline::enforceBudget() {
  const uint64_t here = now();
  auto dist = [&](uint64_t s) { return s > here ? s - here : here - s; };
  // Over budget: drop the checkpoint whose loss costs least (the gap it
  // leaves, relative to its distance from now), never step 0 nor the one
  // nearest to now. The scan reads steps_, not the map's scattered nodes.
  while (static_cast<uint64_t>(std::max<int64_t>(0, stats_->bytes())) >
             options_.checkpointMemBytes &&
         steps_.size() > 2) {
    const uint64_t nearest = checkpointAtOrBefore(here).step();
    size_t victim = 0;  // none: step 0 is never one
    double best = 0;
    for (size_t i = 1; i < steps_.size(); ++i) {
      if (steps_[i] == nearest) continue;
      const uint64_t right = i + 1 == steps_.size() ? steps_[i] : steps_[i + 1];
      const double score =
          static_cast<double>(right - steps_[i - 1]) / (1.0 + static_cast<double>(dist(steps_[i])));
      if (victim == 0 || score < best) {
        victim = i;
        best = score;
      }
    }
    if (victim == 0) break;
    checkpoints_.erase(steps_[victim]);
    steps_.erase(steps_.begin() + static_cast<std::ptrdiff_t>(victim));
  }
  TTVM_ASSERT(steps_.size() == checkpoints_.size(), "checkpoint index out of step: ", steps_.size(),
              " steps for ", checkpoints_.size(), " checkpoints");
}

TimelineStats Timeline::stats() const {
  TimelineStats s;
  s.checkpoints = checkpoints_.size();
  s.checkpointBytes = static_cast<uint64_t>(std::max<int64_t>(0, stats_->bytes())) +
                      checkpoints_.size() * sizeof(Checkpoint);
  s.budgetBytes = options_.checkpointMemBytes;
  s.guestRamBytes = session_->ram().size();
  s.stepsExecuted = stepsExecuted_;
  return s;
}

std::vector<uint64_t> Timeline::checkpointSteps() const {
  std::vector<uint64_t> v;
  for (const auto& [s, c] : checkpoints_) v.push_back(s);
  return v;
}

// ------------------------------------------------------------ motion

StopReason Timeline::divergenceStop() const {
  StopReason r;
  r.kind = StopKind::kDivergence;
  r.step = now();
  r.divergence = session_->divergence();
  return r;
}

SessionStop Timeline::run(uint64_t target, RunOptions ro) {
  ro.deviceDigestsCheckedBefore = deviceDigestsCheckedBefore_;
  const uint64_t before = now();
  const SessionStop st = session_->runTo(target, ro);
  stepsExecuted_ += now() - before;
  if (session_->cpu().engine() == CpuEngine::kFast) {
    if (st.kind == SessionStopKind::kDivergence && !fastDivergence_)
      fastDivergence_ = session_->divergence();
  } else if (fallback_ || fastDivergence_) {
    if (st.kind == SessionStopKind::kDivergence && !referenceDivergence_)
      referenceDivergence_ = session_->divergence();
    if (st.kind != SessionStopKind::kDivergence)
      referenceReached_ = std::max(referenceReached_, now());
  }
  // Every digest before the stop was settled on the way (those of the stop's
  // own step are when the run ends at its target, but not after a breakpoint).
  if (st.kind != SessionStopKind::kDivergence)
    deviceDigestsCheckedBefore_ = std::max(deviceDigestsCheckedBefore_, now());
  return st;
}

void Timeline::fallBackToReference(uint64_t origin) {
  EngineFallback f;
  f.fast = *fastDivergence_;
  f.replayedFrom = beginStep_;
  fallback_ = f;
  referenceDivergence_.reset();
  referenceReached_ = beginStep_;
  referenceEndAgrees_ = false;
  session_->cpu().setEngine(CpuEngine::kReference);
  disarm();
  // The first checkpoint is the trace's initial state; every other one
  // holds state the fast engine computed.
  for (size_t i = 1; i < steps_.size(); ++i) checkpoints_.erase(steps_[i]);
  steps_.resize(1);
  restore(checkpoints_.begin()->second);
  // The reference compares every device digest again. The replay-pass
  // indexes (accesses, exceptions) keep what the fast engine saw before
  // its divergence: a reader may hold their length.
  deviceDigestsCheckedBefore_ = beginStep_;
  moveTo(origin, {});
}

void Timeline::finishFallback() {
  fallback_->reference = referenceDivergence_;
  fallback_->referenceReached = referenceReached_;
  fallback_->referencePassed =
      !referenceDivergence_ && (referenceReached_ > fallback_->fast.step || referenceEndAgrees_);
  if (fallbackHandler_) fallbackHandler_(*fallback_);
}

std::string Timeline::checkEndState() {
  return withEngineFallback([&] {
    std::string diff = session_->checkEndState();
    if (diff.empty() && fallback_ && session_->engine() == CpuEngine::kReference)
      referenceEndAgrees_ = true;
    if (!diff.empty() && session_->engine() == CpuEngine::kFast && !fastDivergence_)
      fastDivergence_ = endStateDivergence(now(), registers().rip, diff);
    return diff;
  });
}

StopReason Timeline::moveTo(uint64_t target, const Control& control, uint64_t doneBase,
                            uint64_t total) {
  disarm();
  target = std::clamp(target, beginStep_, endStep());
  const Checkpoint& c = checkpointAtOrBefore(target);
  if (target < now() || c.step() > now() || session_->environment().divergence()) restore(c);
  const uint64_t start = now();
  if (total == 0) total = target - start;
  RunOptions ro;
  ro.cancel = control.cancel;
  if (control.progress)
    ro.progress = [&](uint64_t s) { control.progress(doneBase + (s - start), total); };
  StopReason r;
  while (now() < target) {
    const uint64_t last = checkpointAtOrBefore(now()).step();
    const uint64_t next = last + spacing(target - now());
    if (next <= now()) {
      takeCheckpoint();
      continue;
    }
    const SessionStop st = run(std::min(target, next), ro);
    if (st.kind == SessionStopKind::kDivergence) return divergenceStop();
    if (st.kind == SessionStopKind::kCancelled) {
      r.kind = StopKind::kCancelled;
      r.step = now();
      return r;
    }
    if (st.kind == SessionStopKind::kEnd) break;
    if (now() == next && now() < target) takeCheckpoint();
  }
  r.kind = StopKind::kStepDone;
  r.step = now();
  return r;
}

StopReason Timeline::stopFromHit(const Hit& h, const Arming& a) const {
  StopReason r;
  r.step = now();
  if (h.breakpoint) {
    r.kind = StopKind::kBreakpoint;
    r.breakpointId = h.id;
    return r;
  }
  if (h.exception) {
    r.kind = StopKind::kException;
    r.vector = h.stop.result.vector;
    r.accessStep = h.landing;
    return r;
  }
  r.kind = StopKind::kWatchpoint;
  const WatchHit& w = h.stop.result.watch;
  if (w.watchId >= 0 && static_cast<size_t>(w.watchId) < a.wps.size()) {
    r.watchpointId = a.wpIds[w.watchId];
    r.watchKind = a.wps[w.watchId].kind;
  }
  r.watchAddress = w.address;
  r.watchSize = w.size;
  r.watchWrite = w.write;
  r.accessStep = h.stop.step - 1;
  return r;
}

StopReason Timeline::scanForward(uint64_t limit, const Arming& a, const Control& control,
                                 std::optional<Hit>* hitOut) {
  limit = std::min(limit, endStep());
  const uint64_t start = now();
  const uint64_t total = limit > start ? limit - start : 0;
  if (session_->environment().divergence()) restore(checkpointAtOrBefore(now()));
  arm(a);
  if (breakpointIdAt(a) >= 0) session_->cpu().skipBreakpointOnce();
  RunOptions ro;
  ro.cancel = control.cancel;
  ro.stopOnExceptions = a.anyException ? ~0u : a.exceptionVectors;
  if (control.progress) ro.progress = [&](uint64_t s) { control.progress(s - start, total); };
  StopReason r;
  for (;;) {
    if (now() >= limit) {
      disarm();
      r.kind = now() >= endStep() ? StopKind::kHistoryEnd : StopKind::kStepDone;
      r.step = now();
      return r;
    }
    const uint64_t last = checkpointAtOrBefore(now()).step();
    const uint64_t next = std::max(now() + 1, last + grid_);
    const SessionStop st = run(std::min(limit, next), ro);
    switch (st.kind) {
      case SessionStopKind::kDivergence: disarm(); return divergenceStop();
      case SessionStopKind::kCancelled:
        disarm();
        r.kind = StopKind::kCancelled;
        r.step = now();
        return r;
      case SessionStopKind::kBreakpoint:
      case SessionStopKind::kWatchpoint:
      case SessionStopKind::kException: {
        Hit h;
        h.stop = st;
        h.breakpoint = st.kind == SessionStopKind::kBreakpoint;
        h.exception = st.kind == SessionStopKind::kException;
        h.id = h.breakpoint ? breakpointIdAt(a) : -1;
        h.landing = h.breakpoint ? now() : now() - 1;
        // The delivery step at the start position is the "instruction at the
        // start": never re-reported (as a breakpoint there is skipped).
        if (h.exception && h.landing <= start) continue;
        disarm();
        if (hitOut) *hitOut = h;
        return stopFromHit(h, a);
      }
      case SessionStopKind::kEnd:
      case SessionStopKind::kTarget:
      case SessionStopKind::kInterrupt:
        if (now() == next && now() < limit) {
          takeCheckpoint();
          // takeCheckpoint() does not touch the arming.
        }
        break;
    }
    if (st.kind == SessionStopKind::kEnd) {
      disarm();
      r.kind = StopKind::kHistoryEnd;
      r.step = now();
      return r;
    }
  }
}

Result<std::optional<Timeline::Hit>> Timeline::scanBackward(uint64_t lower, const Arming& a,
                                                            const Control& control) {
  const uint64_t origin = now();
  lower = std::max(lower, beginStep_);
  uint64_t hi = origin;
  const uint64_t total = origin > lower ? origin - lower : 0;
  RunOptions ro;
  ro.cancel = control.cancel;
  ro.stopOnExceptions = a.anyException ? ~0u : a.exceptionVectors;
  while (hi > lower) {
    const Checkpoint& c = checkpointAtOrBefore(hi - 1);
    const uint64_t lo = std::max(c.step(), lower);
    disarm();
    restore(c);
    if (lo > now()) {
      StopReason m = moveTo(lo, control);
      if (m.kind == StopKind::kDivergence)
        return makeError(m.divergence ? m.divergence->format() : "divergence");
      if (m.kind == StopKind::kCancelled) return makeError("cancelled");
    }
    arm(a);
    std::optional<Hit> best;
    for (;;) {
      const SessionStop st = run(hi, ro);
      if (st.kind == SessionStopKind::kDivergence) {
        disarm();
        auto d = session_->divergence();
        return makeError(d ? d->format() : "divergence");
      }
      if (st.kind == SessionStopKind::kCancelled) {
        disarm();
        return makeError("cancelled");
      }
      if (st.kind == SessionStopKind::kBreakpoint) {
        best = Hit{now(), st, breakpointIdAt(a), true, false};
        session_->cpu().skipBreakpointOnce();
        continue;
      }
      if (st.kind == SessionStopKind::kWatchpoint || st.kind == SessionStopKind::kException) {
        best = Hit{now() - 1, st, -1, false, st.kind == SessionStopKind::kException};
        continue;
      }
      if (st.kind == SessionStopKind::kInterrupt) continue;
      break;  // reached hi (or the end)
    }
    disarm();
    if (best) return best;
    hi = lo;
    if (control.progress) control.progress(origin - hi, total);
  }
  return std::optional<Hit>();
}

// ------------------------------------------------------------ the queries' scans

Result<std::optional<Timeline::Hit>> Timeline::findNext(const Arming& a, const Control& control) {
  const uint64_t origin = now();
  for (;;) {
    std::optional<Hit> hit;
    const StopReason r = scanForward(endStep(), a, control, &hit);
    if (r.kind == StopKind::kDivergence)
      return makeError(r.divergence ? r.divergence->format() : "divergence");
    if (r.kind == StopKind::kCancelled) return makeError("cancelled");
    if (!hit || hit->landing > origin) return hit;
    // A hit landing at or before origin is the instruction at the start
    // position itself: scan on from after it.
  }
}

Result<std::optional<QueryHit>> Timeline::lastChangeOf(
    const std::function<uint64_t(const CpuState&)>& value, const Control& control) {
  const uint64_t origin = now();
  uint64_t hi = origin;
  std::optional<QueryHit> out;
  RunOptions ro;
  ro.cancel = control.cancel;
  while (hi > beginStep_ && !out) {
    const Checkpoint& c = checkpointAtOrBefore(hi - 1);
    const uint64_t lo = c.step();
    disarm();
    restore(c);
    while (now() < hi) {
      const uint64_t s = now();
      const uint64_t before = value(session_->state());
      const SessionStop st = run(s + 1, ro);
      if (st.kind == SessionStopKind::kCancelled) return makeError("cancelled");
      if (st.kind == SessionStopKind::kDivergence) {
        auto d = session_->divergence();
        return makeError(d ? d->format() : "divergence");
      }
      if (now() == s) break;  // end of history
      const uint64_t after = value(session_->state());
      if (after != before) {
        QueryHit q;
        q.step = s;
        q.oldValue = before;
        q.newValue = after;
        out = q;
      }
    }
    hi = lo;
    if (control.progress) control.progress(origin - hi, origin - beginStep_);
  }
  return out;
}

Result<std::optional<QueryHit>> Timeline::endQuery(uint64_t origin,
                                                   Result<std::optional<QueryHit>> found,
                                                   bool move) {
  if (!found.ok()) {
    moveTo(origin, {});
    return found;
  }
  moveTo(move && *found ? (*found)->step : origin, {});
  thin();
  return found;
}

StopReason Timeline::seek(uint64_t step, const Control& control) {
  return withEngineFallback([&] {
    StopReason r = moveTo(step, control);
    if (r.kind == StopKind::kStepDone && step > endStep()) r.kind = StopKind::kHistoryEnd;
    thin();
    return r;
  });
}

StopReason Timeline::runToEnd(const Control& control) {
  return withEngineFallback([&] {
    StopReason r = moveTo(endStep(), control);
    if (r.kind == StopKind::kStepDone) r.kind = StopKind::kHistoryEnd;
    thin();
    return r;
  });
}

StopReason Timeline::step(uint64_t n, const Control& control) {
  return withEngineFallback([&] {
    if (now() >= endStep()) {
      StopReason r;
      r.kind = StopKind::kHistoryEnd;
      r.step = now();
      return r;
    }
    const uint64_t target = now() + n;
    StopReason r = scanForward(target, userArming(), control, nullptr);
    if (r.kind == StopKind::kHistoryEnd && target <= endStep()) r.kind = StopKind::kStepDone;
    if (r.kind == StopKind::kException) {
      moveTo(r.accessStep, {});
      r.step = now();
    }
    thin();
    return r;
  });
}

StopReason Timeline::continueForward(const Control& control) {
  return withEngineFallback([&] {
    StopReason r = scanForward(endStep(), userArming(), control, nullptr);
    if (r.kind == StopKind::kStepDone) r.kind = StopKind::kHistoryEnd;
    if (r.kind == StopKind::kException) {
      moveTo(r.accessStep, {});  // back to the faulting instruction
      r.step = now();
    }
    thin();
    return r;
  });
}

StopReason Timeline::stepBack(uint64_t n, const Control& control) {
  return withEngineFallback([&] {
    const uint64_t origin = now();
    StopReason r;
    if (origin <= beginStep_) {
      r.kind = StopKind::kHistoryBegin;
      r.step = now();
      return r;
    }
    const bool clamped = n > origin - beginStep_;
    const uint64_t target = clamped ? beginStep_ : origin - n;
    const Arming a = userArming();
    if (!a.wps.empty() || !a.bps.empty() || a.exceptionVectors != 0) {
      auto h = scanBackward(target, a, control);
      if (!h.ok()) return backwardScanFailed(origin);
      if (h->has_value()) {
        r = stopAtHit(**h, a, control);
        thin();
        return r;
      }
    }
    r = moveTo(target, control);
    if (r.kind == StopKind::kStepDone && clamped) r.kind = StopKind::kHistoryBegin;
    thin();
    return r;
  });
}

StopReason Timeline::backwardScanFailed(uint64_t origin) {
  // The report is taken before the seek back, which restores a checkpoint.
  const bool diverged = session_->divergence().has_value();
  StopReason r = diverged ? divergenceStop() : StopReason{};
  moveTo(origin, {});
  if (!diverged) r.kind = StopKind::kCancelled;
  r.step = now();
  return r;
}

StopReason Timeline::stopAtHit(const Hit& hit, const Arming& a, const Control& control) {
  moveTo(hit.landing, control);
  StopReason r = stopFromHit(hit, a);
  r.step = now();
  return r;
}

StopReason Timeline::reverseContinue(const Control& control) {
  return withEngineFallback([&] {
    const uint64_t origin = now();
    const Arming a = userArming();
    StopReason r;
    auto h = scanBackward(beginStep_, a, control);
    if (!h.ok()) return backwardScanFailed(origin);
    if (h->has_value()) {
      r = stopAtHit(**h, a, control);
    } else {
      r = moveTo(beginStep_, control);
      if (r.kind == StopKind::kStepDone) r.kind = StopKind::kHistoryBegin;
    }
    thin();
    return r;
  });
}

}  // namespace ttvm
