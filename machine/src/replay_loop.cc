#include "ttvm/machine/replay_loop.h"

#include <algorithm>
#include <sstream>

#include "ttvm/base/hex.h"
#include "ttvm/machine/machine.h"

namespace ttvm::machine {

const char* toString(SessionStopKind k) {
  switch (k) {
    case SessionStopKind::kTarget: return "target";
    case SessionStopKind::kEnd: return "end of history";
    case SessionStopKind::kBreakpoint: return "breakpoint";
    case SessionStopKind::kWatchpoint: return "watchpoint";
    case SessionStopKind::kException: return "exception";
    case SessionStopKind::kInterrupt: return "interrupt";
    case SessionStopKind::kDivergence: return "divergence";
    case SessionStopKind::kCancelled: return "cancelled";
  }
  return "?";
}

std::string DivergenceReport::format() const {
  std::ostringstream o;
  o << "divergence at step " << step << ": " << reason << "\n";
  o << "  rip " << hex(rip);
  if (!symbol.empty()) o << " <" << symbol << ">";
  if (!disassembly.empty()) o << ": " << disassembly;
  o << "\n";
  o << "  trace expected: " << (expected ? describeEvent(*expected) : "end of trace") << "\n";
  o << "  replay did:     " << (actual.empty() ? "nothing (no input requested)" : actual) << "\n";
  o << "  last matching:  " << (lastMatching ? describeEvent(*lastMatching) : "none") << "\n";
  return o.str();
}

void ReplayLoop::divergeAt(uint64_t step, uint64_t rip, std::string reason, std::string actual) {
  env_.diverge(std::move(reason), std::move(actual));
  // diverge() stamped the current position; name the step that misbehaved.
  auto& d = const_cast<std::optional<DivergenceReport>&>(env_.divergence());
  if (d) {
    d->step = step;
    d->rip = rip;
  }
}

bool ReplayLoop::settleBoundary(const RunOptions& options) {
  const uint64_t now = cpu_.state().steps;
  for (const TraceEvent* e = env_.peek(); e != nullptr && isPassiveEvent(e->kind);
       e = env_.peek()) {
    if (e->step > now) break;
    if (e->kind == EventKind::kStateDigest || e->kind == EventKind::kDeviceDigest) {
      const bool cpuDigest = e->kind == EventKind::kStateDigest;
      if (e->step < now) {
        divergeAt(e->step, cpu_.state().rip,
                  std::string(cpuDigest ? "a state digest" : "a device digest") + " of step " +
                      std::to_string(e->step) +
                      " was passed without being checked (events out of order)",
                  "");
        return false;
      }
      if (cpuDigest) {
        const uint64_t mine = stateDigest(cpu_.state());
        if (mine != e->value) {
          divergeAt(now, cpu_.state().rip,
                    "the CPU state differs from the recorded one (state digest " + hex(mine) +
                        ", recorded " + hex(e->value) + ")",
                    "state digest " + hex(mine));
          return false;
        }
        ++digestsChecked_;
      } else if (whole() && e->step >= options.deviceDigestsCheckedBefore) {
        const uint64_t mine = machine_->deviceDigest();
        if (mine != e->value) {
          divergeAt(now, cpu_.state().rip,
                    "the machine's device state differs from the recorded one (device digest " +
                        hex(mine) + ", recorded " + hex(e->value) + ")",
                    "device digest " + hex(mine));
          return false;
        }
        ++digestsChecked_;
        ++deviceDigestsChecked_;
      }
    }
    env_.advance();
  }
  return !env_.divergence();
}

SessionStop ReplayLoop::runTo(uint64_t target, const RunOptions& options) {
  SessionStop stop;
  const CpuState& s = cpu_.state();
  target = std::min(target, endStep_);
  for (;;) {
    const uint64_t now = s.steps;
    stop.step = now;
    if (env_.divergence() || !settleBoundary(options)) {
      stop.kind = SessionStopKind::kDivergence;
      return stop;
    }
    if (now >= target) {
      stop.kind = now >= endStep_ ? SessionStopKind::kEnd : SessionStopKind::kTarget;
      return stop;
    }
    if (options.cancel != nullptr && options.cancel->load(std::memory_order_relaxed)) {
      stop.kind = SessionStopKind::kCancelled;
      return stop;
    }
    if (whole()) {
      // What the record loop did at this boundary: the terminal's input,
      // then the timers. Input that reached a halted CPU while the recorder
      // waited for the next deadline waits for the halt below.
      if (!s.pending.halted || !env_.inputsBeforeIdle()) env_.applyBoundaryInputs();
      machine_->clock().clearReschedule();
      machine_->advanceTimers();
    }
    const TraceEvent* e = env_.peek();
    if (e != nullptr && e->step < now) {
      divergeAt(e->step, s.rip, "the replay passed a recorded input without asking for it", "");
      stop.kind = SessionStopKind::kDivergence;
      return stop;
    }
    if (e == nullptr && !env_.readError().empty()) {
      divergeAt(now, s.rip, "the trace could not be read: " + env_.readError(), "");
      stop.kind = SessionStopKind::kDivergence;
      return stop;
    }
    // Run up to the next event's step, or through the one step that must consume it.
    uint64_t limit = std::min(target, now + options.sliceSteps);
    const bool consuming = e != nullptr && e->step == now;
    if (e != nullptr) limit = std::min(limit, consuming ? now + 1 : e->step);
    if (whole())
      if (auto d = machine_->nextDeadlineNs())
        limit = std::min(limit, now + std::max<uint64_t>(1, machine_->clock().stepsUntil(*d)));
    const uint64_t ripBefore = s.rip;
    env_.beginSlice(consuming);
    const StepResult r = cpu_.run(limit - now);
    stop.result = r;
    stop.step = s.steps;
    if (consuming && s.steps > now) {
      // Every input of step `now` must have been consumed by it; passive marks
      // recorded after them (HLT, debug exit) are skipped here.
      for (const TraceEvent* n = env_.peek(); n != nullptr && n->step == now; n = env_.peek()) {
        if (isPassiveEvent(n->kind) && n->kind != EventKind::kStateDigest &&
            n->kind != EventKind::kDeviceDigest) {
          env_.advance();
          continue;
        }
        if (!env_.divergence())
          divergeAt(now, ripBefore,
                    "the instruction at this step did not ask for the recorded input", "");
        break;
      }
    }
    if (env_.divergence()) {
      stop.kind = SessionStopKind::kDivergence;
      return stop;
    }
    if (options.progress) options.progress(s.steps);
    switch (r.outcome) {
      case StepOutcome::kRetired:
      case StepOutcome::kStopRequested: break;
      case StepOutcome::kException:
        env_.exceptionDelivered(s.steps - 1, r);
        if (r.vector < 32 && (options.stopOnExceptions >> r.vector) & 1) {
          stop.kind = SessionStopKind::kException;
          return stop;
        }
        break;
      case StepOutcome::kInterrupt:
      case StepOutcome::kNmi:
        if (options.stopOnInterrupts) {
          stop.kind = SessionStopKind::kInterrupt;
          return stop;
        }
        break;
      case StepOutcome::kBreakpoint: stop.kind = SessionStopKind::kBreakpoint; return stop;
      case StepOutcome::kWatchpoint: stop.kind = SessionStopKind::kWatchpoint; return stop;
      case StepOutcome::kHalted: {
        if (s.steps >= endStep_) break;  // the loop top reports the end
        if (whole()) {
          // The recording moved time here: the halt goes on as it did.
          if (!settleBoundary(options)) {
            stop.kind = SessionStopKind::kDivergence;
            return stop;
          }
          // Terminal bytes before the skip arrived while the recorder waited
          // for the deadline in wall time (--realtime): they come first, and
          // their interrupt wakes the guest at the time the skip reached.
          env_.applyBoundaryInputs();
          if (env_.takeIdle()) break;
          if (env_.divergence()) {
            stop.kind = SessionStopKind::kDivergence;
            return stop;
          }
        }
        const TraceEvent* n = env_.peek();
        divergeAt(s.steps, s.rip,
                  "the CPU is halted with no interrupt pending but the recorded run went on",
                  n != nullptr
                      ? "hlt (waiting; interrupts " +
                            std::string(s.rflags & flags::kIF ? "enabled" : "disabled") + ")"
                      : "hlt");
        stop.kind = SessionStopKind::kDivergence;
        return stop;
      }
      case StepOutcome::kTripleFault:
        if (s.steps >= endStep_) break;
        divergeAt(s.steps, s.rip, "the replay triple-faulted before the recorded end", "");
        stop.kind = SessionStopKind::kDivergence;
        return stop;
    }
  }
}

}  // namespace ttvm::machine
