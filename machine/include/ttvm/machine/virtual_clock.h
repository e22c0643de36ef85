// VirtualClock: the machine's time, derived from the CPU's step count so that
// timers, the TSC and the RTC are the same on every run of the same inputs.
//
//   nowNs = steps * nsPerStep + idleNs
//
// idleNs grows only when the CPU is halted with interrupts enabled and the
// record loop skips ahead to the next timer deadline (no busy waiting). The
// nominal rate (1 ns per step by default) is stored in the trace.
#pragma once

#include <cstdint>

namespace ttvm::machine {

__extension__ typedef unsigned __int128 Uint128;

// a * b / c in 128-bit arithmetic, rounded down / up.
inline uint64_t mulDiv(uint64_t a, uint64_t b, uint64_t c) {
  return static_cast<uint64_t>(static_cast<Uint128>(a) * b / c);
}
inline uint64_t mulDivCeil(uint64_t a, uint64_t b, uint64_t c) {
  return static_cast<uint64_t>((static_cast<Uint128>(a) * b + c - 1) / c);
}

class VirtualClock {
 public:
  explicit VirtualClock(uint64_t nsPerStep = 1) : nsPerStep_(nsPerStep == 0 ? 1 : nsPerStep) {}

  // The step counter time derives from (CpuState::steps of the machine's CPU).
  // Unbound, the clock reads a private counter that tests may set.
  void bindSteps(const uint64_t* steps) { steps_ = steps != nullptr ? steps : &ownSteps_; }
  void setOwnSteps(uint64_t s) { ownSteps_ = s; }
  uint64_t steps() const { return *steps_; }

  uint64_t nowNs() const { return *steps_ * nsPerStep_ + idleNs_; }
  uint64_t nsPerStep() const { return nsPerStep_; }
  uint64_t idleNs() const { return idleNs_; }
  void setIdleNs(uint64_t ns) { idleNs_ = ns; }

  // Idle skip: moves time forward to `ns` without steps (no-op if not later).
  void skipTo(uint64_t ns) {
    if (ns > nowNs()) idleNs_ += ns - nowNs();
  }
  // Steps to execute until time reaches `ns` (at least 1 if ns is in the future).
  uint64_t stepsUntil(uint64_t ns) const {
    uint64_t now = nowNs();
    if (ns <= now) return 0;
    return (ns - now + nsPerStep_ - 1) / nsPerStep_;
  }

  // A device changed a timer during the current slice: the record loop must
  // end the slice after this step and recompute the next deadline.
  void requestReschedule() { reschedule_ = true; }
  bool reschedulePending() const { return reschedule_; }
  void clearReschedule() { reschedule_ = false; }

 private:
  uint64_t nsPerStep_;
  uint64_t idleNs_ = 0;
  uint64_t ownSteps_ = 0;
  const uint64_t* steps_ = &ownSteps_;
  bool reschedule_ = false;
};

}  // namespace ttvm::machine
